//! NodePort from an outside client on real traffic: two nodes (see
//! `support::fabric`), the backend a pod on node 2. Through node 2 the
//! backend is local (DNAT only, client address kept); through node 1 it is
//! remote (DNAT + SNAT to node 1, reverse NAT on the way back). Needs root.

mod support;

use std::{
    io::ErrorKind,
    net::{SocketAddr, SocketAddrV4, UdpSocket},
    time::{Duration, Instant},
};

use aya::programs::{SchedClassifier, TcAttachType};
use baton_node::dataplane::{
    Applied, BackendSpec, Frontend, Hook, Protocol, ServiceSpec, TrafficPolicy,
};
use support::{
    Bpffs,
    client::{self, Connection},
    fabric::{CLIENT_ADDR, Fabric, POD_PORT},
};

const NODE_PORT: u16 = 30080;

/// The NodePort service of pod 2/1 as node `node` programs it: the same
/// endpoint, local on node 2 only.
fn service(fabric: &Fabric, node: u8, protocol: Protocol, policy: TrafficPolicy) -> ServiceSpec {
    let pod = fabric.pod(2, 1);
    ServiceSpec::new(
        format!("default/web:{protocol}"),
        protocol,
        vec![Frontend::node_port(NODE_PORT)],
    )
    .with_backends(vec![BackendSpec::ready(pod.addr, POD_PORT, node == 2)])
    .with_policies(policy, TrafficPolicy::Cluster)
}

fn program(fabric: &mut Fabric, policy: TrafficPolicy) {
    for node in [1, 2] {
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            let spec = service(fabric, node, protocol, policy);
            fabric
                .node(node)
                .dataplane()
                .load_balancer()
                .upsert_service(&spec)
                .unwrap_or_else(|error| panic!("{error}"));
        }
    }
}

fn frontend(fabric: &mut Fabric, node: u8) -> SocketAddrV4 {
    SocketAddrV4::new(fabric.node(node).addr, NODE_PORT)
}

#[test]
fn nodeport_reaches_a_local_backend_directly_and_a_remote_one_through_snat() {
    let mut fabric = Fabric::create("np", 1, None);
    program(&mut fabric, TrafficPolicy::Cluster);
    let backend = fabric.pod(2, 1).name.clone();

    // Through node 2, whose pod it is: the backend sees the client.
    let to_node2 = frontend(&mut fabric, 2);
    let mut local = Connection::open(&fabric.client, to_node2).unwrap();
    assert_eq!(local.backend, backend);
    assert!(
        local.seen_client.starts_with(&format!("{CLIENT_ADDR}:")),
        "{}",
        local.seen_client
    );
    assert_eq!(local.echo("a").unwrap(), format!("{backend}:a"));

    // Through node 1: forwarded to node 2 with node 1 as source.
    let to_node1 = frontend(&mut fabric, 1);
    let node1 = fabric.node(1).addr;
    let mut remote = Connection::open(&fabric.client, to_node1).unwrap();
    assert_eq!(remote.backend, backend);
    assert!(
        remote.seen_client.starts_with(&format!("{node1}:")),
        "{}",
        remote.seen_client
    );
    assert_eq!(remote.echo("b").unwrap(), format!("{backend}:b"));

    // UDP both ways; answers come from the address the client used.
    for (node, via) in [(2, to_node2), (1, to_node1)] {
        let (reply, from) = client::udp(&fabric.client, via, "query")
            .unwrap_or_else(|error| panic!("UDP via node {node}: {error}"));
        assert!(reply.starts_with(&backend), "{reply}");
        assert_eq!(from, SocketAddr::V4(via), "via node {node}");
    }

    // Node 1's conntrack shows the translated flows.
    let flows = fabric.node(1).dataplane().conntrack().unwrap();
    assert!(
        flows.iter().any(|flow| flow.is_original()
            && flow.tuple().ends_with(&format!("-> {to_node1}"))
            && flow.rewritten().starts_with(&format!("{node1}:"))),
        "{flows:?}"
    );
}

#[test]
fn external_policy_local_keeps_the_client_address_and_nodes_without_a_backend_refuse() {
    let mut fabric = Fabric::create("etp", 1, None);
    program(&mut fabric, TrafficPolicy::Local);
    let backend = fabric.pod(2, 1).name.clone();

    let to_node2 = frontend(&mut fabric, 2);
    let local = Connection::open(&fabric.client, to_node2).unwrap();
    assert_eq!(local.backend, backend);
    assert!(local.seen_client.starts_with(&format!("{CLIENT_ADDR}:")));

    // Node 1 has no local endpoint: refused at once with an RST...
    let to_node1 = frontend(&mut fabric, 1);
    let start = Instant::now();
    let refused = Connection::open(&fabric.client, to_node1)
        .err()
        .expect("refused");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );

    // ...and UDP with port unreachable, which a connected socket reports.
    let socket = fabric
        .client
        .run_in(|| UdpSocket::bind("0.0.0.0:0"))
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.connect(to_node1).unwrap();
    socket.send(b"query").unwrap();
    let mut buf = [0u8; 64];
    let error = socket.recv(&mut buf).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error}");
}

#[test]
fn a_long_lived_connection_survives_reloading_the_dataplane_with_pinned_maps() {
    let bpffs = Bpffs::mount("np-restart");
    let pins = bpffs.path().join("node-1");
    let mut fabric = Fabric::create("npr", 1, Some(&pins));
    program(&mut fabric, TrafficPolicy::Cluster);
    let backend = fabric.pod(2, 1).name.clone();

    let to_node1 = frontend(&mut fabric, 1);
    let mut connection = Connection::open(&fabric.client, to_node1).unwrap();
    assert_eq!(
        connection.echo("before").unwrap(),
        format!("{backend}:before")
    );

    // baton-node goes away. Its links are pinned: the programs keep
    // translating while it is down, for old and new connections alike.
    fabric.node(1).stop_dataplane();
    assert_eq!(
        connection.echo("while down").unwrap(),
        format!("{backend}:while down")
    );
    Connection::open(&fabric.client, to_node1).expect("new connection while the agent is down");

    // It comes back: the new programs are swapped into the same links.
    fabric.node(1).start_dataplane(Some(&pins));
    let node = fabric.node(1);
    let expected = [
        (
            TcAttachType::Ingress,
            node.dataplane().program_id(Hook::UplinkIngress).unwrap(),
        ),
        (
            TcAttachType::Egress,
            node.dataplane().program_id(Hook::UplinkEgress).unwrap(),
        ),
    ];
    for (attach_type, id) in expected {
        let attached: Vec<u32> = node.netns.run_in(|| {
            let (_, programs) = SchedClassifier::query_tcx("up0", attach_type).unwrap();
            programs.iter().map(|program| program.id()).collect()
        });
        assert_eq!(
            attached,
            vec![id],
            "{attach_type:?}: exactly the new program"
        );
    }
    // The proxy's first reconcile finds everything in place.
    let spec = service(&fabric, 1, Protocol::Tcp, TrafficPolicy::Cluster);
    let applied = fabric
        .node(1)
        .dataplane()
        .load_balancer()
        .upsert_service(&spec)
        .unwrap();
    assert_eq!(
        applied,
        Applied::Unchanged,
        "the restored service must not be rewritten"
    );

    // The flow kept its SNAT translation across the restart.
    assert_eq!(
        connection.echo("after").unwrap(),
        format!("{backend}:after")
    );
    let mut fresh = Connection::open(&fabric.client, to_node1).unwrap();
    assert_eq!(fresh.echo("new").unwrap(), format!("{backend}:new"));
}
