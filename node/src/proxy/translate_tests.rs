//! Translation cases, many after kube-proxy's own unit tests
//! (`endpointslicecache_test.go`, `topology_test.go`,
//! `servicechangetracker_test.go`).

use std::{net::Ipv4Addr, time::Duration};

use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use serde_json::{Value, json};

use super::*;
use crate::dataplane::{FrontendKind, TrafficPolicy};

const NODE: &str = "node-a";

fn node() -> NodeContext {
    NodeContext {
        node_name: NODE.into(),
        default_algorithm: Algorithm::Random,
    }
}

fn service(spec: Value) -> Service {
    service_with(json!({}), spec, json!({}))
}

fn service_with(metadata: Value, spec: Value, status: Value) -> Service {
    let mut meta = json!({"name": "web", "namespace": "default"});
    meta.as_object_mut()
        .unwrap()
        .extend(metadata.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": spec,
        "status": status,
    }))
    .unwrap()
}

fn slice(name: &str, ports: Value, endpoints: Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn ready(ip: &str, node: &str) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}, "nodeName": node})
}

fn terminating(ip: &str, node: &str, serving: bool) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": false, "serving": serving, "terminating": true}, "nodeName": node})
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

fn http_service() -> Service {
    service(json!({
        "type": "ClusterIP",
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
    }))
}

fn http_slice(name: &str, endpoints: Value) -> EndpointSlice {
    slice(
        name,
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        endpoints,
    )
}

fn addrs(spec: &ServiceSpec) -> Vec<(Ipv4Addr, u16, BackendState, bool)> {
    spec.backends
        .iter()
        .map(|b| (b.addr, b.port, b.state, b.node_local))
        .collect()
}

#[test]
fn cluster_ip_service_with_ready_endpoints() {
    let slices = [http_slice(
        "web-1",
        json!([ready("10.244.1.5", "node-b"), ready("10.244.2.7", NODE)]),
    )];
    let t = translate(&http_service(), &slices, &node());
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert_eq!(t.specs.len(), 1);
    let spec = &t.specs[0];
    assert_eq!(spec.name, "default/web:http");
    assert_eq!(spec.protocol, Protocol::Tcp);
    assert_eq!(
        spec.frontends,
        vec![Frontend::cluster_ip(ip("10.96.0.10"), 80)]
    );
    assert_eq!(
        addrs(spec),
        vec![
            (ip("10.244.1.5"), 8080, BackendState::Ready, false),
            (ip("10.244.2.7"), 8080, BackendState::Ready, true),
        ]
    );
    assert_eq!(spec.algorithm, Algorithm::Random);
    assert_eq!(spec.session_affinity, None);
    assert_eq!(spec.external_policy, TrafficPolicy::Cluster);
    assert_eq!(spec.internal_policy, TrafficPolicy::Cluster);
    assert_eq!(t.health_check, None);
    spec.validate().unwrap();
}

#[test]
fn unnamed_port_is_named_like_kube_proxy() {
    let svc = service(json!({
        "clusterIP": "10.96.0.11",
        "ports": [{"port": 53, "protocol": "UDP"}],
    }));
    let slices = [slice(
        "web-x",
        json!([{"port": 5353, "protocol": "UDP"}]),
        json!([ready("10.244.1.9", NODE)]),
    )];
    let t = translate(&svc, &slices, &node());
    assert_eq!(t.specs[0].name, "default/web");
    assert_eq!(t.specs[0].protocol, Protocol::Udp);
    assert_eq!(
        addrs(&t.specs[0]),
        vec![(ip("10.244.1.9"), 5353, BackendState::Ready, true)]
    );
    assert_eq!(spec_name(&ServiceRef::new("ns", "svc"), ""), "ns/svc");
    assert_eq!(parse_spec_name("ns/svc:dns"), Some(("ns", "svc", "dns")));
    assert_eq!(parse_spec_name("ns/svc"), Some(("ns", "svc", "")));
}

