//! The eBPF service proxy end to end: 3 nodes each running `baton-node
//! proxy` against the real API server, "pods" wired by baton-cni on every
//! node, Services created with the real kubectl and EndpointSlices written
//! as the EndpointSlice controller would. The scenarios share one cluster
//! (run in order by one test, each named for what it shows) to keep the
//! suite fast.

mod proxy_cluster;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use proxy_cluster::{
    HTTP_PORT, PodInfo, ProxyCluster, TCP_PORT, UDP_PORT, answered_by, borrowed, ready,
    seen_client, slice_manifest, sock,
};

/// Re-executed as the client processes of the scenarios.
#[test]
fn probe_child() {
    baton_e2e::probe::child_main();
}

struct Pods {
    p1: PodInfo,
    p2: PodInfo,
    p3: PodInfo,
}

impl Pods {
    fn all(&self) -> [&PodInfo; 3] {
        [&self.p1, &self.p2, &self.p3]
    }

    fn ips(&self) -> BTreeSet<Ipv4Addr> {
        self.all().iter().map(|p| p.ip).collect()
    }
}

fn step(name: &str) {
    eprintln!("=== {name}");
}

#[test]
fn services_are_load_balanced_in_the_kernel_end_to_end() {
    let mut c = ProxyCluster::start(3, |_| Vec::new());
    let pods = Pods {
        p1: c.add_pod(1, "p1"),
        p2: c.add_pod(2, "p2"),
        p3: c.add_pod(3, "p3"),
    };
    c.add_pod(1, "client1");

    step("cluster_ip_answers_from_every_node_and_every_pod_over_tcp_and_udp");
    cluster_ip_answers_from_every_node_and_every_pod(&c, &pods);
    step("a_service_without_endpoints_is_refused_at_once");
    a_service_without_endpoints_is_refused_at_once(&c);
    step("node_port_answers_on_every_node_with_a_backend_on_another_node");
    node_port_answers_on_every_node_with_a_backend_on_another_node(&c, &pods);
    step("external_traffic_policy_local_keeps_the_client_address_and_health_checks_count");
    external_traffic_policy_local(&c, &pods);
    step("session_affinity_keeps_a_client_on_one_backend_until_the_timeout");
    session_affinity_keeps_a_client_on_one_backend_until_the_timeout(&c, &pods);
    step("endpoint_changes_reach_the_datapath_in_under_a_second");
    endpoint_changes_reach_the_datapath_quickly(&c, &pods);
    step("terminating_endpoints_serve_only_without_ready_ones");
    terminating_endpoints_serve_only_without_ready_ones(&c, &pods);
    step("metrics_and_dump_name_the_services");
    metrics_and_dump_name_the_services(&c);
    step("no_iptables_nft_or_ipvs_rules_exist");
    no_iptables_nft_or_ipvs_rules_exist(&c);
}

const ECHO_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: tcp, port: 9000, targetPort: 9000, protocol: TCP}
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
"#;

fn echo_slice(name: &str, service: &str, endpoints: &[(PodInfo, bool, bool, bool)]) -> String {
    slice_manifest(
        name,
        service,
        &[
            ("http", HTTP_PORT, "TCP"),
            ("tcp", TCP_PORT, "TCP"),
            ("dns", UDP_PORT, "UDP"),
        ],
        &borrowed(endpoints),
    )
}

