//! core/v1 Endpoints and discovery.k8s.io/v1 EndpointSlice: port
//! defaults (`SetDefaults_Endpoints`, `SetDefaults_EndpointPort`) and
//! validation (core `ValidateEndpoints*`, pkg/apis/discovery/validation).

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::container::PORT_PROTOCOLS;
use super::field::{self, Cause, Path};
use super::formats::{
    NameRule, is_dns1123_subdomain, is_valid_port_num, parse_ip_sloppy, validate_dns1123_label,
    validate_ip_legacy, validate_non_special_ip, validate_qualified_name,
};
use super::json::{Obj, default_str, default_value, each};
use super::metadata::{
    immutable_str, validate_labels, validate_object_meta, validate_object_meta_update,
};

/// `maxEndpoints`, `maxAddresses`, `maxPorts`, `maxTopologyLabels`.
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20000;
const MAX_TOPOLOGY_LABELS: usize = 16;

/// `SetDefaults_Endpoints`: ports default to TCP.
pub fn default_endpoints(obj: &mut Obj) {
    for subset in each(obj, "subsets") {
        for port in each(subset, "ports") {
            default_str(port, "protocol", "TCP");
        }
    }
}

/// `SetDefaults_EndpointPort`: name "" and protocol TCP.
pub fn default_endpoint_slice(obj: &mut Obj) {
    for port in each(obj, "ports") {
        default_value(port, "name", json!(""));
        default_value(port, "protocol", json!("TCP"));
    }
}

fn validate_protocol(protocol: Option<&str>, path: &Path) -> Vec<Cause> {
    match protocol.unwrap_or("") {
        "" => vec![field::required(path, "")],
        p if !PORT_PROTOCOLS.contains(&p) => vec![field::not_supported(path, p, PORT_PROTOCOLS)],
        _ => Vec::new(),
    }
}

fn validate_node_name(name: &str, path: &Path) -> Vec<Cause> {
    NameRule::Dns1123Subdomain
        .check(name, false)
        .into_iter()
        .map(|m| field::invalid(path, name, &m))
        .collect()
}

/// `validateEndpointAddress`.
fn validate_address(a: &EndpointAddress, path: &Path) -> Vec<Cause> {
    let mut errs = validate_ip_legacy(&a.ip, &path.child("ip"));
    if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
        errs.extend(validate_dns1123_label(h, &path.child("hostname")));
    }
    if let Some(n) = &a.node_name {
        errs.extend(validate_node_name(n, &path.child("nodeName")));
    }
    if errs.is_empty() {
        errs.extend(validate_non_special_ip(&a.ip, &path.child("ip")));
    }
    errs
}

/// `ValidateEndpoints`.
pub fn validate_endpoints(ep: &Endpoints) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &ep.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    for (i, ss) in ep.subsets.iter().flatten().enumerate() {
        let p = Path::new("subsets").index(i);
        let (addrs, not_ready) = (
            ss.addresses.as_deref().unwrap_or_default(),
            ss.not_ready_addresses.as_deref().unwrap_or_default(),
        );
        if addrs.is_empty() && not_ready.is_empty() {
            errs.push(field::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (j, a) in addrs.iter().enumerate() {
            errs.extend(validate_address(a, &p.child("addresses").index(j)));
        }
        for (j, a) in not_ready.iter().enumerate() {
            errs.extend(validate_address(a, &p.child("notReadyAddresses").index(j)));
        }
        let ports = ss.ports.as_deref().unwrap_or_default();
        for (j, port) in ports.iter().enumerate() {
            let pp = p.child("ports").index(j);
            let name = port.name.as_deref().unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                errs.push(field::required(&pp.child("name"), ""));
            } else if !name.is_empty() {
                errs.extend(validate_dns1123_label(name, &pp.child("name")));
            }
            for m in is_valid_port_num(port.port.into()) {
                errs.push(field::invalid(&pp.child("port"), port.port, &m));
            }
            errs.extend(validate_protocol(
                port.protocol.as_deref(),
                &pp.child("protocol"),
            ));
            if let Some(ap) = &port.app_protocol {
                errs.extend(validate_qualified_name(ap, &pp.child("appProtocol")));
            }
        }
    }
    errs
}

/// `ValidateEndpointsUpdate`.
pub fn validate_endpoints_update(new: &Endpoints, old: &Endpoints) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_endpoints(new));
    errs
}