#[test]
fn services_kube_proxy_skips_produce_nothing() {
    for spec in [
        json!({"clusterIP": "None", "ports": [{"port": 80}]}),
        json!({"clusterIP": "", "ports": [{"port": 80}]}),
        json!({"ports": [{"port": 80}]}),
        json!({"type": "ExternalName", "externalName": "example.com", "clusterIP": "10.96.0.3", "ports": [{"port": 80}]}),
        json!({"clusterIP": "fd00::10", "clusterIPs": ["fd00::10"], "ports": [{"port": 80}]}),
    ] {
        let t = translate(&service(spec.clone()), [], &node());
        assert!(t.specs.is_empty(), "{spec}: {:?}", t.specs);
    }
}

#[test]
fn dual_stack_service_uses_its_ipv4_cluster_ip() {
    let svc = service(json!({
        "clusterIP": "fd00::10",
        "clusterIPs": ["fd00::10", "10.96.0.12"],
        "ports": [{"name": "http", "port": 80}],
    }));
    let t = translate(&svc, [], &node());
    assert_eq!(
        t.specs[0].frontends[0],
        Frontend::cluster_ip(ip("10.96.0.12"), 80)
    );
}

#[test]
fn node_port_external_ips_and_load_balancer_vips_are_frontends() {
    let svc = service_with(
        json!({}),
        json!({
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.20",
            "externalIPs": ["192.0.2.10", "2001:db8::1", "192.0.2.10"],
            "ports": [
                {"name": "http", "port": 80, "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
            ],
        }),
        json!({"loadBalancer": {"ingress": [
            {"ip": "198.51.100.1"},
            {"ip": "198.51.100.2", "ipMode": "VIP"},
            {"ip": "198.51.100.3", "ipMode": "Proxy"},
            {"hostname": "lb.example.com"},
        ]}}),
    );
    let t = translate(&svc, [], &node());
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert_eq!(t.specs.len(), 2);
    assert_eq!(
        t.specs[0].frontends,
        vec![
            Frontend::cluster_ip(ip("10.96.0.20"), 80),
            Frontend::node_port(30080),
            Frontend::external_ip(ip("192.0.2.10"), 80),
            Frontend::load_balancer(ip("198.51.100.1"), 80),
            Frontend::load_balancer(ip("198.51.100.2"), 80),
        ]
    );
    assert_eq!(t.specs[1].protocol, Protocol::Udp);
    assert_eq!(t.specs[1].frontends[1], Frontend::node_port(30053));
    assert_eq!(t.specs[1].frontends[2].kind, FrontendKind::ExternalIp);
    for spec in &t.specs {
        spec.validate().unwrap();
    }
}

#[test]
fn a_load_balancer_without_node_ports_has_none() {
    let svc = service(json!({
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.21",
        "allocateLoadBalancerNodePorts": false,
        "ports": [{"name": "http", "port": 80}],
    }));
    let t = translate(&svc, [], &node());
    assert_eq!(t.specs[0].frontends.len(), 1);
}

#[test]
fn ports_resolve_by_name_and_protocol() {
    let svc = service(json!({
        "clusterIP": "10.96.0.30",
        "ports": [
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "metrics", "port": 9090, "targetPort": 9100},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ],
    }));
    let slices = [slice(
        "web-1",
        json!([
            {"name": "metrics", "port": 9100, "protocol": "TCP"},
            {"name": "http", "port": 8080, "protocol": "TCP"},
            // Same name, other protocol: not the UDP service port.
            {"name": "dns", "port": 5353, "protocol": "TCP"},
        ]),
        json!([ready("10.244.1.5", NODE)]),
    )];
    let t = translate(&svc, &slices, &node());
    let by_name = |name: &str| t.specs.iter().find(|s| s.name == name).unwrap();
    assert_eq!(by_name("default/web:http").backends[0].port, 8080);
    assert_eq!(by_name("default/web:metrics").backends[0].port, 9100);
    assert!(by_name("default/web:dns").backends.is_empty());
}