fn cluster_ip_answers_from_every_node_and_every_pod(c: &ProxyCluster, pods: &Pods) {
    c.apply(ECHO_SERVICE);
    c.apply(&echo_slice("echo-1", "echo", &ready(&pods.all())));
    let vip = c.cluster_ip("echo");
    let http = sock(vip, 80);
    let dns = sock(vip, 53);

    let mut probes: Vec<(String, baton_e2e::probe::Probe)> = (1..=3)
        .map(|i| (format!("node {i}"), c.host_probe(i)))
        .collect();
    for pod in ["p1", "p2", "p3", "client1"] {
        probes.push((format!("pod {pod}"), c.pod_probe(pod)));
    }
    for (who, probe) in &mut probes {
        // The service is programmed shortly after the slice is written,
        // by each node on its own.
        c.wait(
            Duration::from_secs(10),
            &format!("the echo service answering {who}"),
            || probe.http_get(http, "/").is_ok(),
        );
        let mut seen = BTreeSet::new();
        for _ in 0..12 {
            let reply = probe
                .http_get(http, "/")
                .unwrap_or_else(|e| panic!("{who}: GET {http}: {e:?}\n{}", c.logs()));
            assert_eq!(reply.status, 200, "{who}: {reply:?}");
            // Socket LB: the socket is connected to a backend, yet
            // getpeername shows the service.
            assert_eq!(reply.peer, http.to_string(), "{who}");
            let pod = answered_by(&reply.body).expect("podIP in the answer");
            assert!(pods.ips().contains(&pod), "{who}: answered by {pod}");
            seen.insert(pod);
        }
        assert!(
            seen.len() >= 2,
            "{who}: 12 connections all went to {seen:?} (random selection over 3)"
        );
        // A DNS-style UDP exchange: the answer comes from the service
        // address (recvmsg4) and carries the payload.
        let reply = probe
            .udp(dns, "query-1")
            .unwrap_or_else(|e| panic!("{who}: UDP {dns}: {e:?}"));
        assert_eq!(reply.from, dns.to_string(), "{who}");
        assert!(reply.reply.ends_with("query-1"), "{who}: {reply:?}");
        // TCP echo on the second port: a held connection.
        let (id, peer) = probe.connect(sock(vip, 9000)).expect("tcp port");
        assert_eq!(peer, sock(vip, 9000).to_string());
        assert_eq!(probe.echo(id, "hello").expect("echo"), "hello");
        probe.close(id);
    }
}

fn a_service_without_endpoints_is_refused_at_once(c: &ProxyCluster) {
    c.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  type: NodePort
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
"#,
    );
    let vip = c.cluster_ip("empty");
    let node_port = c.node_port("empty", "http");
    let mut probe = c.host_probe(2);
    // Wait until the service is programmed: refused instead of timing out.
    c.wait(
        Duration::from_secs(10),
        "the empty service programmed",
        || {
            probe
                .http_get_within(sock(vip, 80), "/", Duration::from_millis(500))
                .is_err_and(|e| e.refused())
        },
    );
    for _ in 0..5 {
        let error = probe
            .http_get(sock(vip, 80), "/")
            .expect_err("no endpoints");
        assert!(
            error.refused(),
            "TCP to a service without endpoints: {error:?}"
        );
        assert!(error.ms < 100.0, "refused after {} ms", error.ms);
        let error = probe.udp(sock(vip, 53), "q").expect_err("no endpoints");
        assert!(
            error.refused(),
            "UDP to a service without endpoints: {error:?}"
        );
        assert!(error.ms < 100.0, "refused after {} ms", error.ms);
    }
    // From outside, through the NodePort: an RST at once.
    let mut client = c.client_probe();
    let error = client
        .http_get(sock(c.node_ip(1), node_port), "/")
        .expect_err("no endpoints");
    assert!(error.refused(), "NodePort without endpoints: {error:?}");
    assert!(error.ms < 100.0, "refused after {} ms", error.ms);
}

fn node_port_answers_on_every_node_with_a_backend_on_another_node(c: &ProxyCluster, pods: &Pods) {
    c.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
"#,
    );
    // The only backend runs on node 2.
    c.apply(&echo_slice("np-1", "np", &ready(&[&pods.p2])));
    let port = c.node_port("np", "http");
    let udp_port = c.node_port("np", "dns");
    let client_ip = c.cluster.client().address();
    let mut client = c.client_probe();
    for node in 1..=3 {
        let addr = sock(c.node_ip(node), port);
        c.wait(
            Duration::from_secs(10),
            &format!("the NodePort answering on node {node}"),
            || client.http_get(addr, "/").is_ok(),
        );
        let reply = client
            .http_get(addr, "/")
            .unwrap_or_else(|e| panic!("GET {addr}: {e:?}\n{}", c.logs()));
        assert_eq!(
            answered_by(&reply.body),
            Some(pods.p2.ip),
            "via node {node}"
        );
        // Cluster policy: forwarded to another node with SNAT to the
        // receiving node's address; the backend's own node delivers it
        // with the client's address.
        let expected = if node == 2 {
            client_ip
        } else {
            c.node_ip(node)
        };
        assert_eq!(seen_client(&reply.body), Some(expected), "via node {node}");
        let reply = client
            .udp(sock(c.node_ip(node), udp_port), "np-query")
            .unwrap_or_else(|e| panic!("UDP via node {node}: {e:?}"));
        assert_eq!(reply.from, sock(c.node_ip(node), udp_port).to_string());
        assert!(reply.reply.ends_with("np-query"), "{reply:?}");
    }
}