/// `ValidateEndpointSlice`.
pub fn validate_endpoint_slice(slice: &EndpointSlice) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &slice.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    const TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
    let ty = slice.address_type.as_str();
    if ty.is_empty() {
        errs.push(field::required(&Path::new("addressType"), ""));
    } else if !TYPES.contains(&ty) {
        errs.push(field::not_supported(&Path::new("addressType"), ty, TYPES));
    }
    let ep = Path::new("endpoints");
    if slice.endpoints.len() > MAX_ENDPOINTS {
        errs.push(field::too_many(&ep, slice.endpoints.len(), MAX_ENDPOINTS));
    } else {
        for (i, e) in slice.endpoints.iter().enumerate() {
            let p = ep.index(i);
            let ap = p.child("addresses");
            if e.addresses.is_empty() {
                errs.push(field::required(&ap, "must contain at least 1 address"));
            } else if e.addresses.len() > MAX_ADDRESSES {
                errs.push(field::too_many(&ap, e.addresses.len(), MAX_ADDRESSES));
            }
            for (j, a) in e.addresses.iter().enumerate() {
                let aj = ap.index(j);
                match ty {
                    "IPv4" | "IPv6" => {
                        let family_ok = match parse_ip_sloppy(a) {
                            Some(IpAddr::V4(_)) => ty == "IPv4",
                            Some(IpAddr::V6(_)) => ty == "IPv6",
                            None => false,
                        };
                        if family_ok {
                            errs.extend(validate_non_special_ip(a, &aj));
                        } else {
                            let example = if ty == "IPv4" {
                                "must be a valid IPv4 address"
                            } else {
                                "must be a valid IPv6 address"
                            };
                            errs.push(field::invalid(&aj, a, example));
                        }
                    }
                    "FQDN" => {
                        let trimmed = a.trim_end_matches('.');
                        let mut msgs = is_dns1123_subdomain(&trimmed.to_lowercase());
                        if trimmed.split('.').count() < 2 {
                            msgs.push(
                                "should be a domain with at least two segments separated by dots"
                                    .to_string(),
                            );
                        }
                        errs.extend(msgs.iter().map(|m| field::invalid(&aj, a, m)));
                    }
                    _ => {}
                }
            }
            if let Some(n) = &e.node_name {
                errs.extend(validate_node_name(n, &p.child("nodeName")));
            }
            let tp = p.child("deprecatedTopology");
            if let Some(t) = &e.deprecated_topology {
                if t.len() > MAX_TOPOLOGY_LABELS {
                    errs.push(field::too_many(&tp, t.len(), MAX_TOPOLOGY_LABELS));
                }
                errs.extend(validate_labels(Some(t), &tp));
                if t.contains_key("topology.kubernetes.io/zone") {
                    errs.push(field::internal(
                        &tp.key("topology.kubernetes.io/zone"),
                        "reserved key, use zone instead",
                    ));
                }
            }
            if let Some(h) = &e.hostname {
                errs.extend(validate_dns1123_label(h, &p.child("hostname")));
            }
        }
    }
    let pp = Path::new("ports");
    let ports = slice.ports.as_deref().unwrap_or_default();
    if ports.len() > MAX_PORTS {
        errs.push(field::too_many(&pp, ports.len(), MAX_PORTS));
        return errs;
    }
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = pp.index(i);
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            errs.extend(validate_dns1123_label(name, &p.child("name")));
        }
        if !names.insert(name.to_string()) {
            errs.push(field::duplicate(&p.child("name"), name));
        }
        errs.extend(validate_protocol(
            port.protocol.as_deref(),
            &p.child("protocol"),
        ));
        if let Some(ap) = &port.app_protocol {
            errs.extend(validate_qualified_name(ap, &p.child("appProtocol")));
        }
    }
    errs
}

/// `ValidateEndpointSliceUpdate`: addressType is immutable.
pub fn validate_endpoint_slice_update(new: &EndpointSlice, old: &EndpointSlice) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_endpoint_slice(new));
    errs.extend(immutable_str(
        &new.address_type,
        &old.address_type,
        &Path::new("addressType"),
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn msgs(errs: &[Cause]) -> Vec<String> {
        errs.iter().map(Cause::error_string).collect()
    }

    fn slice(v: Value) -> EndpointSlice {
        let mut v = v;
        default_endpoint_slice(v.as_object_mut().unwrap());
        serde_json::from_value(v).unwrap()
    }

    // SetDefaults_EndpointPort + ValidateEndpointSlice.
    #[test]
    fn endpoint_slice() {
        let ok = slice(
            json!({"metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true}}], "ports": [{"port": 80}]}),
        );
        assert_eq!(
            ok.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        assert!(validate_endpoint_slice(&ok).is_empty());
        let bad = slice(
            json!({"metadata": {"name": "s", "namespace": "default"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["fd00::1"]}, {"addresses": []}, {"addresses": ["127.0.0.1"]}], "ports": [{"port": 80, "protocol": "HTTP"}, {"port": 81}]}),
        );
        assert_eq!(
            msgs(&validate_endpoint_slice(&bad)),
            vec![
                "endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
                "endpoints[1].addresses: Required value: must contain at least 1 address",
                "endpoints[2].addresses[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                "ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "ports[1].name: Duplicate value: \"\"",
            ]
        );
    }

    // Too many endpoints / addressType immutability.
    #[test]
    fn limits_and_immutability() {
        let eps: Vec<Value> = (0..1001)
            .map(|_| json!({"addresses": ["10.0.0.1"]}))
            .collect();
        let s = slice(
            json!({"metadata": {"name": "s", "namespace": "d"}, "addressType": "IPv4", "endpoints": eps}),
        );
        assert_eq!(
            msgs(&validate_endpoint_slice(&s)),
            vec!["endpoints: Too many: 1001: must have at most 1000 items"]
        );
        let old = slice(
            json!({"metadata": {"name": "s", "namespace": "d", "resourceVersion": "1"}, "addressType": "IPv4", "endpoints": []}),
        );
        let new = slice(
            json!({"metadata": {"name": "s", "namespace": "d", "resourceVersion": "1"}, "addressType": "IPv6", "endpoints": []}),
        );
        assert_eq!(
            msgs(&validate_endpoint_slice_update(&new, &old)),
            vec!["addressType: Invalid value: \"IPv6\": field is immutable"]
        );
    }

    // ValidateEndpoints.
    #[test]
    fn endpoints() {
        let mut v = json!({"metadata": {"name": "web", "namespace": "d"}, "subsets": [
            {"addresses": [{"ip": "10.244.0.4"}], "ports": [{"port": 80}, {"name": "b", "port": 70000}]},
            {"ports": [{"port": 1}]}
        ]});
        default_endpoints(v.as_object_mut().unwrap());
        let ep: Endpoints = serde_json::from_value(v).unwrap();
        assert_eq!(
            msgs(&validate_endpoints(&ep)),
            vec![
                "subsets[0].ports[0].name: Required value",
                "subsets[0].ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
            ]
        );
    }
}