#[test]
fn slice_ports_without_name_or_protocol_take_the_api_defaults() {
    let svc = service(json!({"clusterIP": "10.96.0.31", "ports": [{"port": 80}]}));
    let slices = [slice(
        "web-1",
        json!([{"port": 8080}]),
        json!([ready("10.244.1.5", NODE)]),
    )];
    let t = translate(&svc, &slices, &node());
    assert_eq!(
        addrs(&t.specs[0]),
        vec![(ip("10.244.1.5"), 8080, BackendState::Ready, true)]
    );
}

#[test]
fn slices_are_merged_and_duplicates_counted_once() {
    let slices = [
        http_slice(
            "web-b",
            json!([ready("10.244.1.5", "node-b"), ready("10.244.3.1", "node-c")]),
        ),
        // The same endpoint in a second slice (moving between slices):
        // once, and the node-local copy wins as in kube-proxy.
        http_slice("web-a", json!([ready("10.244.1.5", NODE)])),
        // Not the IPv4 family: ignored.
        serde_json::from_value(json!({
            "metadata": {"name": "web-v6", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv6",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["fd00::5"]}],
        }))
        .unwrap(),
    ];
    let t = translate(&http_service(), &slices, &node());
    assert_eq!(
        addrs(&t.specs[0]),
        vec![
            (ip("10.244.1.5"), 8080, BackendState::Ready, true),
            (ip("10.244.3.1"), 8080, BackendState::Ready, false),
        ]
    );
    // The order the slices come in does not matter.
    let reversed: Vec<EndpointSlice> = slices.iter().rev().cloned().collect();
    assert_eq!(translate(&http_service(), &reversed, &node()), t);
}

#[test]
fn a_duplicate_that_is_ready_in_one_slice_is_ready() {
    let slices = [
        http_slice("web-a", json!([terminating("10.244.1.5", "node-b", true)])),
        http_slice("web-b", json!([ready("10.244.1.5", "node-b")])),
    ];
    let t = translate(&http_service(), &slices, &node());
    assert_eq!(
        addrs(&t.specs[0]),
        vec![(ip("10.244.1.5"), 8080, BackendState::Ready, false)]
    );
}

#[test]
fn endpoint_conditions_follow_kube_proxy() {
    let slices = [http_slice(
        "web-1",
        json!([
            // No conditions at all: ready (nil means true).
            {"addresses": ["10.244.1.1"]},
            // Terminating but still serving: a fallback backend.
            terminating("10.244.1.2", NODE, true),
            // Terminating and no longer serving: never used.
            terminating("10.244.1.3", NODE, false),
            // Not ready and not terminating (starting up): never used.
            {"addresses": ["10.244.1.4"], "conditions": {"ready": false}},
            // Not ready, serving, not terminating: never used.
            {"addresses": ["10.244.1.5"], "conditions": {"ready": false, "serving": true}},
            // Only the first address counts.
            {"addresses": ["10.244.1.6", "10.244.1.7"], "conditions": {"ready": true}},
            // No address, or not an IPv4 one: skipped.
            {"addresses": [], "conditions": {"ready": true}},
            {"addresses": ["not-an-ip"], "conditions": {"ready": true}},
        ]),
    )];
    let t = translate(&http_service(), &slices, &node());
    assert_eq!(
        addrs(&t.specs[0]),
        vec![
            (ip("10.244.1.1"), 8080, BackendState::Ready, false),
            (ip("10.244.1.2"), 8080, BackendState::Terminating, true),
            (ip("10.244.1.6"), 8080, BackendState::Ready, false),
        ]
    );
}

#[test]
fn terminating_endpoints_serve_only_when_no_ready_ones_exist() {
    // kube-proxy's topology_test "Cluster traffic policy, terminating
    // endpoints": the views fall back per view.
    use crate::dataplane::lb::spec::View;
    let slices = [http_slice(
        "web-1",
        json!([
            ready("10.244.1.1", "node-b"),
            terminating("10.244.1.2", NODE, true),
        ]),
    )];
    let mut svc = http_service();
    svc.spec.as_mut().unwrap().internal_traffic_policy = Some("Local".into());
    let t = translate(&svc, &slices, &node());
    let spec = &t.specs[0];
    let (all, all_fallback) = spec.view_backends(View::All);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].addr, ip("10.244.1.1"));
    assert!(!all_fallback);
    // Locally only a terminating one exists: the Local view uses it.
    let (local, local_fallback) = spec.view_backends(View::Local);
    assert_eq!(local.len(), 1);
    assert_eq!(local[0].addr, ip("10.244.1.2"));
    assert!(local_fallback);
}