fn external_traffic_policy_local(c: &ProxyCluster, pods: &Pods) {
    c.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#,
    );
    // The load balancer's address, as a cloud controller would publish it;
    // the client reaches it through node 1.
    let lb_ip = Ipv4Addr::new(192, 0, 2, 50);
    c.kubectl_ok(
        &[
            "patch",
            "service",
            "local",
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!(r#"{{"status":{{"loadBalancer":{{"ingress":[{{"ip":"{lb_ip}"}}]}}}}}}"#),
        ],
        None,
    );
    c.cluster
        .client()
        .netns()
        .add_route(&baton_e2e::Route::via(
            format!("{lb_ip}/32").parse().unwrap(),
            c.node_ip(1),
        ))
        .expect("route to the LB address");
    // The only endpoint runs on node 1.
    c.apply(&slice_manifest(
        "local-1",
        "local",
        &[("http", HTTP_PORT, "TCP")],
        &borrowed(&ready(&[&pods.p1])),
    ));
    let port = c.node_port("local", "http");
    let health_port: u16 = c
        .get("service", "local", "{.spec.healthCheckNodePort}")
        .parse()
        .expect("a healthCheckNodePort");
    let client_ip = c.cluster.client().address();
    let mut client = c.client_probe();
    c.wait(
        Duration::from_secs(10),
        "the Local NodePort answering",
        || client.http_get(sock(c.node_ip(1), port), "/").is_ok(),
    );
    // Node 1 has the endpoint: it answers, and the backend sees the
    // client's own address.
    for addr in [sock(c.node_ip(1), port), sock(lb_ip, 80)] {
        let reply = client
            .http_get(addr, "/")
            .unwrap_or_else(|e| panic!("{addr}: {e:?}"));
        assert_eq!(answered_by(&reply.body), Some(pods.p1.ip), "{addr}");
        assert_eq!(seen_client(&reply.body), Some(client_ip), "{addr}");
    }
    // Nodes without a local endpoint refuse at once.
    for node in [2, 3] {
        let error = client
            .http_get(sock(c.node_ip(node), port), "/")
            .expect_err("no local endpoint");
        assert!(error.refused(), "node {node}: {error:?}");
    }
    // Inside the cluster the same NodePort uses every endpoint
    // (kube-proxy's short-circuit): node 2's host reaches it.
    let mut host2 = c.host_probe(2);
    let reply = host2
        .http_get(sock(c.node_ip(2), port), "/")
        .expect("in-cluster NodePort with Local policy");
    assert_eq!(answered_by(&reply.body), Some(pods.p1.ip));

    // The health check: 200 with one local endpoint on node 1, 503 and
    // zero elsewhere, kube-proxy's JSON.
    for node in 1..=3 {
        let reply = client
            .http_get(sock(c.node_ip(node), health_port), "/healthz")
            .unwrap_or_else(|e| panic!("health check on node {node}: {e:?}"));
        let json = reply.json();
        assert_eq!(json["service"]["namespace"], "default");
        assert_eq!(json["service"]["name"], "local");
        assert_eq!(json["serviceProxyHealthy"], true);
        if node == 1 {
            assert_eq!(reply.status, 200, "{reply:?}");
            assert_eq!(json["localEndpoints"], 1);
        } else {
            assert_eq!(reply.status, 503, "node {node}: {reply:?}");
            assert_eq!(json["localEndpoints"], 0);
        }
    }
    // The endpoint moves to node 3: the health checks follow. Each node
    // learns of the change from its own watch, so each is waited for.
    c.apply(&slice_manifest(
        "local-1",
        "local",
        &[("http", HTTP_PORT, "TCP")],
        &borrowed(&ready(&[&pods.p3])),
    ));
    for (node, status) in [(3, 200), (1, 503)] {
        c.wait(
            Duration::from_secs(5),
            &format!("node {node}'s health check at {status}"),
            || {
                client
                    .http_get(sock(c.node_ip(node), health_port), "/healthz")
                    .is_ok_and(|r| r.status == status)
            },
        );
    }
}

fn session_affinity_keeps_a_client_on_one_backend_until_the_timeout(c: &ProxyCluster, pods: &Pods) {
    const TIMEOUT_S: u64 = 3;
    // Round-robin makes the choice after the timeout predictable: the
    // next backend, not the remembered one.
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: sticky
  annotations: {{lb.baton.dev/algorithm: round-robin}}
spec:
  sessionAffinity: ClientIP
  sessionAffinityConfig: {{clientIP: {{timeoutSeconds: {TIMEOUT_S}}}}}
  ports:
  - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}
