//! Pod routing on real traffic: two nodes with two pods each, routed by the
//! pod and uplink programs — same node with `bpf_redirect_peer`, across
//! nodes with a FIB lookup over native routes and `bpf_redirect_neigh`.
//! No bridge on the nodes, no iptables. Needs root.

mod support;

use std::net::SocketAddr;

use baton_abi::{Direction, MetricsKey, metrics::Event};
use support::{
    client::{self, Connection},
    fabric::Fabric,
};

/// Datagrams the node's kernel forwarded itself (`Ip: ForwDatagrams`):
/// traffic the programs redirect never gets there.
fn kernel_forwarded(fabric: &mut Fabric, node: u8) -> u64 {
    let snmp = fabric.node(node).netns.exec("cat", &["/proc/net/snmp"]);
    let mut lines = snmp.lines().filter(|line| line.starts_with("Ip:"));
    let names: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let values: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let column = names
        .iter()
        .position(|name| *name == "ForwDatagrams")
        .unwrap();
    values[column].parse().unwrap()
}

fn redirected(fabric: &mut Fabric, node: u8) -> u64 {
    fabric
        .node(node)
        .dataplane()
        .metrics()
        .unwrap()
        .get(MetricsKey::event(Event::Redirected, Direction::Ingress))
        .packets
}

#[test]
fn pods_reach_pods_on_the_same_node_and_across_nodes_by_address() {
    let mut fabric = Fabric::create("route", 2, None);
    let cases = [
        ((1, 1), (1, 2), "same node"),
        ((1, 1), (2, 1), "across nodes"),
        ((2, 2), (1, 2), "back across"),
    ];
    for ((from_node, from_pod), (to_node, to_pod), what) in cases {
        let before = redirected(&mut fabric, from_node);
        let forwarded = [
            kernel_forwarded(&mut fabric, 1),
            kernel_forwarded(&mut fabric, 2),
        ];
        let from = fabric.pod(from_node, from_pod);
        let to = fabric.pod(to_node, to_pod);

        let mut connection = Connection::open(&from.netns, to.socket())
            .unwrap_or_else(|error| panic!("{what}: TCP {} -> {}: {error}", from.name, to.name));
        assert_eq!(connection.backend, to.name, "{what}");
        // No NAT between pods: the peer sees the pod's own address.
        assert_eq!(
            connection.seen_client.split(':').next().unwrap(),
            from.addr.to_string(),
            "{what}"
        );
        assert_eq!(connection.echo("hi").unwrap(), format!("{}:hi", to.name));

        let (reply, source) = client::udp(&from.netns, to.socket(), "ping")
            .unwrap_or_else(|error| panic!("{what}: UDP: {error}"));
        assert!(reply.starts_with(&to.name), "{what}: {reply}");
        assert_eq!(source, SocketAddr::V4(to.socket()));

        // ICMP too (busybox ping: raw socket, no socket LB involved).
        from.netns.exec(
            "busybox",
            &["ping", "-c", "1", "-W", "2", &to.addr.to_string()],
        );

        let gained = redirected(&mut fabric, from_node) - before;
        assert!(
            gained > 0,
            "{what}: nothing was redirected by the pod program"
        );
        assert_eq!(
            [
                kernel_forwarded(&mut fabric, 1),
                kernel_forwarded(&mut fabric, 2)
            ],
            forwarded,
            "{what}: the nodes' kernels forwarded packets the programs should have redirected"
        );
    }
}

#[test]
fn pod_routing_creates_no_bridge_and_no_firewall_rules_on_the_nodes() {
    let mut fabric = Fabric::create("rules", 1, None);
    let from = fabric.pod(1, 1);
    let to = fabric.pod(2, 1);
    Connection::open(&from.netns, to.socket()).unwrap();
    for index in [1, 2] {
        let node = &fabric.node(index).netns;
        let links = node.ip(&["-d", "link", "show"]);
        assert!(
            !links.contains("bridge"),
            "node {index} has a bridge:\n{links}"
        );
        for (program, args) in [
            ("iptables-save", &[][..]),
            ("nft", &["list", "ruleset"][..]),
        ] {
            let out = node.exec(program, args);
            assert!(
                !out.lines()
                    .any(|line| line.starts_with("-A") || line.contains("chain")),
                "{program} on node {index}:\n{out}"
            );
        }
    }
}

#[test]
fn a_pod_reaches_a_cluster_ip_per_packet_without_socket_hooks() {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use baton_node::dataplane::{BackendSpec, Frontend, Protocol, ServiceSpec};
    use support::fabric::POD_PORT;

    let mut fabric = Fabric::create("pktlb", 2, None);
    let vip = SocketAddrV4::new(Ipv4Addr::new(10, 96, 7, 7), 80);
    let client_addr = fabric.pod(1, 1).addr;
    // Node 1 programs the service; the pod's cgroup has no socket hooks,
    // so its packets to the ClusterIP reach the pod program untranslated.
    for (backend_node, backend_pod, what) in [(2, 1, "remote backend"), (1, 2, "same-node backend")]
    {
        let backend = fabric.pod(backend_node, backend_pod);
        let (backend_addr, backend_name) = (backend.addr, backend.name.clone());
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            let spec = ServiceSpec::new(
                format!("default/web:{protocol}"),
                protocol,
                vec![Frontend::cluster_ip(*vip.ip(), vip.port())],
            )
            .with_backends(vec![BackendSpec::ready(
                backend_addr,
                POD_PORT,
                backend_node == 1,
            )]);
            fabric
                .node(1)
                .dataplane()
                .load_balancer()
                .upsert_service(&spec)
                .unwrap();
        }
        let from = fabric.pod(1, 1);
        let mut connection = Connection::open(&from.netns, vip)
            .unwrap_or_else(|error| panic!("{what}: TCP to the ClusterIP: {error}"));
        assert_eq!(connection.backend, backend_name, "{what}");
        assert_eq!(
            connection.seen_client.split(':').next().unwrap(),
            client_addr.to_string(),
            "{what}: pod traffic is not SNATed"
        );
        assert_eq!(connection.echo("x").unwrap(), format!("{backend_name}:x"));
        let (reply, source) = client::udp(&from.netns, vip, "q")
            .unwrap_or_else(|error| panic!("{what}: UDP to the ClusterIP: {error}"));
        assert!(reply.starts_with(&backend_name), "{what}: {reply}");
        assert_eq!(
            source,
            SocketAddr::V4(vip),
            "{what}: the reply comes from the service"
        );
    }
}
