//! The packet path on crafted frames (`BPF_PROG_TEST_RUN`), in the spirit
//! of Cilium's bpf/tests and kube-proxy's packet-tracing tests: for a map
//! state and a frame, the verdict, the rewritten frame (addresses, ports
//! and every checksum, verified independently) and the counters. Needs
//! root.

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};

use baton_abi::{
    Direction, DropReason, MetricsKey,
    conntrack::{CT_DIR_ORIGINAL, CtState},
    metrics::Event,
};
use baton_node::{
    dataplane::{
        Algorithm, BackendSpec, Dataplane, Frontend, Hook, LoadOptions, MetricsSnapshot,
        NodeConfig, PodEndpoint, Protocol, ServiceSpec, TrafficPolicy,
    },
    sys::test_run::TestRun,
};
use support::packets::{
    self, CLIENT_MAC, Decoded, NODE_MAC, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, decode,
};

const TC_ACT_UNSPEC: i32 = -1;
const TC_ACT_SHOT: i32 = 2;
const TC_ACT_REDIRECT: i32 = 7;

const NODE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const REMOTE_BACKEND: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 10);
const LOCAL_BACKEND: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 10);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

const NP_REMOTE: u16 = 30080;
const NP_LOCAL: u16 = 30081;
const NP_EMPTY: u16 = 30082;
const NP_LOCAL_POLICY: u16 = 30083;
const NP_AFFINITY: u16 = 30084;
const LOCAL_IFINDEX: u32 = 42;
const POD_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x10];
const HOST_VETH_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0xfe];