"#
    ));
    c.apply(&slice_manifest(
        "sticky-1",
        "sticky",
        &[("http", HTTP_PORT, "TCP")],
        &borrowed(&ready(&pods.all())),
    ));
    let addr = sock(c.cluster_ip("sticky"), 80);
    let mut probe = c.host_probe(1);
    c.wait(
        Duration::from_secs(10),
        "the sticky service answering",
        || probe.http_get(addr, "/").is_ok(),
    );
    // Let the affinity of the waiting loop expire.
    std::thread::sleep(Duration::from_secs(TIMEOUT_S + 1));
    let first = answered_by(&probe.http_get(addr, "/").expect("GET").body).unwrap();
    let start = Instant::now();
    for _ in 0..10 {
        let pod = answered_by(&probe.http_get(addr, "/").expect("GET").body).unwrap();
        assert_eq!(pod, first, "affinity broken after {:?}", start.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Another client (another node) is balanced on its own.
    let mut other = c.host_probe(2);
    other.http_get(addr, "/").expect("GET from node 2");
    // After the timeout without a new connection, the client is balanced
    // again: round-robin gives the next backend.
    std::thread::sleep(Duration::from_secs(TIMEOUT_S + 1));
    let after = answered_by(&probe.http_get(addr, "/").expect("GET").body).unwrap();
    assert_ne!(after, first, "affinity outlived its {TIMEOUT_S}s timeout");
    let _ = pods;
}

fn endpoint_changes_reach_the_datapath_quickly(c: &ProxyCluster, pods: &Pods) {
    c.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: moving}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#,
    );
    c.apply(&slice_manifest(
        "moving-1",
        "moving",
        &[("http", HTTP_PORT, "TCP")],
        &borrowed(&ready(&[&pods.p1])),
    ));
    let addr = sock(c.cluster_ip("moving"), 80);
    let mut probe = c.host_probe(3);
    c.wait(
        Duration::from_secs(10),
        "the moving service answering",
        || {
            probe
                .http_get(addr, "/")
                .is_ok_and(|r| answered_by(&r.body) == Some(pods.p1.ip))
        },
    );
    for (round, target) in [&pods.p2, &pods.p3, &pods.p1].into_iter().enumerate() {
        c.apply(&slice_manifest(
            "moving-1",
            "moving",
            &[("http", HTTP_PORT, "TCP")],
            &borrowed(&ready(&[target])),
        ));
        // kubectl has returned: the API holds the change. Time until the
        // datapath on another node sends new connections to the new pod.
        let start = Instant::now();
        loop {
            if let Ok(reply) = probe.http_get(addr, "/")
                && answered_by(&reply.body) == Some(target.ip)
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "round {round}: the endpoint change took more than 1 s to reach node 3\n{}",
                c.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!(
            "endpoint change {round} programmed in {:?}",
            start.elapsed()
        );
    }
}

fn terminating_endpoints_serve_only_without_ready_ones(c: &ProxyCluster, pods: &Pods) {
    c.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: draining}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#,
    );
    // p1 ready; p2 terminating but still serving; p3 terminating and no
    // longer serving.
    let endpoints = vec![
        (pods.p1.clone(), true, true, false),
        (pods.p2.clone(), false, true, true),
        (pods.p3.clone(), false, false, true),
    ];
    c.apply(&slice_manifest(
        "draining-1",
        "draining",
        &[("http", HTTP_PORT, "TCP")],
        &borrowed(&endpoints),
    ));
    let addr = sock(c.cluster_ip("draining"), 80);
    let mut probe = c.host_probe(2);
    c.wait(
        Duration::from_secs(10),
        "the draining service answering",
        || probe.http_get(addr, "/").is_ok(),
    );
    for _ in 0..10 {
        let pod = answered_by(&probe.http_get(addr, "/").expect("GET").body);
        assert_eq!(
            pod,
            Some(pods.p1.ip),
            "only the ready endpoint gets connections"
        );
    }
    // The ready one goes: the serving terminating one takes over, never
    // the one that stopped serving.
    c.apply(&slice_manifest(
        "draining-1",
        "draining",
        &[("http", HTTP_PORT, "TCP")],
        &borrowed(&endpoints[1..]),
    ));
    c.wait(
        Duration::from_secs(5),
        "fallback to the terminating endpoint",
        || {
            probe
                .http_get(addr, "/")
                .is_ok_and(|r| answered_by(&r.body) == Some(pods.p2.ip))
        },
    );
    for _ in 0..10 {
        let pod = answered_by(&probe.http_get(addr, "/").expect("GET").body);
        assert_eq!(pod, Some(pods.p2.ip));
    }
}

