//! The eBPF service proxy at scale and across restarts, end to end: 1,000
//! Services with 10 endpoints each programmed on 3 nodes and answering
//! correctly; a long-lived connection (socket LB and NodePort conntrack)
//! surviving SIGKILL and restart of baton-node, whose first sync adopts
//! every pinned service without rewriting it; a full map reported with a
//! metric, a log line and an Event, and recovered from. One cluster, the
//! scenarios in order.

mod proxy_cluster;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use proxy_cluster::{
    HTTP_PORT, PodInfo, ProxyCluster, TCP_PORT, answered_by, borrowed, metric_value, ready,
    slice_manifest, sock,
};

/// Re-executed as the client processes of the scenarios.
#[test]
fn probe_child() {
    baton_e2e::probe::child_main();
}

const SERVICES: usize = 1000;
const PODS: usize = 12;
/// Node 3's backends map is this small, so one more service overflows it.
const SMALL_BACKENDS_MAP: u32 = 16;

fn step(name: &str) {
    eprintln!("=== {name}");
}

/// The 10 pods of service `k`: all but two, a different pair per service,
/// so a service answered by another service's backends would show.
fn backends_of(k: usize, pods: &[PodInfo]) -> Vec<&PodInfo> {
    let skip = [k % PODS, (k + 5) % PODS];
    pods.iter()
        .enumerate()
        .filter(|(i, _)| !skip.contains(i))
        .map(|(_, pod)| pod)
        .collect()
}

#[test]
fn services_scale_survive_restarts_and_report_full_maps() {
    let mut c = ProxyCluster::start(3, |node| {
        if node == 3 {
            vec![format!("--map-backends={SMALL_BACKENDS_MAP}")]
        } else {
            Vec::new()
        }
    });
    let pods: Vec<PodInfo> = (0..PODS)
        .map(|i| c.add_pod(i % 3 + 1, &format!("p{i}")))
        .collect();

    step("a_thousand_services_with_ten_backends_each_program_and_answer");
    a_thousand_services_program_and_answer(&c, &pods);
    step("a_long_lived_connection_survives_sigkill_and_restart_of_baton_node");
    a_long_lived_connection_survives_sigkill_and_restart(&c, &pods);
    step("a_full_map_is_reported_and_recovered_from");
    a_full_map_is_reported_and_recovered_from(&c);
}

fn a_thousand_services_program_and_answer(c: &ProxyCluster, pods: &[PodInfo]) {
    let mut items = Vec::new();
    for k in 0..SERVICES {
        let name = format!("s{k}");
        items.push(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        }));
        let slice = slice_manifest(
            &format!("{name}-1"),
            &name,
            &[("http", HTTP_PORT, "TCP")],
            &borrowed(&ready(&backends_of(k, pods))),
        );
        items.push(serde_json::from_str(&slice).unwrap());
    }
    // Streams of documents (JSON is YAML), as users' manifests would be,
    // created by a few kubectl processes at once.
    let manifests: Vec<String> = items
        .chunks(items.len().div_ceil(4))
        .map(|chunk| {
            chunk
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n---\n")
        })
        .collect();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for manifest in &manifests {
            scope.spawn(|| c.kubectl_ok(&["create", "-f", "-", "-o", "name"], Some(manifest)));
        }
    });
    let written = start.elapsed();
    // Every node programs every service (plus the API server's own).
    for node in 1..=3 {
        c.wait(
            Duration::from_secs(120),
            &format!("node {node} programming {SERVICES} services"),
            || metric_value(&c.metrics(node), "baton_proxy_services_programmed") > SERVICES as f64,
        );
    }
    eprintln!(
        "{SERVICES} services + slices written in {written:?}, programmed on 3 nodes {:?} later",
        start.elapsed() - written
    );
    for node in 1..=3 {
        let text = c.metrics(node);
        assert_eq!(
            metric_value(&text, "baton_proxy_services_failing"),
            0.0,
            "node {node}"
        );
        // 1,000 ClusterIP frontends (and the API server's).
        assert!(
            metric_value(&text, "baton_dataplane_map_entries{map=\"baton_lb_fe\"}")
                > SERVICES as f64,
            "node {node}"
        );
        assert!(
            metric_value(
                &text,
                "baton_dataplane_map_entries{map=\"baton_lb_member\"}"
            ) >= (SERVICES * 10) as f64,
            "node {node}"
        );
    }
    // A sample answers, from every node's host and from a pod, with one of
    // its own ten backends.
    let mut probes = [
        c.host_probe(1),
        c.host_probe(2),
        c.host_probe(3),
        c.pod_probe("p2"),
    ];
    for (n, k) in (0..SERVICES).step_by(37).enumerate() {
        let vip = c.cluster_ip(&format!("s{k}"));
        let allowed: BTreeSet<Ipv4Addr> = backends_of(k, pods).iter().map(|p| p.ip).collect();
        let probe = &mut probes[n % 4];
        for _ in 0..3 {
            let reply = probe
                .http_get(sock(vip, 80), "/")
                .unwrap_or_else(|e| panic!("s{k} ({vip}): {e:?}\n{}", c.logs()));
            let pod = answered_by(&reply.body).expect("podIP");
            assert!(
                allowed.contains(&pod),
                "s{k} answered by {pod}, not one of {allowed:?}"
            );
        }
    }
}

