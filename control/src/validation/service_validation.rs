//! core/v1 Service validation (`ValidateService`, `ValidateServiceUpdate`,
//! `ValidateServiceStatusUpdate`).

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::container::{PORT_PROTOCOLS, validate_port_num_or_name};
use super::field::{self, BadValue, Cause, Path, go_quote, go_string_slice};
use super::formats::{
    NameRule, is_valid_port_num, parse_ip_sloppy, validate_cidr_legacy, validate_dns1123_label,
    validate_dns1123_subdomain, validate_ip_legacy, validate_non_special_ip,
    validate_qualified_name,
};
use super::metadata::{validate_labels, validate_object_meta, validate_object_meta_update};
use super::service::externally_accessible;

/// `MaxClientIPServiceAffinitySeconds`.
const MAX_AFFINITY_TIMEOUT: i32 = 86400;
/// `ports.KubeletPort`.
const KUBELET_PORT: i32 = 10250;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ips
        .as_ref()
        .and_then(|c| c.first())
        .is_some_and(|c| c == "None")
}

/// Go's `%#v` of the `core.ServicePort` key used for duplicate detection.
fn go_port_key(protocol: &str, port: i32) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(protocol)
    )
}

/// `validateServicePort`.
fn validate_port(
    sp: &ServicePort,
    require_name: bool,
    names: &mut HashSet<String>,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let name = sp.name.as_deref().unwrap_or("");
    if require_name && name.is_empty() {
        errs.push(field::required(&path.child("name"), ""));
    } else if !name.is_empty() {
        errs.extend(validate_dns1123_label(name, &path.child("name")));
        if !names.insert(name.to_string()) {
            errs.push(field::duplicate(&path.child("name"), name));
        }
    }
    for m in is_valid_port_num(sp.port.into()) {
        errs.push(field::invalid(&path.child("port"), sp.port, &m));
    }
    match sp.protocol.as_deref().unwrap_or("") {
        "" => errs.push(field::required(&path.child("protocol"), "")),
        p if !PORT_PROTOCOLS.contains(&p) => errs.push(field::not_supported(
            &path.child("protocol"),
            p,
            PORT_PROTOCOLS,
        )),
        _ => {}
    }
    errs.extend(validate_port_num_or_name(
        sp.target_port.as_ref().unwrap_or(&IntOrString::Int(0)),
        &path.child("targetPort"),
    ));
    if let Some(ap) = &sp.app_protocol {
        errs.extend(validate_qualified_name(ap, &path.child("appProtocol")));
    }
    errs
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn validate_cluster_ips(spec: &ServiceSpec, ty: &str) -> Vec<Cause> {
    if ty == "ExternalName" {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let sp = Path::new("spec");
    let ips_path = sp.child("clusterIPs");
    let ip = spec.cluster_ip.as_deref().unwrap_or("");
    let ips = spec.cluster_ips.clone().unwrap_or_default();
    let ips_value = || BadValue::Go(go_string_slice(Some(&ips)));
    if !ip.is_empty() {
        if ips.is_empty() {
            errs.push(field::required(&ips_path, ""));
        } else if ips[0] != ip {
            errs.push(field::invalid(
                &ips_path,
                ips_value(),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(field::invalid(
            &ips_path,
            ips_value(),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = HashSet::new();
    for (i, f) in spec.ip_families.iter().flatten().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            errs.push(field::not_supported(
                &sp.child("ipFamilies").index(i),
                f,
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(f.clone()) {
            errs.push(field::duplicate(&sp.child("ipFamilies").index(i), f));
        }
    }
    if let Some(p) = spec.ip_family_policy.as_deref() {
        const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&p) {
            errs.push(field::not_supported(
                &sp.child("ipFamilyPolicy"),
                p,
                POLICIES,
            ));
        }
    }
    let mut invalid = false;
    for (i, c) in ips.iter().enumerate() {
        if i == 0 && c == "None" {
            if ips.len() > 1 {
                invalid = true;
                errs.push(field::invalid(
                    &ips_path,
                    ips_value(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let e = validate_ip_legacy(c, &ips_path.index(i));
        invalid |= !e.is_empty();
        errs.extend(e);
    }
    if ips.len() > 2 {
        errs.push(field::invalid(
            &ips_path,
            ips_value(),
            "may only hold up to 2 values",
        ));
    }
    if invalid {
        return errs;
    }
    if ips.len() > 1 {
        let v6: Vec<bool> = ips
            .iter()
            .map(|c| matches!(parse_ip_sloppy(c), Some(IpAddr::V6(_))))
            .collect();
        if v6.iter().all(|b| *b) || v6.iter().all(|b| !*b) {
            errs.push(field::invalid(
                &ips_path,
                ips_value(),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(spec) {
        for (i, (c, f)) in ips
            .iter()
            .zip(spec.ip_families.iter().flatten())
            .enumerate()
        {
            let is_v6 = matches!(parse_ip_sloppy(c), Some(IpAddr::V6(_)));
            if f == "IPv4" && is_v6 {
                errs.push(field::invalid(
                    &ips_path.index(i),
                    c,
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if f == "IPv6" && !is_v6 {
                errs.push(field::invalid(
                    &ips_path.index(i),
                    c,
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

/// `ValidateService`.
pub fn validate_service(svc: &Service) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &svc.metadata,
        true,
        NameRule::Dns1035Label,
        &Path::new("metadata"),
    );
    let spec = svc.spec.clone().unwrap_or_default();
    let sp = Path::new("spec");
    let ty = spec.type_.as_deref().unwrap_or("");
    let ports = spec.ports.clone().unwrap_or_default();
    let headless = is_headless(&spec);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(field::required(&sp.child("ports"), ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => {
            errs.push(field::invalid(
                &sp.child("clusterIPs").index(0),
                "None",
                &format!("may not be set to 'None' for {ty} services"),
            ));
        }
        "ExternalName" => {
            if spec.cluster_ips.as_ref().is_some_and(|c| !c.is_empty()) {
                errs.push(field::forbidden(
                    &sp.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_families.as_ref().is_some_and(|c| !c.is_empty()) {
                errs.push(field::forbidden(
                    &sp.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(field::forbidden(
                    &sp.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let cname = spec
                .external_name
                .as_deref()
                .unwrap_or("")
                .trim_end_matches('.');
            if cname.is_empty() {
                errs.push(field::required(&sp.child("externalName"), ""));
            } else {
                errs.extend(validate_dns1123_subdomain(cname, &sp.child("externalName")));
            }
        }
        _ => {}
    }
    if ty == "LoadBalancer" {
        for (i, p) in ports.iter().enumerate() {
            if p.port == KUBELET_PORT {
                errs.push(field::invalid(
                    &sp.child("ports").index(i),
                    p.port,
                    &format!(
                        "may not expose port {KUBELET_PORT} externally since it is used by kubelet"
                    ),
                ));
            }
        }
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        errs.extend(validate_port(
            p,
            ports.len() > 1,
            &mut names,
            &sp.child("ports").index(i),
        ));
    }
    if spec.selector.is_some() {
        errs.extend(validate_labels(
            spec.selector.as_ref(),
            &sp.child("selector"),
        ));
    }
    let affinity = spec.session_affinity.as_deref().unwrap_or("");
    match affinity {
        "" => errs.push(field::required(&sp.child("sessionAffinity"), "")),
        "ClientIP" | "None" => {}
        other => errs.push(field::not_supported(
            &sp.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }
    let cfg_path = sp.child("sessionAffinityConfig");
    if affinity == "ClientIP" {
        const WHEN: &str = "when session affinity type is ClientIP";
        match spec
            .session_affinity_config
            .as_ref()
            .map(|c| c.client_ip.as_ref())
        {
            None => errs.push(field::required(&cfg_path, WHEN)),
            Some(None) => errs.push(field::required(&cfg_path.child("clientIP"), WHEN)),
            Some(Some(c)) => match c.timeout_seconds {
                None => errs.push(field::required(
                    &cfg_path.child("clientIP").child("timeoutSeconds"),
                    WHEN,
                )),
                Some(t) if t <= 0 || t > MAX_AFFINITY_TIMEOUT => errs.push(field::invalid(
                    &cfg_path.child("clientIP").child("timeoutSeconds"),
                    t,
                    &format!("must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT}"),
                )),
                Some(_) => {}
            },
        }
    } else if affinity == "None" && spec.session_affinity_config.is_some() {
        errs.push(field::forbidden(
            &cfg_path,
            "must not be set when session affinity is None",
        ));
    }
    errs.extend(validate_cluster_ips(&spec, ty));
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        let p = sp.child("externalIPs").index(i);
        let e = validate_ip_legacy(ip, &p);
        if e.is_empty() {
            errs.extend(validate_non_special_ip(ip, &p));
        } else {
            errs.extend(e);
        }
    }
    if ty.is_empty() {
        errs.push(field::required(&sp.child("type"), ""));
    } else if !SERVICE_TYPES.contains(&ty) {
        errs.push(field::not_supported(&sp.child("type"), ty, SERVICE_TYPES));
    }
    if ty == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if p.node_port.unwrap_or(0) != 0 {
                errs.push(field::forbidden(
                    &sp.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let np = p.node_port.unwrap_or(0);
        if np != 0 && !node_ports.insert((p.protocol.clone(), np)) {
            errs.push(field::duplicate(
                &sp.child("ports").index(i).child("nodePort"),
                np,
            ));
        }
    }
    let mut seen_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.clone().unwrap_or_default();
        if !seen_ports.insert((proto.clone(), p.port)) {
            errs.push(field::duplicate(
                &sp.child("ports").index(i),
                BadValue::Go(go_port_key(&proto, p.port)),
            ));
        }
    }
    if let Some(ranges) = spec
        .load_balancer_source_ranges
        .as_ref()
        .filter(|r| !r.is_empty())
    {
        let p = sp.child("LoadBalancerSourceRanges");
        if ty != "LoadBalancer" {
            errs.push(field::forbidden(
                &p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            errs.extend(validate_cidr_legacy(r.trim(), &p.index(i)));
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && ty != "LoadBalancer" {
        errs.push(field::forbidden(
            &sp.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        errs.push(field::required(
            &Path::new("allocateLoadBalancerNodePorts"),
            "",
        ));
    }
    if let Some(class) = &spec.load_balancer_class {
        if ty != "LoadBalancer" {
            errs.push(field::forbidden(
                &sp.child("loadBalancerClass"),
                "may only be used when `type` is 'LoadBalancer'",
            ));
        } else {
            errs.extend(validate_qualified_name(
                class,
                &sp.child("loadBalancerClass"),
            ));
        }
    }
    let etp = spec.external_traffic_policy.as_deref().unwrap_or("");
    let has_external_ips = spec.external_ips.as_ref().is_some_and(|e| !e.is_empty());
    if !externally_accessible(ty, has_external_ips) {
        if !etp.is_empty() {
            errs.push(field::invalid(
                &sp.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(field::required(&sp.child("externalTrafficPolicy"), ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(field::not_supported(
            &sp.child("externalTrafficPolicy"),
            etp,
            &["Cluster", "Local"],
        ));
    }
    let hc = spec.health_check_node_port.unwrap_or(0);
    if !(ty == "LoadBalancer" && etp == "Local") {
        if hc != 0 {
            errs.push(field::invalid(
                &sp.child("healthCheckNodePort"),
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        errs.push(field::required(&sp.child("healthCheckNodePort"), ""));
    } else {
        for m in is_valid_port_num(hc.into()) {
            errs.push(field::invalid(&sp.child("healthCheckNodePort"), hc, &m));
        }
    }
    match spec.internal_traffic_policy.as_deref() {
        None if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") => {
            errs.push(field::required(&sp.child("internalTrafficPolicy"), ""));
        }
        Some(p) if p != "Cluster" && p != "Local" => {
            errs.push(field::not_supported(
                &sp.child("internalTrafficPolicy"),
                p,
                &["Cluster", "Local"],
            ));
        }
        _ => {}
    }
    if let Some(td) = spec.traffic_distribution.as_deref()
        && td != "PreferClose"
    {
        errs.push(field::not_supported(
            &sp.child("trafficDistribution"),
            td,
            &["PreferClose"],
        ));
    }
    errs
}

/// `validateUpgradeDowngradeClusterIPs`: allocated IPs never change.
fn validate_cluster_ips_update(new: &ServiceSpec, old: &ServiceSpec) -> Vec<Cause> {
    let (nt, ot) = (
        new.type_.as_deref().unwrap_or(""),
        old.type_.as_deref().unwrap_or(""),
    );
    if nt == "ExternalName" || ot == "ExternalName" || (is_headless(new) && is_headless(old)) {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let (n, o) = (
        new.cluster_ips.clone().unwrap_or_default(),
        old.cluster_ips.clone().unwrap_or_default(),
    );
    let p = Path::new("spec").child("clusterIPs");
    let value = || BadValue::Go(go_string_slice(Some(&n)));
    if n.len() == o.len() {
        for (i, ip) in o.iter().enumerate() {
            if *ip != n[i] {
                errs.push(field::invalid(
                    &p.index(i),
                    value(),
                    "may not change once set",
                ));
            }
        }
    } else if o.len() > n.len() {
        if n.is_empty() {
            errs.push(field::invalid(
                &p.index(0),
                value(),
                "primary clusterIP can not be unset",
            ));
        }
        if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            errs.push(field::invalid(
                &p.index(0),
                value(),
                "may not change once set",
            ));
        }
        if n.len() == 1 && new.ip_family_policy.as_deref() != Some("SingleStack") {
            errs.push(field::invalid(
                &p.index(0),
                value(),
                "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !o.is_empty() && n[0] != o[0] {
        errs.push(field::invalid(
            &p.index(0),
            value(),
            "may not change once set",
        ));
    }
    errs
}

/// `validateUpgradeDowngradeIPFamilies`.
fn validate_ip_families_update(new: &ServiceSpec, old: &ServiceSpec) -> Vec<Cause> {
    let (nt, ot) = (
        new.type_.as_deref().unwrap_or(""),
        old.type_.as_deref().unwrap_or(""),
    );
    if nt == "ExternalName" || ot == "ExternalName" {
        return Vec::new();
    }
    let (n, o) = (
        new.ip_families.clone().unwrap_or_default(),
        old.ip_families.clone().unwrap_or_default(),
    );
    let p = Path::new("spec").child("ipFamilies");
    let value = || {
        BadValue::Go(format!(
            "[]core.IPFamily{{{}}}",
            n.iter().map(|f| go_quote(f)).collect::<Vec<_>>().join(", ")
        ))
    };
    let mut errs = Vec::new();
    if n.len() == o.len() {
        for (i, f) in o.iter().enumerate() {
            if *f != n[i] {
                errs.push(field::invalid(
                    &p.index(0),
                    value(),
                    "may not change once set",
                ));
            }
        }
    } else if !n.is_empty() && !o.is_empty() && n[0] != o[0] {
        errs.push(field::invalid(
            &p.index(0),
            value(),
            "may not change once set",
        ));
    } else if o.len() > n.len()
        && n.len() == 1
        && new.ip_family_policy.as_deref() != Some("SingleStack")
    {
        errs.push(field::invalid(
            &p,
            value(),
            "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary ipFamily",
        ));
    }
    errs
}

/// `ValidateServiceUpdate`.
pub fn validate_service_update(new: &Service, old: &Service) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let (ns, os) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    errs.extend(validate_cluster_ips_update(&ns, &os));
    errs.extend(validate_ip_families_update(&ns, &os));
    if os.type_.as_deref() == Some("LoadBalancer")
        && ns.type_.as_deref() == Some("LoadBalancer")
        && ns.load_balancer_class != os.load_balancer_class
    {
        errs.push(field::invalid(
            &Path::new("spec").child("loadBalancerClass"),
            BadValue::from(ns.load_balancer_class.clone()),
            "may not change once set",
        ));
    }
    errs.extend(validate_service(new));
    errs
}

/// `ValidateServiceStatusUpdate` / `ValidateLoadBalancerStatus`.
pub fn validate_service_status_update(new: &Service, old: &Service) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let ty = new
        .spec
        .as_ref()
        .and_then(|s| s.type_.clone())
        .unwrap_or_default();
    let ingress = new
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.clone())
        .unwrap_or_default();
    let p = Path::new("status").child("loadBalancer").child("ingress");
    if ty != "LoadBalancer" && !ingress.is_empty() {
        errs.push(field::forbidden(
            &p,
            "may only be used when `spec.type` is 'LoadBalancer'",
        ));
        return errs;
    }
    for (i, ing) in ingress.iter().enumerate() {
        let ip = p.index(i);
        let addr = ing.ip.as_deref().unwrap_or("");
        if !addr.is_empty() {
            errs.extend(validate_ip_legacy(addr, &ip.child("ip")));
        }
        match (ing.ip_mode.as_deref(), addr.is_empty()) {
            (None, false) => errs.push(field::required(
                &ip.child("ipMode"),
                "must be specified when `ip` is set",
            )),
            (Some(_), true) => errs.push(field::forbidden(
                &ip.child("ipMode"),
                "may not be specified when `ip` is not set",
            )),
            (Some(m), false) if m != "Proxy" && m != "VIP" => {
                errs.push(field::not_supported(
                    &ip.child("ipMode"),
                    m,
                    &["Proxy", "VIP"],
                ));
            }
            _ => {}
        }
        if let Some(h) = ing.hostname.as_deref().filter(|h| !h.is_empty()) {
            errs.extend(validate_dns1123_subdomain(h, &ip.child("hostname")));
            if parse_ip_sloppy(h).is_some() {
                errs.push(field::invalid(
                    &ip.child("hostname"),
                    h,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::service::normalize_cluster_ips;
    use crate::validation::service::tests::{check, svc};
    use serde_json::json;

    // ValidateService: ports, names, types, nodePort on ClusterIP, affinity timeout.
    #[test]
    fn spec_rules() {
        let mut s = svc();
        s["metadata"]["name"] = json!("1web");
        s["spec"]["ports"] = json!([
            {"port": 0, "protocol": "TCP", "targetPort": 80},
            {"name": "b", "port": 81, "protocol": "TCP", "targetPort": 81, "nodePort": 30001}
        ]);
        s["spec"]["sessionAffinity"] = json!("ClientIP");
        s["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 90000}});
        assert_eq!(
            check(&s),
            vec![
                "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 90000: must be greater than 0 and less than 86400",
                "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            ]
        );
        let mut s = svc();
        s["spec"]["ports"] = json!([]);
        s["spec"]["type"] = json!("Magic");
        s["spec"]["externalTrafficPolicy"] = json!("Local");
        assert_eq!(
            check(&s),
            vec![
                "spec.ports: Required value",
                "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services",
            ]
        );
    }

    // Duplicate (protocol, port) pairs.
    #[test]
    fn duplicate_ports() {
        let mut s = svc();
        s["spec"]["ports"] = json!([{"name": "a", "port": 80, "protocol": "TCP", "targetPort": 80}, {"name": "b", "port": 80, "protocol": "TCP", "targetPort": 8080}]);
        assert_eq!(
            check(&s),
            vec![
                "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"
            ]
        );
    }

    // validateUpgradeDowngradeClusterIPs: clusterIP is immutable.
    #[test]
    fn cluster_ip_immutable() {
        let mut old = svc();
        old["metadata"]["resourceVersion"] = json!("1");
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.0.11");
        normalize_cluster_ips(&mut new, Some(&old));
        let errs: Vec<String> = validate_service_update(
            &serde_json::from_value(new).unwrap(),
            &serde_json::from_value(old.clone()).unwrap(),
        )
        .iter()
        .map(Cause::error_string)
        .collect();
        assert_eq!(
            errs,
            vec![
                "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"
            ]
        );
        // A client that omits the allocated IP keeps it (patchAllocatedValues).
        let mut new = old.clone();
        new["spec"].as_object_mut().unwrap().remove("clusterIP");
        new["spec"].as_object_mut().unwrap().remove("clusterIPs");
        normalize_cluster_ips(&mut new, Some(&old));
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        assert!(
            validate_service_update(
                &serde_json::from_value(new).unwrap(),
                &serde_json::from_value(old).unwrap()
            )
            .is_empty()
        );
    }

    // ValidateLoadBalancerStatus.
    #[test]
    fn status_rules() {
        let mut old = svc();
        old["metadata"]["resourceVersion"] = json!("1");
        let mut new = old.clone();
        new["status"] = json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}});
        let errs: Vec<String> = validate_service_status_update(
            &serde_json::from_value(new).unwrap(),
            &serde_json::from_value(old).unwrap(),
        )
        .iter()
        .map(Cause::error_string)
        .collect();
        assert_eq!(
            errs,
            vec![
                "status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"
            ]
        );
    }
}