fn metrics_and_dump_name_the_services(c: &ProxyCluster) {
    let text = c.metrics(1);
    for needle in [
        "baton_proxy_sync_proxy_rules_duration_seconds_count",
        "baton_proxy_sync_proxy_rules_last_timestamp_seconds",
        "baton_dataplane_map_entries{map=\"baton_lb_fe\"}",
        "baton_dataplane_map_capacity{map=\"baton_lb_be\"} 65536",
        "baton_conntrack_entries",
        "baton_service_new_flows_total{namespace=\"default\",service=\"echo\",port=\"http\"}",
        // The NodePort without endpoints was refused on node 1's uplink.
        "baton_drop_count_total{reason=\"no_service_backends\",direction=\"ingress\"}",
    ] {
        assert!(
            text.contains(needle),
            "no {needle} in node 1's metrics:\n{text}"
        );
    }
    // Node 2's host processes were refused by the socket hooks.
    let refused = proxy_cluster::metric_value(
        &c.metrics(2),
        "baton_drop_count_total{reason=\"no_service_backends\",direction=\"socket\"}",
    );
    assert!(
        refused >= 10.0,
        "socket refusals counted on node 2: {refused}"
    );
    // Every port of every Service in the API is programmed (echo (3),
    // empty (2), np (2), local (1), sticky, moving, draining, and the API
    // server's `kubernetes` service).
    let ports = c.kubectl_ok(
        &[
            "get",
            "services",
            "-A",
            "-o",
            "jsonpath={range .items[*].spec.ports[*]}{.port}{\"\\n\"}{end}",
        ],
        None,
    );
    let wanted = ports.lines().filter(|l| !l.is_empty()).count();
    assert!(wanted >= 12, "service ports in the API: {ports}");
    c.wait(
        Duration::from_secs(10),
        "every service port programmed",
        || {
            let programmed =
                proxy_cluster::metric_value(&c.metrics(1), "baton_proxy_services_programmed");
            (programmed - wanted as f64).abs() < 0.5
        },
    );
    let text = c.metrics(1);
    assert_eq!(
        proxy_cluster::metric_value(&text, "baton_proxy_services_failing"),
        0.0
    );
    let flows = proxy_cluster::metric_value(
        &text,
        "baton_service_new_flows_total{namespace=\"default\",service=\"echo\",port=\"http\"}",
    );
    assert!(flows > 0.0, "no flows counted for default/echo:http");

    // The dump shows services by name.
    let node = c.cluster.node(1).unwrap();
    let out = node
        .netns()
        .run(
            c.binaries.path("baton-node").unwrap().to_str().unwrap(),
            [
                "dataplane",
                "dump",
                "--pin-dir",
                c.pin_dirs[0].to_str().unwrap(),
                "--proxy-state-dir",
                node.dir().join("proxy").to_str().unwrap(),
            ],
            Duration::from_secs(30),
        )
        .expect("dump")
        .check()
        .expect("dump succeeds");
    for name in [
        "[default/echo:http]",
        "[default/echo:dns]",
        "[default/np:http]",
    ] {
        assert!(
            out.stdout.contains(name),
            "no {name} in the dump:\n{}",
            out.stdout
        );
    }
}

fn no_iptables_nft_or_ipvs_rules_exist(c: &ProxyCluster) {
    for node in c.cluster.nodes() {
        let save = node
            .netns()
            .run("iptables-save", Vec::<&str>::new(), Duration::from_secs(10))
            .expect("iptables-save");
        assert!(
            !save.stdout.contains("-A "),
            "iptables rules in {}: {}",
            node.netns(),
            save.stdout
        );
        let nft = node
            .netns()
            .run("nft", ["list", "ruleset"], Duration::from_secs(10))
            .expect("nft");
        assert!(
            !nft.stdout.contains("chain") && !nft.stdout.contains("rule"),
            "nft rules in {}: {}",
            node.netns(),
            nft.stdout
        );
        // No IPVS service table: the module is not even loaded, or empty.
        let ipvs = node
            .netns()
            .run("cat", ["/proc/net/ip_vs"], Duration::from_secs(10))
            .expect("cat");
        assert!(
            !ipvs.success() || ipvs.stdout.lines().count() <= 3,
            "IPVS services in {}: {}",
            node.netns(),
            ipvs.stdout
        );
    }
}