fn a_long_lived_connection_survives_sigkill_and_restart(c: &ProxyCluster, pods: &[PodInfo]) {
    c.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: longlived}
spec:
  type: NodePort
  ports:
  - {name: tcp, port: 9000, targetPort: 9000, protocol: TCP}
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#,
    );
    // The backend is on node 2; the connections go through node 1.
    let backend = pods.iter().find(|p| p.node == 2).unwrap();
    c.apply(&slice_manifest(
        "longlived-1",
        "longlived",
        &[("tcp", TCP_PORT, "TCP"), ("http", HTTP_PORT, "TCP")],
        &borrowed(&ready(&[backend])),
    ));
    let vip = c.cluster_ip("longlived");
    let node_port = c.node_port("longlived", "tcp");
    let mut host = c.host_probe(1);
    let mut client = c.client_probe();
    c.wait(
        Duration::from_secs(10),
        "the longlived service answering",
        || host.http_get(sock(vip, 80), "/").is_ok(),
    );
    // Socket LB from node 1's host, and NodePort through node 1 from
    // outside (DNAT + SNAT, conntrack on node 1).
    let (socket_conn, _) = host
        .connect(sock(vip, 9000))
        .expect("connect to the ClusterIP");
    let (nodeport_conn, _) = client
        .connect(sock(c.node_ip(1), node_port))
        .expect("connect to the NodePort");
    assert_eq!(host.echo(socket_conn, "before").unwrap(), "before");
    assert_eq!(client.echo(nodeport_conn, "before").unwrap(), "before");

    c.kill_proxy(1);
    // While baton-node is down the pinned programs keep serving: old
    // connections and new ones.
    assert_eq!(host.echo(socket_conn, "while down").unwrap(), "while down");
    assert_eq!(
        client.echo(nodeport_conn, "while down").unwrap(),
        "while down"
    );
    let reply = host
        .http_get(sock(vip, 80), "/")
        .expect("a new connection while down");
    assert_eq!(answered_by(&reply.body), Some(backend.ip));

    let log = c.cluster.logs_dir().join("baton-node-1.log");
    let before = std::fs::read_to_string(&log).unwrap_or_default().len();
    c.start_proxy(1);
    c.wait_synced(1, Duration::from_secs(60));
    // The restarted agent adopted every pinned service: nothing created,
    // nothing deleted, every service unchanged.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let line = text[before..]
        .lines()
        .find(|l| l.contains("initial sync"))
        .unwrap_or_else(|| panic!("no initial sync logged:\n{}", &text[before..]));
    assert!(line.contains("created=0"), "{line}");
    assert!(line.contains("deleted=0"), "{line}");
    let unchanged: usize = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("unchanged="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    assert!(unchanged > SERVICES, "{line}");
    assert_eq!(host.echo(socket_conn, "after").unwrap(), "after");
    assert_eq!(client.echo(nodeport_conn, "after").unwrap(), "after");
    // And the restarted agent programs changes again.
    let other = pods.iter().find(|p| p.node == 3).unwrap();
    c.apply(&slice_manifest(
        "longlived-1",
        "longlived",
        &[("tcp", TCP_PORT, "TCP"), ("http", HTTP_PORT, "TCP")],
        &borrowed(&ready(&[other])),
    ));
    c.wait(
        Duration::from_secs(5),
        "the restarted proxy following a change",
        || {
            host.http_get(sock(vip, 80), "/")
                .is_ok_and(|r| answered_by(&r.body) == Some(other.ip))
        },
    );
    // The old connection stays on its backend.
    assert_eq!(host.echo(socket_conn, "still").unwrap(), "still");
    host.close(socket_conn);
    client.close(nodeport_conn);
}