fn addr(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// A dataplane with the map state every test starts from.
fn dataplane() -> Dataplane {
    baton_e2e::assert_root();
    let mut dataplane =
        Dataplane::load(&LoadOptions::new()).unwrap_or_else(|error| panic!("{error}"));
    let node = dataplane.node();
    node.set_local_addresses(&[(NODE, 0)]).unwrap();
    node.set_config(&NodeConfig {
        snat_addr: Some(NODE),
        ..NodeConfig::default()
    })
    .unwrap();
    node.register_endpoint(&PodEndpoint {
        addr: LOCAL_BACKEND,
        host_ifindex: LOCAL_IFINDEX,
        pod_mac: POD_MAC,
        host_mac: HOST_VETH_MAC,
        identity: 0,
    })
    .unwrap();
    let remote = BackendSpec::ready(REMOTE_BACKEND, 8080, false);
    let local = BackendSpec::ready(LOCAL_BACKEND, 8080, true);
    let services = [
        ServiceSpec::new(
            "t/remote:tcp",
            Protocol::Tcp,
            vec![Frontend::node_port(NP_REMOTE)],
        )
        .with_backends(vec![remote]),
        ServiceSpec::new(
            "t/remote:udp",
            Protocol::Udp,
            vec![Frontend::node_port(NP_REMOTE)],
        )
        .with_backends(vec![remote]),
        ServiceSpec::new(
            "t/local:tcp",
            Protocol::Tcp,
            vec![
                Frontend::node_port(NP_LOCAL),
                Frontend::external_ip(EXTERNAL_IP, 80),
            ],
        )
        .with_backends(vec![local]),
        ServiceSpec::new(
            "t/empty:tcp",
            Protocol::Tcp,
            vec![Frontend::node_port(NP_EMPTY)],
        ),
        ServiceSpec::new(
            "t/empty:udp",
            Protocol::Udp,
            vec![Frontend::node_port(NP_EMPTY)],
        ),
        ServiceSpec::new(
            "t/etp-local:tcp",
            Protocol::Tcp,
            vec![Frontend::node_port(NP_LOCAL_POLICY)],
        )
        .with_backends(vec![remote])
        .with_policies(TrafficPolicy::Local, TrafficPolicy::Cluster),
        ServiceSpec::new(
            "t/cluster-ip:tcp",
            Protocol::Tcp,
            vec![Frontend::cluster_ip(VIP, 80)],
        )
        .with_backends(vec![remote]),
        ServiceSpec::new(
            "t/affinity:tcp",
            Protocol::Tcp,
            vec![Frontend::node_port(NP_AFFINITY)],
        )
        .with_backends(
            (10..13)
                .map(|last| BackendSpec::ready(Ipv4Addr::new(10, 244, 2, last), 8080, false))
                .collect(),
        )
        .with_affinity(std::time::Duration::from_secs(60)),
    ];
    for spec in &services {
        dataplane
            .load_balancer()
            .upsert_service(spec)
            .unwrap_or_else(|error| panic!("{}: {error}", spec.name));
    }
    dataplane
}

struct Run {
    verdict: i32,
    frame: Vec<u8>,
    counted: MetricsSnapshot,
}

fn run(dataplane: &Dataplane, hook: Hook, frame: &[u8]) -> Run {
    let before = dataplane.metrics().unwrap();
    let output = dataplane
        .test_run(hook, &TestRun::new(frame))
        .unwrap_or_else(|error| panic!("{error}"));
    Run {
        verdict: output.verdict(),
        frame: output.data,
        counted: dataplane.metrics().unwrap().since(&before),
    }
}

fn ingress(dataplane: &Dataplane, frame: &[u8]) -> Run {
    run(dataplane, Hook::UplinkIngress, frame)
}

fn from_pod(dataplane: &Dataplane, frame: &[u8]) -> Run {
    run(dataplane, Hook::PodIngress, frame)
}

fn dropped(reason: DropReason) -> MetricsKey {
    MetricsKey::dropped(reason, Direction::Ingress)
}

fn event(event: Event) -> MetricsKey {
    MetricsKey::event(event, Direction::Ingress)
}

#[test]
fn nodeport_tcp_to_a_remote_backend_is_snated_and_reversed_with_valid_checksums() {
    let mut dataplane = dataplane();
    let client = addr(CLIENT, 40000);
    let frontend = addr(NODE, NP_REMOTE);
    let backend = addr(REMOTE_BACKEND, 8080);

    // SYN: DNAT to the backend, SNAT to the node with a port from the range.
    let syn = ingress(
        &dataplane,
        &packets::tcp(client, frontend, TCP_SYN, 1000, 0, b""),
    );
    assert_eq!(
        syn.verdict, TC_ACT_UNSPEC,
        "routing is left to the stack here"
    );
    let out = decode(&syn.frame, "SYN");
    assert_eq!(out.destination(), backend);
    assert_eq!(out.src, NODE);
    assert!(
        (10_000..=29_999).contains(&out.sport),
        "SNAT port {}",
        out.sport
    );
    assert_eq!(
        (out.seq, out.tcp_flags),
        (1000, TCP_SYN),
        "TCP fields untouched"
    );
    assert_eq!(syn.counted.get(event(Event::Translated)).packets, 1);
    let snat = out.source();

    // The backend's SYN-ACK to the SNAT address goes back to the client
    // from the frontend.
    let synack = ingress(
        &dataplane,
        &packets::tcp(backend, snat, TCP_SYN | TCP_ACK, 5000, 1001, b""),
    );
    let out = decode(&synack.frame, "SYN-ACK");
    assert_eq!((out.source(), out.destination()), (frontend, client));
    assert_eq!((out.seq, out.ack), (5000, 1001));

    // Data keeps the same translation (same SNAT port).
    let data = ingress(
        &dataplane,
        &packets::tcp(
            client,
            frontend,
            TCP_ACK,
            1001,
            5001,
            b"GET / HTTP/1.0\r\n\r\n",
        ),
    );
    let out = decode(&data.frame, "data");
    assert_eq!((out.source(), out.destination()), (snat, backend));
    assert_eq!(out.payload, b"GET / HTTP/1.0\r\n\r\n");

    // Conntrack: both entries, established after the reply; the flow
    // counts on its backend until the FIN.
    let flows = dataplane.conntrack().unwrap();
    assert_eq!(flows.len(), 2, "{flows:?}");
    assert!(
        flows
            .iter()
            .all(|flow| flow.state() == Some(CtState::Established))
    );
    let original = flows
        .iter()
        .find(|flow| flow.key.dir == CT_DIR_ORIGINAL)
        .unwrap();
    assert_eq!(original.tuple(), format!("{client} -> {frontend}"));
    assert_eq!(original.rewritten(), format!("{snat} -> {backend}"));
    let backend_id = dataplane
        .load_balancer()
        .backend_id(REMOTE_BACKEND, 8080, Protocol::Tcp)
        .unwrap();
    let flows_of = |dataplane: &Dataplane| {
        dataplane
            .dump()
            .unwrap()
            .backends
            .into_iter()
            .find(|backend| backend.id == backend_id)
            .unwrap()
            .conns
            .flows
    };
    assert_eq!(flows_of(&dataplane), 1);

    let fin = ingress(
        &dataplane,
        &packets::tcp(client, frontend, TCP_FIN | TCP_ACK, 1019, 5001, b""),
    );
    decode(&fin.frame, "FIN");
    assert!(
        dataplane
            .conntrack()
            .unwrap()
            .iter()
            .all(|flow| flow.state() == Some(CtState::Closing))
    );
    assert_eq!(flows_of(&dataplane), 0, "a closing flow no longer counts");
}

#[test]
fn nodeport_udp_to_a_remote_backend_is_snated_and_reversed() {
    let dataplane = dataplane();
    let client = addr(CLIENT, 5353);
    let frontend = addr(NODE, NP_REMOTE);
    let backend = addr(REMOTE_BACKEND, 8080);

    let query = ingress(&dataplane, &packets::udp(client, frontend, b"query"));
    let out = decode(&query.frame, "query");
    assert_eq!(out.destination(), backend);
    assert_eq!(out.src, NODE);
    assert_ne!(out.udp_checksum, 0);
    let snat = out.source();

    let answer = ingress(&dataplane, &packets::udp(backend, snat, b"answer"));
    let out = decode(&answer.frame, "answer");
    assert_eq!((out.source(), out.destination()), (frontend, client));
    assert_eq!(out.payload, b"answer");

    // A datagram without a checksum (0) keeps none.
    let mut unchecked = packets::udp(client, frontend, b"again");
    unchecked[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
    let out = decode(&ingress(&dataplane, &unchecked).frame, "no checksum");
    assert_eq!(out.udp_checksum, 0);
    assert_eq!(out.source(), snat, "same flow, same translation");
}

#[test]
fn external_traffic_to_a_local_backend_keeps_the_client_address_and_enters_the_pod() {
    let dataplane = dataplane();
    let client = addr(CLIENT, 40001);
    for frontend in [addr(NODE, NP_LOCAL), addr(EXTERNAL_IP, 80)] {
        let syn = ingress(
            &dataplane,
            &packets::tcp(client, frontend, TCP_SYN, 1, 0, b""),
        );
        assert_eq!(
            syn.verdict, TC_ACT_REDIRECT,
            "{frontend}: redirect_peer into the pod"
        );
        let out = decode(&syn.frame, "SYN to local backend");
        assert_eq!(
            out.source(),
            client,
            "{frontend}: no SNAT for a local backend"
        );
        assert_eq!(out.destination(), addr(LOCAL_BACKEND, 8080));
        assert_eq!((out.eth_dst, out.eth_src), (POD_MAC, HOST_VETH_MAC));
    }
}

#[test]
fn a_syn_to_a_service_without_backends_is_answered_with_a_reset() {
    let dataplane = dataplane();
    let client = addr(CLIENT, 40002);
    let frontend = addr(NODE, NP_EMPTY);
    let syn = packets::tcp(client, frontend, TCP_SYN, 77_000, 0, b"");
    let reset = ingress(&dataplane, &syn);

    assert_eq!(
        reset.verdict, TC_ACT_REDIRECT,
        "sent back out of the uplink"
    );
    assert_eq!(reset.frame.len(), 14 + 20 + 20);
    let out = decode(&reset.frame, "RST");
    assert_eq!((out.eth_dst, out.eth_src), (CLIENT_MAC, NODE_MAC));
    assert_eq!((out.source(), out.destination()), (frontend, client));
    assert_eq!(out.tcp_flags, TCP_RST | TCP_ACK);
    assert_eq!(out.seq, 0);
    assert_eq!(out.ack, 77_001, "acknowledges the SYN");
    assert_eq!(out.ttl, 64);
    assert_eq!(
        reset
            .counted
            .get(dropped(DropReason::NoServiceBackends))
            .packets,
        1
    );
    assert_eq!(reset.counted.get(event(Event::RejectSent)).packets, 1);
    assert!(
        dataplane.conntrack().unwrap().is_empty(),
        "no state for a refused flow"
    );
}

#[test]
fn udp_to_a_service_without_backends_gets_port_unreachable() {
    let dataplane = dataplane();
    let client = addr(CLIENT, 5000);
    let frontend = addr(NODE, NP_EMPTY);
    let datagram = packets::udp(client, frontend, b"a query with some bytes");
    let unreachable = ingress(&dataplane, &datagram);

    assert_eq!(unreachable.verdict, TC_ACT_REDIRECT);
    let out = decode(&unreachable.frame, "ICMP");
    assert_eq!((out.eth_dst, out.eth_src), (CLIENT_MAC, NODE_MAC));
    assert_eq!((out.src, out.dst), (NODE, CLIENT));
    assert_eq!(
        out.icmp,
        Some((3, 3)),
        "destination unreachable, port unreachable"
    );
    // The quote is the datagram's IPv4 header and first 8 bytes, as sent.
    assert_eq!(out.icmp_body, datagram[14..14 + 28]);
    assert_eq!(unreachable.frame.len(), 14 + 20 + 8 + 28);
    assert_eq!(
        unreachable
            .counted
            .get(dropped(DropReason::NoServiceBackends))
            .packets,
        1
    );
}

#[test]
fn external_policy_local_without_a_local_backend_refuses() {
    let dataplane = dataplane();
    let syn = packets::tcp(
        addr(CLIENT, 40003),
        addr(NODE, NP_LOCAL_POLICY),
        TCP_SYN,
        9,
        0,
        b"",
    );
    let reset = ingress(&dataplane, &syn);
    assert_eq!(reset.verdict, TC_ACT_REDIRECT);
    assert_eq!(decode(&reset.frame, "RST").tcp_flags, TCP_RST | TCP_ACK);
}

#[test]
fn cluster_ips_and_other_traffic_pass_the_uplink_untouched() {
    let dataplane = dataplane();
    let frames = [
        (
            "ClusterIP from outside",
            packets::tcp(addr(CLIENT, 1), addr(VIP, 80), TCP_SYN, 1, 0, b""),
        ),
        (
            "node port without a service",
            packets::tcp(addr(CLIENT, 1), addr(NODE, 22), TCP_SYN, 1, 0, b""),
        ),
        (
            "NodePort on a foreign address",
            packets::tcp(addr(CLIENT, 1), addr(CLIENT, NP_REMOTE), TCP_SYN, 1, 0, b""),
        ),
        ("ping", packets::ping(CLIENT, NODE)),
    ];
    for (name, frame) in frames {
        let result = ingress(&dataplane, &frame);
        assert_eq!(result.verdict, TC_ACT_UNSPEC, "{name}");
        assert_eq!(result.frame, frame, "{name}: changed");
        assert_eq!(
            result
                .counted
                .get(MetricsKey::forwarded(Direction::Ingress))
                .packets,
            1,
            "{name}: {}",
            result.counted
        );
    }
    assert!(dataplane.conntrack().unwrap().is_empty());
}

#[test]
fn malformed_or_stateless_packets_to_a_nodeport_are_never_translated() {
    let dataplane = dataplane();
    let client = addr(CLIENT, 40004);
    let frontend = addr(NODE, NP_REMOTE);

    // A TCP header cut short: passed to the stack (which drops it) as is.
    let mut cut = packets::tcp(client, frontend, TCP_SYN, 1, 0, b"");
    cut.truncate(14 + 20 + 12);
    cut[14 + 2..14 + 4].copy_from_slice(&32u16.to_be_bytes());
    let result = ingress(&dataplane, &cut);
    assert_eq!((result.verdict, &result.frame), (TC_ACT_UNSPEC, &cut));
    assert_eq!(
        result.counted.get(dropped(DropReason::Truncated)).packets,
        1
    );

    // A non-first fragment has no ports: it cannot be matched to the
    // NodePort and is left alone.
    let mut fragment = packets::udp(client, frontend, &[0u8; 16]);
    fragment[14 + 6..14 + 8].copy_from_slice(&[0x00, 0x10]);
    let result = ingress(&dataplane, &fragment);
    assert_eq!((result.verdict, &result.frame), (TC_ACT_UNSPEC, &fragment));

    // An ACK of a flow conntrack does not know: dropped, counted.
    let ack = packets::tcp(client, frontend, TCP_ACK, 5, 5, b"data");
    let result = ingress(&dataplane, &ack);
    assert_eq!(result.verdict, TC_ACT_SHOT);
    assert_eq!(
        result
            .counted
            .get(dropped(DropReason::ConntrackMiss))
            .packets,
        1
    );
    assert!(dataplane.conntrack().unwrap().is_empty());
}

#[test]
fn icmp_errors_about_translated_flows_are_translated_both_ways() {
    let dataplane = dataplane();
    let client = addr(CLIENT, 40005);
    let frontend = addr(NODE, NP_REMOTE);
    let backend = addr(REMOTE_BACKEND, 8080);
    let syn = ingress(
        &dataplane,
        &packets::tcp(client, frontend, TCP_SYN, 1, 0, b""),
    );
    let sent = syn.frame.clone();
    let snat = decode(&sent, "SYN").source();

    // A router between this node and the backend cannot forward what we
    // sent: its error goes to the client, about the client's own packet.
    let router = Ipv4Addr::new(10, 244, 2, 1);
    let error = ingress(&dataplane, &packets::frag_needed(router, NODE, &sent, 1400));
    let out = decode(&error.frame, "error towards the client");
    assert_eq!((out.src, out.dst), (NODE, CLIENT));
    assert_eq!(out.icmp, Some((3, 4)));
    assert_eq!(packets::quoted_tuple(&out.icmp_body), (client, frontend));
    assert_eq!(
        error.counted.get(event(Event::IcmpErrorTranslated)).packets,
        1
    );

    // A router on the client's side cannot forward a reply: its error goes
    // to the backend, about the backend's packet.
    let reply = ingress(
        &dataplane,
        &packets::tcp(backend, snat, TCP_SYN | TCP_ACK, 9, 2, &[0; 64]),
    );
    let replied = reply.frame.clone();
    let error = ingress(
        &dataplane,
        &packets::frag_needed(Ipv4Addr::new(198, 18, 0, 254), NODE, &replied, 576),
    );
    let out = decode(&error.frame, "error towards the backend");
    assert_eq!(out.dst, REMOTE_BACKEND);
    assert_eq!(packets::quoted_tuple(&out.icmp_body), (backend, snat));
}

#[test]
fn exhausted_snat_ports_drop_new_flows_with_a_counted_reason() {
    let mut dataplane = dataplane();
    dataplane
        .node()
        .set_config(&NodeConfig {
            snat_addr: Some(NODE),
            snat_ports: 20_000..=20_000,
            ..NodeConfig::default()
        })
        .unwrap();
    let frontend = addr(NODE, NP_REMOTE);
    let first = ingress(
        &dataplane,
        &packets::tcp(addr(CLIENT, 1111), frontend, TCP_SYN, 1, 0, b""),
    );
    assert_eq!(decode(&first.frame, "first").sport, 20_000);
    let second = ingress(
        &dataplane,
        &packets::tcp(addr(CLIENT, 2222), frontend, TCP_SYN, 1, 0, b""),
    );
    assert_eq!(second.verdict, TC_ACT_SHOT);
    assert_eq!(
        second
            .counted
            .get(dropped(DropReason::NatPortsExhausted))
            .packets,
        1
    );
}

#[test]
fn client_ip_affinity_on_the_packet_path_keeps_one_backend() {
    let dataplane = dataplane();
    let frontend = addr(NODE, NP_AFFINITY);
    let backends: Vec<Ipv4Addr> = (0..10)
        .map(|i| {
            let syn = packets::tcp(addr(CLIENT, 50000 + i), frontend, TCP_SYN, 1, 0, b"");
            decode(&ingress(&dataplane, &syn).frame, "SYN").dst
        })
        .collect();
    assert!(
        backends.iter().all(|backend| *backend == backends[0]),
        "{backends:?}"
    );
    // Another client is placed independently (and keeps its own).
    let other = Ipv4Addr::new(198, 18, 0, 3);
    let picks: Vec<Ipv4Addr> = (0..5)
        .map(|i| {
            let syn = packets::tcp(addr(other, 50000 + i), frontend, TCP_SYN, 1, 0, b"");
            decode(&ingress(&dataplane, &syn).frame, "SYN").dst
        })
        .collect();
    assert!(
        picks.iter().all(|backend| *backend == picks[0]),
        "{picks:?}"
    );
}

#[test]
fn round_robin_and_least_connections_decide_per_flow_on_the_packet_path() {
    let mut dataplane = dataplane();
    let backends: Vec<BackendSpec> = (20..23)
        .map(|last| BackendSpec::ready(Ipv4Addr::new(10, 244, 2, last), 8080, false))
        .collect();
    for (port, algorithm) in [
        (30100, Algorithm::RoundRobin),
        (30101, Algorithm::LeastConnections),
    ] {
        let spec = ServiceSpec::new(
            format!("t/{port}"),
            Protocol::Tcp,
            vec![Frontend::node_port(port)],
        )
        .with_backends(backends.clone())
        .with_algorithm(algorithm);
        dataplane.load_balancer().upsert_service(&spec).unwrap();
    }
    let pick = |dataplane: &Dataplane, port: u16, client_port: u16| -> Decoded {
        let syn = packets::tcp(
            addr(CLIENT, client_port),
            addr(NODE, port),
            TCP_SYN,
            1,
            0,
            b"",
        );
        decode(&ingress(dataplane, &syn).frame, "SYN")
    };
    let rr: Vec<Ipv4Addr> = (0..6)
        .map(|i| pick(&dataplane, 30100, 41000 + i).dst)
        .collect();
    for (i, backend) in rr.iter().enumerate() {
        assert_eq!(*backend, rr[i % 3], "not a rotation: {rr:?}");
    }
    assert_ne!(rr[0], rr[1]);
    // Open flows load their backends; each new flow takes an idle one
    // until all carry one.
    let lc: std::collections::BTreeSet<Ipv4Addr> = (0..3)
        .map(|i| pick(&dataplane, 30101, 42000 + i).dst)
        .collect();
    assert_eq!(
        lc.len(),
        3,
        "least-connections reused a loaded backend: {lc:?}"
    );
}

/// Source and destination of what `hook` makes of a TCP segment.
fn seen(
    dataplane: &Dataplane,
    hook: Hook,
    from: SocketAddrV4,
    to: SocketAddrV4,
    flags: u8,
) -> (SocketAddrV4, SocketAddrV4) {
    let run = run(dataplane, hook, &packets::tcp(from, to, flags, 1, 1, b""));
    let out = decode(&run.frame, "segment");
    (out.source(), out.destination())
}

#[test]
fn a_direct_connection_on_the_tuple_of_a_closed_service_flow_is_not_translated() {
    let dataplane = dataplane();
    let backend = addr(LOCAL_BACKEND, 8080);
    // From outside through the NodePort to the local backend, and from a
    // pod through the ClusterIP (tc LB) to the remote one: the replies
    // come in on the backend's veth and on the uplink.
    let cases = [
        (
            Hook::UplinkIngress,
            addr(CLIENT, 40101),
            addr(NODE, NP_LOCAL),
            Hook::PodIngress,
            backend,
        ),
        (
            Hook::PodIngress,
            addr(LOCAL_BACKEND, 40102),
            addr(VIP, 80),
            Hook::UplinkIngress,
            addr(REMOTE_BACKEND, 8080),
        ),
    ];
    for (client_hook, client, frontend, reply_hook, backend) in cases {
        let syn = seen(&dataplane, client_hook, client, frontend, TCP_SYN);
        assert_eq!(syn, (client, backend), "{frontend}: translated");
        let syn_ack = seen(&dataplane, reply_hook, backend, client, TCP_SYN | TCP_ACK);
        assert_eq!(syn_ack, (frontend, client), "{frontend}: reversed");

        // While the flow is established, a SYN straight to the backend on
        // its tuple leaves it alone.
        seen(&dataplane, client_hook, client, backend, TCP_SYN);
        let data = seen(&dataplane, reply_hook, backend, client, TCP_ACK);
        assert_eq!(
            data,
            (frontend, client),
            "{frontend}: the established flow goes on"
        );

        // The flow closes; the client's next connection from the same port
        // goes straight to the backend's own address.
        seen(&dataplane, client_hook, client, frontend, TCP_FIN | TCP_ACK);
        let direct = seen(&dataplane, client_hook, client, backend, TCP_SYN);
        assert_eq!(
            direct,
            (client, backend),
            "{frontend}: direct SYN untouched"
        );
        let answer = seen(&dataplane, reply_hook, backend, client, TCP_SYN | TCP_ACK);
        assert_eq!(
            answer,
            (backend, client),
            "{frontend}: the direct connection's SYN-ACK must come from the backend, not the service"
        );
    }
}

#[test]
fn a_pod_reaching_its_own_service_is_hairpinned() {
    let mut dataplane = dataplane();
    let pod = LOCAL_BACKEND;
    let spec = ServiceSpec::new(
        "t/self:tcp",
        Protocol::Tcp,
        vec![Frontend::cluster_ip(VIP, 8443)],
    )
    .with_backends(vec![BackendSpec::ready(pod, 8443, true)]);
    dataplane.load_balancer().upsert_service(&spec).unwrap();
    let hairpin = Ipv4Addr::new(169, 254, 42, 1);

    let syn = run(
        &dataplane,
        Hook::PodIngress,
        &packets::tcp(addr(pod, 45000), addr(VIP, 8443), TCP_SYN, 1, 0, b""),
    );
    assert_eq!(syn.verdict, TC_ACT_REDIRECT, "back into the pod");
    let out = decode(&syn.frame, "hairpin SYN");
    assert_eq!(out.destination(), addr(pod, 8443));
    assert_eq!(
        out.source(),
        addr(hairpin, 45000),
        "the pod must not see itself as source"
    );

    let reply = run(
        &dataplane,
        Hook::PodIngress,
        &packets::tcp(
            addr(pod, 8443),
            addr(hairpin, 45000),
            TCP_SYN | TCP_ACK,
            7,
            2,
            b"",
        ),
    );
    assert_eq!(reply.verdict, TC_ACT_REDIRECT);
    let out = decode(&reply.frame, "hairpin SYN-ACK");
    assert_eq!(
        (out.source(), out.destination()),
        (addr(VIP, 8443), addr(pod, 45000))
    );
}

#[test]
fn a_pod_asking_for_its_gateway_gets_the_veth_mac() {
    let dataplane = dataplane();
    let request = {
        let arp = etherparse::ArpPacket::new(
            etherparse::ArpHardwareId::ETHERNET,
            etherparse::EtherType::IPV4,
            etherparse::ArpOperation::REQUEST,
            &POD_MAC,
            &LOCAL_BACKEND.octets(),
            &[0; 6],
            &[169, 254, 1, 1],
        )
        .unwrap();
        let builder = etherparse::PacketBuilder::ethernet2(POD_MAC, [0xff; 6]).arp(arp);
        let mut frame = Vec::new();
        builder.write(&mut frame).unwrap();
        frame
    };
    let answer = run(&dataplane, Hook::PodIngress, &request);
    assert_eq!(
        answer.verdict, TC_ACT_REDIRECT,
        "answered back into the pod"
    );
    let frame = &answer.frame;
    assert_eq!(&frame[..6], &POD_MAC);
    assert_eq!(&frame[6..12], &HOST_VETH_MAC);
    assert_eq!(&frame[14 + 6..14 + 8], &[0, 2], "an ARP reply");
    assert_eq!(&frame[14 + 8..14 + 14], &HOST_VETH_MAC, "sender MAC");
    assert_eq!(
        &frame[14 + 14..14 + 18],
        &[169, 254, 1, 1],
        "sender IP is the asked one"
    );
    assert_eq!(&frame[14 + 24..14 + 28], &LOCAL_BACKEND.octets());
}

#[test]
fn a_pods_traffic_to_an_outside_address_leaves_with_the_node_address() {
    let mut dataplane = dataplane();
    let pod = LOCAL_BACKEND;
    let outside = Ipv4Addr::new(203, 0, 113, 7);

    // Off (the fixture's setting): the pod's address goes out as it is.
    let plain = from_pod(
        &dataplane,
        &packets::tcp(addr(pod, 40000), addr(outside, 443), TCP_SYN, 1, 0, b""),
    );
    assert_eq!(
        decode(&plain.frame, "unmasqueraded").source(),
        addr(pod, 40000)
    );

    dataplane
        .node()
        .set_config(&NodeConfig {
            snat_addr: Some(NODE),
            masquerade_outside: Some("10.244.0.0/16".parse().unwrap()),
            ..NodeConfig::default()
        })
        .unwrap();
    assert_eq!(
        dataplane.node().config().unwrap().masquerade_outside,
        Some("10.244.0.0/16".parse().unwrap())
    );
    let syn = from_pod(
        &dataplane,
        &packets::tcp(addr(pod, 40001), addr(outside, 443), TCP_SYN, 1, 0, b""),
    );
    let out = decode(&syn.frame, "masqueraded SYN");
    assert_eq!(out.destination(), addr(outside, 443));
    assert_eq!(out.src, NODE);
    let claimed = out.source();
    assert!(
        (10_000..=29_999).contains(&claimed.port()),
        "a port of the SNAT range: {claimed}"
    );
    assert_eq!(syn.counted.get(event(Event::Translated)).packets, 1);

    // The answer, on the uplink, goes back to the pod.
    let answer = ingress(
        &dataplane,
        &packets::tcp(addr(outside, 443), claimed, TCP_SYN | TCP_ACK, 9, 2, b""),
    );
    assert_eq!(answer.verdict, TC_ACT_REDIRECT, "into the pod");
    let out = decode(&answer.frame, "answer");
    assert_eq!(
        (out.source(), out.destination()),
        (addr(outside, 443), addr(pod, 40001))
    );
    // The flow keeps its port.
    let ack = from_pod(
        &dataplane,
        &packets::tcp(
            addr(pod, 40001),
            addr(outside, 443),
            TCP_ACK,
            2,
            10,
            b"GET /",
        ),
    );
    let out = decode(&ack.frame, "next packet");
    assert_eq!(out.source(), claimed);
    assert_eq!(out.payload, b"GET /");

    // UDP too.
    let query = from_pod(
        &dataplane,
        &packets::udp(addr(pod, 5353), addr(outside, 53), b"q"),
    );
    let out = decode(&query.frame, "masqueraded datagram");
    assert_eq!(out.src, NODE);
    let answer = ingress(
        &dataplane,
        &packets::udp(addr(outside, 53), out.source(), b"a"),
    );
    let out = decode(&answer.frame, "answer datagram");
    assert_eq!(out.destination(), addr(pod, 5353));

    // Inside the pod range, to the node itself and to another node, the
    // source stays.
    let other_node = Ipv4Addr::new(198, 18, 0, 3);
    dataplane.node().set_node_addresses(&[other_node]).unwrap();
    assert_eq!(dataplane.node().node_addresses().unwrap(), [other_node]);
    for (port, to) in [
        (40002, addr(REMOTE_BACKEND, 8080)),
        (40003, addr(NODE, 10250)),
        (40005, addr(other_node, 10250)),
    ] {
        let kept = from_pod(
            &dataplane,
            &packets::tcp(addr(pod, port), to, TCP_SYN, 1, 0, b""),
        );
        assert_eq!(
            decode(&kept.frame, "kept").source(),
            addr(pod, port),
            "to {to}"
        );
    }

    // A segment of no known flow that is not a SYN (the pod answering a
    // connection opened to its own address) goes out as it is.
    let answer = from_pod(
        &dataplane,
        &packets::tcp(
            addr(pod, 8080),
            addr(outside, 40100),
            TCP_SYN | TCP_ACK,
            5,
            5,
            b"",
        ),
    );
    assert_eq!(
        decode(&answer.frame, "answer to a direct connection").source(),
        addr(pod, 8080)
    );
}
