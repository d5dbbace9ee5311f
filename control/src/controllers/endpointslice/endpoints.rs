//! The legacy Endpoints object of a selector Service (the endpoints
//! controller; what `kubectl describe service` shows): ready addresses and
//! notReadyAddresses per port set, terminating pods left out unless the
//! Service publishes not-ready addresses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Pod, Service};

use super::desired::{endpoint_ports, hostname, pod_ipv4, target_ref};
use crate::controllers::podutil::{is_ready, is_terminal, node_name};

/// Ports, ready and not-ready addresses of one port set.
type Group = (
    Vec<EndpointPort>,
    Vec<EndpointAddress>,
    Vec<EndpointAddress>,
);

/// The subsets, sorted like `RepackSubsets`.
pub fn subsets(svc: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for p in pods {
        if is_terminal(p) || (p.metadata.deletion_timestamp.is_some() && !publish) {
            continue;
        }
        let Some(ip) = pod_ipv4(p) else { continue };
        let ports: Vec<EndpointPort> = endpoint_ports(p, svc)
            .into_iter()
            .map(|e| EndpointPort {
                name: e.name.filter(|n| !n.is_empty()),
                port: e.port.unwrap_or(0),
                protocol: e.protocol,
                app_protocol: e.app_protocol,
            })
            .collect();
        if ports.is_empty()
            && svc
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .is_some_and(|p| !p.is_empty())
        {
            continue;
        }
        let addr = EndpointAddress {
            ip,
            hostname: hostname(p, svc),
            node_name: node_name(p).map(str::to_string),
            target_ref: Some(target_ref(p)),
        };
        let g = groups
            .entry(serde_json::to_string(&ports).unwrap_or_default())
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish || is_ready(p) {
            g.1.push(addr);
        } else {
            g.2.push(addr);
        }
    }
    groups
        .into_values()
        .map(|(mut ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            ports.sort_by(|a, b| a.name.cmp(&b.name).then(a.port.cmp(&b.port)));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ready_and_not_ready_addresses() {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "d"}, "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 80}]}})).unwrap();
        let pod = |name: &str, ip: &str, ready: &str, deleting: bool| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d", "deletionTimestamp": if deleting { Some("2024-01-01T00:00:00Z") } else { None }},
                "spec": {"nodeName": "n1", "containers": []}, "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": ready}]}})).unwrap()
        };
        let (a, b, c) = (
            pod("a", "10.0.0.2", "True", false),
            pod("b", "10.0.0.3", "False", false),
            pod("c", "10.0.0.4", "True", true),
        );
        let s = subsets(&svc, &[&a, &b, &c]);
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].addresses
                .as_ref()
                .unwrap()
                .iter()
                .map(|a| a.ip.as_str())
                .collect::<Vec<_>>(),
            vec!["10.0.0.2"]
        );
        assert_eq!(s[0].not_ready_addresses.as_ref().unwrap()[0].ip, "10.0.0.3");
        assert_eq!(s[0].ports.as_ref().unwrap()[0].port, 80);
    }
}