#[test]
fn traffic_policies_apply_where_kube_proxy_applies_them() {
    let cases = [
        // (type, externalIPs, ETP, ITP) → (external, internal)
        (
            "ClusterIP",
            false,
            "Local",
            "Cluster",
            TrafficPolicy::Cluster,
            TrafficPolicy::Cluster,
        ),
        (
            "ClusterIP",
            true,
            "Local",
            "Cluster",
            TrafficPolicy::Local,
            TrafficPolicy::Cluster,
        ),
        (
            "NodePort",
            false,
            "Local",
            "Cluster",
            TrafficPolicy::Local,
            TrafficPolicy::Cluster,
        ),
        (
            "LoadBalancer",
            false,
            "Cluster",
            "Local",
            TrafficPolicy::Cluster,
            TrafficPolicy::Local,
        ),
        (
            "NodePort",
            false,
            "Local",
            "Local",
            TrafficPolicy::Local,
            TrafficPolicy::Local,
        ),
    ];
    for (kind, external_ips, etp, itp, external, internal) in cases {
        let mut spec = json!({
            "type": kind,
            "clusterIP": "10.96.0.40",
            "externalTrafficPolicy": etp,
            "internalTrafficPolicy": itp,
            "healthCheckNodePort": 32000,
            "ports": [{"name": "http", "port": 80, "nodePort": 30040}],
        });
        if external_ips {
            spec["externalIPs"] = json!(["192.0.2.40"]);
        }
        let t = translate(&service(spec), [], &node());
        let what = format!("{kind} externalIPs={external_ips} {etp}/{itp}");
        assert_eq!(t.specs[0].external_policy, external, "{what}");
        assert_eq!(t.specs[0].internal_policy, internal, "{what}");
    }
}

#[test]
fn client_ip_affinity_uses_the_timeout_or_the_default() {
    let mut svc = http_service();
    svc.spec.as_mut().unwrap().session_affinity = Some("ClientIP".into());
    let t = translate(&svc, [], &node());
    assert_eq!(
        t.specs[0].session_affinity,
        Some(Duration::from_secs(10_800))
    );

    let svc = service(json!({
        "clusterIP": "10.96.0.50",
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        "ports": [{"name": "http", "port": 80}],
    }));
    let t = translate(&svc, [], &node());
    assert_eq!(t.specs[0].session_affinity, Some(Duration::from_secs(60)));

    let svc = service(json!({
        "clusterIP": "10.96.0.50",
        "sessionAffinity": "None",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        "ports": [{"name": "http", "port": 80}],
    }));
    assert_eq!(translate(&svc, [], &node()).specs[0].session_affinity, None);
}

#[test]
fn the_algorithm_annotation_overrides_the_node_default() {
    for (value, algorithm) in [
        ("random", Algorithm::Random),
        ("maglev", Algorithm::Maglev),
        ("round-robin", Algorithm::RoundRobin),
        ("least-connections", Algorithm::LeastConnections),
    ] {
        let svc = service_with(
            json!({"annotations": {ALGORITHM_ANNOTATION: value}}),
            json!({"clusterIP": "10.96.0.60", "ports": [{"port": 80}]}),
            json!({}),
        );
        let t = translate(&svc, [], &node());
        assert_eq!(t.specs[0].algorithm, algorithm, "{value}");
        assert!(t.warnings.is_empty());
    }
    // Unknown value: the node default, and a warning saying why.
    let mut ctx = node();
    ctx.default_algorithm = Algorithm::Maglev;
    let svc = service_with(
        json!({"annotations": {ALGORITHM_ANNOTATION: "fastest"}}),
        json!({"clusterIP": "10.96.0.60", "ports": [{"port": 80}]}),
        json!({}),
    );
    let t = translate(&svc, [], &ctx);
    assert_eq!(t.specs[0].algorithm, Algorithm::Maglev);
    assert_eq!(t.warnings.len(), 1);
    assert!(t.warnings[0].contains("fastest"), "{:?}", t.warnings);
    // No annotation: the node default.
    assert_eq!(
        translate(&http_service(), [], &ctx).specs[0].algorithm,
        Algorithm::Maglev
    );
}