fn a_full_map_is_reported_and_recovered_from(c: &ProxyCluster) {
    // Ten endpoints node 3's backends map has no room for (they are never
    // sent traffic here).
    let fake: Vec<PodInfo> = (0..10u8)
        .map(|i| PodInfo {
            name: format!("fake{i}"),
            ip: Ipv4Addr::new(10, 244, 3, 200 + i),
            node: 3,
        })
        .collect();
    c.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: big}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#,
    );
    c.apply(&slice_manifest(
        "big-1",
        "big",
        &[("http", HTTP_PORT, "TCP")],
        &borrowed(&ready(&fake.iter().collect::<Vec<_>>())),
    ));
    let sample = "baton_proxy_map_full_errors_total{map=\"baton_lb_be\"}";
    c.wait(
        Duration::from_secs(10),
        "node 3 reporting a full backends map",
        || metric_value(&c.metrics(3), sample) >= 1.0,
    );
    assert_eq!(
        metric_value(&c.metrics(3), "baton_proxy_services_failing"),
        1.0
    );
    // The other nodes have room.
    c.wait(Duration::from_secs(10), "node 1 programming big", || {
        c.metrics(1).contains("baton_proxy_services_failing 0")
    });
    assert_eq!(metric_value(&c.metrics(1), sample), 0.0);
    // A log line and a Warning Event on the Service.
    let log = std::fs::read_to_string(c.cluster.logs_dir().join("baton-node-3.log")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("service not programmed")
            && l.contains("default/big:http")
            && l.contains("baton_lb_be")),
        "no log line about the full map"
    );
    c.wait(Duration::from_secs(10), "a DataplaneMapFull Event on the Service", || {
        let out = c.kubectl_ok(
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=big",
                "-o",
                "jsonpath={range .items[*]}{.type} {.reason} {.reportingComponent}: {.message}{\"\\n\"}{end}",
            ],
            None,
        );
        out.lines().any(|l| {
            l.starts_with("Warning DataplaneMapFull baton-proxy")
                && l.contains("baton_lb_be")
                && l.contains("full")
        })
    });
    // Retried: once the service needs fewer backends it is programmed, and
    // the recovery is reported.
    c.apply(&slice_manifest(
        "big-1",
        "big",
        &[("http", HTTP_PORT, "TCP")],
        &borrowed(&ready(&fake.iter().take(1).collect::<Vec<_>>())),
    ));
    c.wait(Duration::from_secs(10), "node 3 recovering", || {
        c.metrics(3).contains("baton_proxy_services_failing 0")
    });
    c.wait(Duration::from_secs(10), "a ServiceProgrammed Event", || {
        c.kubectl_ok(
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=big",
                "-o",
                "jsonpath={.items[*].reason}",
            ],
            None,
        )
        .contains("ServiceProgrammed")
    });
}
