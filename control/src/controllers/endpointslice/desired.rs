//! What a selector Service's EndpointSlices should hold (`podToEndpoint`,
//! `getEndpointPorts`): one endpoint per pod with an IP and not finished,
//! with ready/serving/terminating conditions, nodeName, zone, hostname and
//! targetRef; ports resolved per pod (named targetPorts from the pod's
//! container ports); endpoints grouped by resolved port set and cut into
//! slices of at most 100.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controllers::podutil::{is_ready, is_terminal, node_name};

/// Endpoints per slice (`--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The pod's IPv4 address, if it has one.
pub fn pod_ipv4(p: &Pod) -> Option<String> {
    let st = p.status.as_ref()?;
    st.pod_ips
        .iter()
        .flatten()
        .map(|i| i.ip.clone())
        .chain(st.pod_ip.clone())
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
}

/// `podutil.FindPort`: a targetPort resolved against a pod.
pub fn find_port(p: &Pod, sp: &ServicePort) -> Option<i32> {
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(i)) => Some(*i),
        Some(IntOrString::String(name)) => {
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            p.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|cp| {
                    cp.name.as_deref() == Some(name.as_str())
                        && cp.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|cp| cp.container_port)
        }
    }
}

/// The EndpointSlice ports of a pod for the service.
pub fn endpoint_ports(p: &Pod, svc: &Service) -> Vec<EndpointPort> {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    ports
        .iter()
        .filter_map(|sp| {
            find_port(p, sp).map(|port| EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// `ShouldSetHostname`.
pub fn hostname(p: &Pod, svc: &Service) -> Option<String> {
    let spec = p.spec.as_ref()?;
    let h = spec.hostname.clone().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && p.metadata.namespace == svc.metadata.namespace)
        .then_some(h)
}

pub fn target_ref(p: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: p.metadata.namespace.clone(),
        name: p.metadata.name.clone(),
        uid: p.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The endpoint of one pod (`podToEndpoint`), if it belongs in a slice.
pub fn endpoint(p: &Pod, svc: &Service, node: Option<&Node>) -> Option<Endpoint> {
    if is_terminal(p) {
        return None;
    }
    let ip = pod_ipv4(p)?;
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = is_ready(p);
    let terminating = p.metadata.deletion_timestamp.is_some();
    Some(Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname(p, svc),
        node_name: node_name(p).map(str::to_string),
        zone: node
            .and_then(|n| n.metadata.labels.as_ref())
            .and_then(|l| l.get(ZONE_LABEL))
            .cloned(),
        target_ref: Some(target_ref(p)),
        ..Default::default()
    })
}

/// A slice's content: its ports and endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceContent {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

fn port_key(ports: &[EndpointPort]) -> String {
    serde_json::to_string(ports).unwrap_or_default()
}

/// Endpoints sharing one resolved port set, by pod name.
type Group = (Vec<EndpointPort>, Vec<(String, Endpoint)>);

/// The slices a service should have: endpoints grouped by port set, in pod
/// name order, at most `max` per slice. No pods → one empty placeholder.
pub fn desired_slices(
    svc: &Service,
    pods: &[&Pod],
    nodes: &dyn Fn(&str) -> Option<Node>,
    max: usize,
) -> Vec<SliceContent> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for p in pods {
        let node = node_name(p).and_then(nodes);
        let Some(ep) = endpoint(p, svc, node.as_ref()) else {
            continue;
        };
        let ports = endpoint_ports(p, svc);
        let g = groups
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, Vec::new()));
        g.1.push((p.metadata.name.clone().unwrap_or_default(), ep));
    }
    let mut out = Vec::new();
    for (_, (ports, mut eps)) in groups {
        eps.sort_by(|a, b| a.0.cmp(&b.0));
        for chunk in eps.chunks(max.max(1)) {
            out.push(SliceContent {
                ports: ports.clone(),
                endpoints: chunk.iter().map(|(_, e)| e.clone()).collect(),
            });
        }
    }
    if out.is_empty() {
        out.push(SliceContent {
            ports: Vec::new(),
            endpoints: Vec::new(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn pod(name: &str, ready: bool, deleting: bool, ip: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "d", "uid": format!("u-{name}"), "deletionTimestamp": if deleting { Some("2024-01-01T00:00:00Z") } else { None }},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "web", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap()
    }

    #[test]
    fn conditions_ports_by_name_zone_and_target_ref() {
        let s = svc(
            json!({"metadata": {"name": "web", "namespace": "d"}, "spec": {"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}}),
        );
        let node: Node = serde_json::from_value(
            json!({"metadata": {"name": "n1", "labels": {ZONE_LABEL: "z1"}}}),
        )
        .unwrap();
        let (a, b, c, d) = (
            pod("a", true, false, Some("10.244.1.5")),
            pod("b", false, false, Some("10.244.1.6")),
            pod("c", true, true, Some("10.244.1.7")),
            pod("d", true, false, None),
        );
        let slices = desired_slices(&s, &[&a, &b, &c, &d], &|_| Some(node.clone()), 100);
        assert_eq!(slices.len(), 1);
        let sl = &slices[0];
        assert_eq!(sl.ports[0].port, Some(8080));
        assert_eq!(sl.ports[0].name.as_deref(), Some("http"));
        let conds: Vec<_> = sl
            .endpoints
            .iter()
            .map(|e| e.conditions.clone().unwrap())
            .map(|c| (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap()))
            .collect();
        assert_eq!(
            conds,
            vec![
                (true, true, false),
                (false, false, false),
                (false, true, true)
            ]
        );
        assert_eq!(sl.endpoints[0].zone.as_deref(), Some("z1"));
        assert_eq!(sl.endpoints[0].node_name.as_deref(), Some("n1"));
        assert_eq!(
            sl.endpoints[0].target_ref.as_ref().unwrap().name.as_deref(),
            Some("a")
        );
    }

    #[test]
    fn at_most_100_per_slice_and_placeholder_when_empty() {
        let s = svc(
            json!({"metadata": {"name": "web", "namespace": "d"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        );
        let pods: Vec<Pod> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    true,
                    false,
                    Some(&format!("10.244.{}.{}", i / 200, i % 200 + 1)),
                )
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let sizes: Vec<usize> = desired_slices(&s, &refs, &|_| None, 100)
            .iter()
            .map(|s| s.endpoints.len())
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let empty = desired_slices(&s, &[], &|_| None, 100);
        assert_eq!(
            empty,
            vec![SliceContent {
                ports: vec![],
                endpoints: vec![]
            }]
        );
    }
}
