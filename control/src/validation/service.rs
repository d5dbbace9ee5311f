//! core/v1 Service defaults (`SetDefaults_Service`), and what the
//! registry does to allocated fields before validation: the REST update's
//! `patchAllocatedValues` and the strategy's `normalizeClusterIPs`.
//! Validation is in `service_validation`.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use serde_json::{Value, json};

use super::formats::parse_ip_sloppy;
use super::json::{Obj, child, default_str, default_value, each, present, str_of};

/// `DefaultClientIPServiceAffinitySeconds`.
const DEFAULT_AFFINITY_TIMEOUT: i64 = 10800;

pub(super) fn externally_accessible(ty: &str, has_external_ips: bool) -> bool {
    ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips)
}

/// `SetDefaults_Service` (and the single-stack IP family defaults the
/// allocator applies on a single-stack IPv4 cluster).
pub fn default_service(obj: &mut Obj) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_str(spec, "sessionAffinity", "None");
    match str_of(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": DEFAULT_AFFINITY_TIMEOUT}}),
                );
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    for port in each(spec, "ports") {
        default_str(port, "protocol", "TCP");
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if target_unset {
            let p = port.get("port").cloned().unwrap_or(json!(0));
            port.insert("targetPort".into(), p);
        }
    }
    let ty = str_of(spec, "type").to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if externally_accessible(&ty, has_external_ips) {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        default_value(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default_value(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if ty != "ExternalName" {
        default_value(spec, "ipFamilyPolicy", json!("SingleStack"));
        if spec
            .get("ipFamilies")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
        {
            let family = match spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .and_then(parse_ip_sloppy)
            {
                Some(IpAddr::V6(_)) => "IPv6",
                _ => "IPv4",
            };
            spec.insert("ipFamilies".into(), json!([family]));
        }
    }
    if ty == "LoadBalancer"
        && let Some(ingress) = present(obj, "status").and_then(|s| present(s, "loadBalancer"))
    {
        for ing in each(ingress, "ingress") {
            if !str_of(ing, "ip").is_empty() {
                default_value(ing, "ipMode", json!("VIP"));
            }
        }
    }
}

fn needs_node_port(spec: &Obj) -> bool {
    match str_of(spec, "type") {
        "NodePort" => true,
        "LoadBalancer" => {
            spec.get("allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What kube-apiserver does to a Service's allocated fields before
/// validating: on update, values the client left out are carried over from
/// the stored object (`patchAllocatedValues`), then `clusterIP` and
/// `clusterIPs` are made consistent (`normalizeClusterIPs`). Call it after
/// [`default_object`](super::default_object) and before allocation and
/// validation; `old` is `None` on create.
pub fn normalize_cluster_ips(new: &mut Value, old: Option<&Value>) {
    let Some(new_spec) = new.as_object_mut().and_then(|o| child(o, "spec")) else {
        return;
    };
    let Some(old_spec) = old.and_then(|o| o.get("spec")).and_then(Value::as_object) else {
        let ip = str_of(new_spec, "clusterIP").to_string();
        if !ip.is_empty() && strings(new_spec.get("clusterIPs")).is_empty() {
            new_spec.insert("clusterIPs".into(), json!([ip]));
        }
        return;
    };
    // patchAllocatedValues
    if str_of(old_spec, "type") != "ExternalName" && str_of(new_spec, "type") != "ExternalName" {
        if str_of(new_spec, "clusterIP").is_empty() && !str_of(old_spec, "clusterIP").is_empty() {
            new_spec.insert("clusterIP".into(), json!(str_of(old_spec, "clusterIP")));
        }
        if strings(new_spec.get("clusterIPs")).is_empty()
            && !strings(old_spec.get("clusterIPs")).is_empty()
        {
            new_spec.insert(
                "clusterIPs".into(),
                json!(strings(old_spec.get("clusterIPs"))),
            );
        }
    }
    if needs_node_port(old_spec) && needs_node_port(new_spec) {
        let node_ports = |s: &Obj| -> Vec<(String, i64)> {
            s.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        p.get("nodePort").and_then(Value::as_i64).unwrap_or(0),
                    )
                })
                .collect()
        };
        let old_ports = node_ports(old_spec);
        let new_used: HashSet<i64> = node_ports(new_spec)
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| *p != 0)
            .collect();
        let by_name: BTreeMap<String, i64> = old_ports.iter().cloned().collect();
        let used: HashSet<i64> = old_ports
            .iter()
            .map(|(_, p)| *p)
            .filter(|p| new_used.contains(p))
            .collect();
        for port in each(new_spec, "ports") {
            if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                let old_val = by_name.get(str_of(port, "name")).copied().unwrap_or(0);
                if old_val != 0 && !used.contains(&old_val) {
                    port.insert("nodePort".into(), json!(old_val));
                }
            }
        }
    }
    let needs_hc = |s: &Obj| {
        str_of(s, "type") == "LoadBalancer" && str_of(s, "externalTrafficPolicy") == "Local"
    };
    if needs_hc(old_spec)
        && needs_hc(new_spec)
        && new_spec
            .get("healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
        && let Some(v) = old_spec.get("healthCheckNodePort")
    {
        new_spec.insert("healthCheckNodePort".into(), v.clone());
    }
    // normalizeClusterIPs (update)
    let (old_ip, old_ips) = (
        str_of(old_spec, "clusterIP").to_string(),
        strings(old_spec.get("clusterIPs")),
    );
    let new_ip = str_of(new_spec, "clusterIP").to_string();
    if !old_ips.is_empty() && strings(new_spec.get("clusterIPs")).is_empty() && old_ip == new_ip {
        new_spec.insert("clusterIPs".into(), json!(old_ips));
    }
    if old_ip != new_ip {
        let same = strings(new_spec.get("clusterIPs")) == old_ips;
        if !old_ip.is_empty() && new_ip.is_empty() && same {
            new_spec.remove("clusterIPs");
        }
        if !new_ip.is_empty() && same {
            new_spec.insert("clusterIPs".into(), json!([new_ip]));
        }
    }
}

/// Service fixtures shared with `service_validation`'s tests.
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::validation::field::Cause;
    use crate::validation::service_validation::validate_service;

    pub(crate) fn defaulted(v: Value) -> Value {
        let mut v = v;
        default_service(v.as_object_mut().unwrap());
        normalize_cluster_ips(&mut v, None);
        v
    }

    pub(crate) fn check(v: &Value) -> Vec<String> {
        validate_service(&serde_json::from_value(v.clone()).unwrap())
            .iter()
            .map(Cause::error_string)
            .collect()
    }

    pub(crate) fn svc() -> Value {
        defaulted(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], "clusterIP": "10.96.0.10"}}),
        )
    }

    // SetDefaults_Service.
    #[test]
    fn defaults() {
        let s = svc();
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(s["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(s["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
        assert!(check(&s).is_empty(), "{:?}", check(&s));
        let np = defaulted(json!({"spec": {"type": "NodePort", "sessionAffinity": "ClientIP"}}));
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(
            np["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        let lb = defaulted(json!({"spec": {"type": "LoadBalancer"}}));
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    }

    // patchAllocatedValues / normalizeClusterIPs on update.
    #[test]
    fn carries_allocated_values() {
        let old = svc();
        let mut new = old.clone();
        new["spec"].as_object_mut().unwrap().remove("clusterIP");
        new["spec"].as_object_mut().unwrap().remove("clusterIPs");
        normalize_cluster_ips(&mut new, Some(&old));
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        let old = defaulted(
            json!({"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}),
        );
        let mut new = defaulted(
            json!({"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}]}}),
        );
        normalize_cluster_ips(&mut new, Some(&old));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
    }
}