#[test]
fn local_load_balancers_get_a_health_check_counting_local_ready_endpoints() {
    let svc = service(json!({
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.70",
        "externalTrafficPolicy": "Local",
        "healthCheckNodePort": 32100,
        "ports": [
            {"name": "http", "port": 80, "nodePort": 30070},
            {"name": "https", "port": 443, "nodePort": 30071},
        ],
    }));
    let slices = [slice(
        "web-1",
        json!([{"name": "http", "port": 8080}, {"name": "https", "port": 8443}]),
        json!([
            ready("10.244.1.1", NODE),
            ready("10.244.1.2", "node-b"),
            terminating("10.244.1.3", NODE, true),
        ]),
    )];
    let t = translate(&svc, &slices, &node());
    // One local ready endpoint, counted per port as kube-proxy does.
    assert_eq!(
        t.health_check,
        Some(HealthCheck {
            port: 32100,
            local_endpoints: 2
        })
    );
    // Another node has none.
    let other = NodeContext {
        node_name: "node-z".into(),
        default_algorithm: Algorithm::Random,
    };
    assert_eq!(
        translate(&svc, &slices, &other).health_check,
        Some(HealthCheck {
            port: 32100,
            local_endpoints: 0
        })
    );
    // NodePort services have no health check, nor do Cluster-policy LBs.
    let mut node_port = svc.clone();
    node_port.spec.as_mut().unwrap().type_ = Some("NodePort".into());
    assert_eq!(translate(&node_port, &slices, &node()).health_check, None);
    let mut cluster = svc.clone();
    cluster.spec.as_mut().unwrap().external_traffic_policy = Some("Cluster".into());
    assert_eq!(translate(&cluster, &slices, &node()).health_check, None);
}

#[test]
fn unsupported_ports_are_skipped_with_a_warning() {
    let svc = service(json!({
        "clusterIP": "10.96.0.80",
        "ports": [
            {"name": "sctp", "port": 9999, "protocol": "SCTP"},
            {"name": "http", "port": 80},
        ],
    }));
    let t = translate(&svc, [], &node());
    assert_eq!(t.specs.len(), 1);
    assert_eq!(t.specs[0].name, "default/web:http");
    assert_eq!(t.warnings.len(), 1);
    assert!(t.warnings[0].contains("SCTP"), "{:?}", t.warnings);
}

#[test]
fn source_ranges_are_not_enforced_and_say_so() {
    let svc = service(json!({
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.90",
        "loadBalancerSourceRanges": ["203.0.113.0/24"],
        "ports": [{"name": "http", "port": 80, "nodePort": 30090}],
    }));
    let t = translate(&svc, [], &node());
    assert_eq!(t.specs.len(), 1);
    assert!(
        t.warnings
            .iter()
            .any(|w| w.contains("loadBalancerSourceRanges")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn nothing_is_local_without_a_node_name() {
    let slices = [http_slice("web-1", json!([{"addresses": ["10.244.1.1"]}]))];
    let ctx = NodeContext {
        node_name: String::new(),
        default_algorithm: Algorithm::Random,
    };
    let t = translate(&http_service(), &slices, &ctx);
    assert!(!t.specs[0].backends[0].node_local);
}

#[test]
fn slices_name_their_service_by_label() {
    let s = http_slice("web-1", json!([]));
    assert_eq!(
        ServiceRef::of_slice(&s),
        Some(ServiceRef::new("default", "web"))
    );
    let unlabelled: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "x", "namespace": "default"},
        "addressType": "IPv4", "endpoints": [],
    }))
    .unwrap();
    assert_eq!(ServiceRef::of_slice(&unlabelled), None);
}
