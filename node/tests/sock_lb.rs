//! Socket-level load balancing with real sockets: a client process in a
//! test cgroup (with the socket programs attached) inside a node namespace
//! reaches backends in their own namespaces through a ClusterIP that no
//! route knows — only the socket hooks can make it work. Needs root.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    thread,
    time::{Duration, Instant},
};

use baton_abi::{Direction, DropReason, MetricsKey};
use baton_e2e::{cgroup::OwnedCgroup, probe::Probe};
use baton_node::dataplane::{
    Algorithm, BackendSpec, CgroupAttachment, Dataplane, Frontend, LoadOptions, Protocol,
    ServiceSpec,
};
use support::topology::{BACKEND_PORT, Backends};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const PORT: u16 = 80;
const ECONNREFUSED: i32 = 111;
const ENETUNREACH: i32 = 101;

/// The re-executed test binary acting as a client (see `baton_e2e::probe`).
#[test]
fn probe_child() {
    baton_e2e::probe::child_main();
}

struct Fixture {
    // Field order is drop order: the probe exits before its cgroup goes,
    // the programs are detached before the namespaces go.
    attachment: Option<CgroupAttachment>,
    dataplane: Dataplane,
    cgroup: OwnedCgroup,
    net: Backends,
}

impl Fixture {
    fn new(tag: &str, backends: u8) -> Self {
        baton_e2e::assert_root();
        let net = Backends::create(tag, backends);
        let cgroup = OwnedCgroup::create(tag);
        let mut dataplane =
            Dataplane::load(&LoadOptions::new()).unwrap_or_else(|error| panic!("{error}"));
        let attachment = dataplane
            .attach_cgroup(cgroup.path())
            .unwrap_or_else(|error| panic!("{error:?}"));
        Self {
            attachment: Some(attachment),
            dataplane,
            cgroup,
            net,
        }
    }

    fn probe(&self) -> Probe {
        Probe::spawn(&self.net.node, Some(self.cgroup.path())).expect("probe")
    }

    fn backends(&self, names: &[&str]) -> Vec<BackendSpec> {
        self.net
            .backends
            .iter()
            .filter(|backend| names.contains(&backend.name.as_str()))
            .map(|backend| BackendSpec::ready(backend.addr, BACKEND_PORT, false))
            .collect()
    }

    fn all_backends(&self) -> Vec<BackendSpec> {
        let names = self.net.names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.backends(&names)
    }

    fn upsert(&mut self, spec: &ServiceSpec) {
        self.dataplane
            .load_balancer()
            .upsert_service(spec)
            .unwrap_or_else(|error| panic!("{error}"));
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(attachment) = self.attachment.take() {
            let _ = self.dataplane.detach_cgroup(attachment);
        }
    }
}

fn vip() -> SocketAddrV4 {
    SocketAddrV4::new(VIP, PORT)
}

fn web(backends: Vec<BackendSpec>) -> ServiceSpec {
    ServiceSpec::new(
        "default/web:http",
        Protocol::Tcp,
        vec![Frontend::cluster_ip(VIP, PORT)],
    )
    .with_backends(backends)
}

fn dns(backends: Vec<BackendSpec>) -> ServiceSpec {
    ServiceSpec::new(
        "default/dns:dns",
        Protocol::Udp,
        vec![Frontend::cluster_ip(VIP, 53)],
    )
    .with_backends(backends)
}

/// Backend names of `n` fresh connections.
fn pick(probe: &mut Probe, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            probe
                .connect_greeted(vip(), false)
                .unwrap_or_else(|failed| panic!("connection {i}: {failed:?}"))
                .backend
        })
        .collect()
}

#[test]
fn tcp_to_a_cluster_ip_reaches_a_backend_and_its_peer_is_the_service() {
    let mut fixture = Fixture::new("tcp", 2);
    let mut probe = fixture.probe();

    // Control: before the service exists the ClusterIP is unroutable here.
    let unrouted = probe.connect_greeted(vip(), false).unwrap_err();
    assert_eq!(unrouted.errno, ENETUNREACH, "{unrouted:?}");

    fixture.upsert(&web(fixture.all_backends()));
    let connected = probe
        .connect_greeted(vip(), true)
        .unwrap_or_else(|f| panic!("{f:?}"));
    assert!(
        fixture.net.names().contains(&connected.backend),
        "{connected:?}"
    );
    assert_eq!(
        connected.peer,
        SocketAddr::V4(vip()),
        "getpeername must show the service"
    );
    // The backend sees the node's own address: no SNAT, no proxy.
    assert!(
        connected.seen_client.starts_with("198.19."),
        "{connected:?}"
    );
    assert_eq!(
        probe.echo(connected.id, "hello").unwrap(),
        format!("{}:hello", connected.backend)
    );
    assert_eq!(probe.peer(connected.id), SocketAddr::V4(vip()));

    // The connection is counted against its backend while open, and no
    // longer once closed (sock_release).
    let lb = fixture.dataplane.load_balancer();
    let backend = fixture
        .net
        .backends
        .iter()
        .find(|backend| backend.name == connected.backend)
        .unwrap();
    let id = lb
        .backend_id(backend.addr, BACKEND_PORT, Protocol::Tcp)
        .unwrap();
    let sockets = |dataplane: &Dataplane| {
        dataplane
            .dump()
            .unwrap()
            .backends
            .iter()
            .find(|entry| entry.id == id)
            .map(|entry| entry.conns.sockets)
            .unwrap()
    };
    assert_eq!(sockets(&fixture.dataplane), 1);
    probe.close(connected.id);
    let deadline = Instant::now() + Duration::from_secs(2);
    while sockets(&fixture.dataplane) != 0 {
        assert!(
            Instant::now() < deadline,
            "socket still counted after close"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let stats = fixture.dataplane.service_stats().unwrap();
    let service = fixture
        .dataplane
        .load_balancer()
        .service_id("default/web:http")
        .unwrap();
    assert_eq!(stats.get(service).new_flows, 1);
}

#[test]
fn udp_to_a_cluster_ip_gets_replies_from_the_service_address() {
    let mut fixture = Fixture::new("udp", 2);
    fixture.upsert(&dns(fixture.all_backends()));
    let mut probe = fixture.probe();
    let service = SocketAddrV4::new(VIP, 53);

    for connected in [false, true] {
        for i in 0..5 {
            let exchanged = probe
                .udp_exchange(service, &format!("query {i}"), connected)
                .unwrap_or_else(|f| panic!("connected={connected} #{i}: {f:?}"));
            let backend = exchanged.reply.split(' ').next().unwrap().to_owned();
            assert!(fixture.net.names().contains(&backend), "{exchanged:?}");
            assert_eq!(
                exchanged.from,
                SocketAddr::V4(service),
                "recvfrom must show the service (connected={connected})"
            );
            if connected {
                assert_eq!(exchanged.peer, Some(SocketAddr::V4(service)));
            }
        }
    }
}

#[test]
fn a_service_without_backends_refuses_at_once() {
    let mut fixture = Fixture::new("refuse", 1);
    fixture.upsert(&web(vec![]));
    fixture.upsert(&dns(vec![]));
    let mut probe = fixture.probe();
    let before = fixture.dataplane.metrics().unwrap();

    let refused = probe.connect_greeted(vip(), false).unwrap_err();
    assert_eq!(refused.errno, ECONNREFUSED, "{refused:?}");
    assert!(refused.elapsed < Duration::from_millis(100), "{refused:?}");

    let refused = probe
        .udp_exchange(SocketAddrV4::new(VIP, 53), "query", false)
        .unwrap_err();
    assert_eq!(refused.errno, ECONNREFUSED, "{refused:?}");
    assert!(refused.elapsed < Duration::from_millis(100), "{refused:?}");

    let gained = fixture.dataplane.metrics().unwrap().since(&before);
    let key = MetricsKey::dropped(DropReason::NoServiceBackends, Direction::Socket);
    assert_eq!(gained.get(key).packets, 2, "{gained}");
    let lb = fixture.dataplane.load_balancer();
    let web_id = lb.service_id("default/web:http").unwrap();
    assert_eq!(
        fixture
            .dataplane
            .service_stats()
            .unwrap()
            .get(web_id)
            .refused,
        1
    );

    // Adding a backend makes the same ClusterIP answer.
    fixture.upsert(&web(fixture.all_backends()));
    probe
        .connect_greeted(vip(), false)
        .unwrap_or_else(|f| panic!("{f:?}"));
}

#[test]
fn random_selection_spreads_over_every_backend() {
    let mut fixture = Fixture::new("random", 3);
    fixture.upsert(&web(fixture.all_backends()));
    let mut probe = fixture.probe();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for backend in pick(&mut probe, 60) {
        *counts.entry(backend).or_default() += 1;
    }
    // Each of 3 backends gets 20 on average; fewer than 5 has a
    // probability below 1e-4.
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|count| *count >= 5), "{counts:?}");
}

#[test]
fn round_robin_rotates_exactly() {
    let mut fixture = Fixture::new("rr", 3);
    fixture.upsert(&web(fixture.all_backends()).with_algorithm(Algorithm::RoundRobin));
    let mut probe = fixture.probe();
    let picks = pick(&mut probe, 12);
    let cycle: BTreeSet<&String> = picks[..3].iter().collect();
    assert_eq!(
        cycle.len(),
        3,
        "first turn must visit every backend: {picks:?}"
    );
    for (i, backend) in picks.iter().enumerate() {
        assert_eq!(backend, &picks[i % 3], "not a rotation: {picks:?}");
    }
}

#[test]
fn least_connections_picks_the_idle_backend() {
    let mut fixture = Fixture::new("lc", 3);
    fixture.upsert(&web(fixture.all_backends()).with_algorithm(Algorithm::LeastConnections));
    let mut probe = fixture.probe();

    for round in 0..3 {
        // Two held connections land on two different backends...
        let first = probe.connect_greeted(vip(), true).unwrap();
        let second = probe.connect_greeted(vip(), true).unwrap();
        assert_ne!(first.backend, second.backend, "round {round}");
        // ...so the next ones must go to the third, idle one.
        let idle: Vec<String> = fixture
            .net
            .names()
            .into_iter()
            .filter(|name| *name != first.backend && *name != second.backend)
            .collect();
        for _ in 0..5 {
            let next = probe.connect_greeted(vip(), false).unwrap();
            assert_eq!(vec![next.backend.clone()], idle, "round {round}");
        }
        probe.close(first.id);
        probe.close(second.id);
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn session_affinity_keeps_a_client_on_one_backend_until_the_timeout() {
    let mut fixture = Fixture::new("aff", 3);
    let timeout = Duration::from_secs(1);
    fixture.upsert(&web(fixture.all_backends()).with_affinity(timeout));
    let mut probe = fixture.probe();

    let first = pick(&mut probe, 1).remove(0);
    // Within the timeout (renewed by each connection) every connection of
    // this client goes to the same backend.
    for _ in 0..20 {
        assert_eq!(pick(&mut probe, 1)[0], first);
        thread::sleep(Duration::from_millis(20));
    }
    // After the timeout the client is free again: some wait brings another
    // backend (each round picks at random, 2/3 chance of another one).
    let mut moved = false;
    for _ in 0..10 {
        thread::sleep(timeout + Duration::from_millis(200));
        let now = pick(&mut probe, 1).remove(0);
        if now != first {
            moved = true;
            break;
        }
    }
    assert!(
        moved,
        "the client never left {first} after its affinity timed out"
    );
}

#[test]
fn maglev_keeps_clients_on_their_backend_when_an_unrelated_backend_goes() {
    let mut fixture = Fixture::new("maglev", 4);
    fixture.upsert(&web(fixture.all_backends()).with_algorithm(Algorithm::Maglev));
    let mut probe = fixture.probe();
    let ports: Vec<u16> = (41000..41060).collect();
    let assign = |probe: &mut Probe| -> Vec<String> {
        ports
            .iter()
            .map(|port| {
                probe
                    .connect_greeted_from(vip(), *port)
                    .unwrap_or_else(|f| panic!("{f:?}"))
                    .backend
            })
            .collect()
    };
    let before = assign(&mut probe);
    // Consistent: the same client (port) gets the same backend again.
    assert_eq!(assign(&mut probe), before);
    let used: BTreeSet<&String> = before.iter().collect();
    assert!(used.len() >= 3, "60 clients should spread: {before:?}");

    fixture.upsert(&web(fixture.backends(&["b1", "b2", "b3"])).with_algorithm(Algorithm::Maglev));
    let after = assign(&mut probe);
    let kept = before
        .iter()
        .zip(&after)
        .filter(|(old, _)| *old != "b4")
        .filter(|(old, new)| old == new)
        .count();
    let others = before.iter().filter(|old| *old != "b4").count();
    assert!(after.iter().all(|backend| backend != "b4"));
    // Maglev moves only a few percent of the other positions.
    assert!(
        kept * 100 >= others * 90,
        "kept {kept} of {others}: {before:?} -> {after:?}"
    );
}

#[test]
fn terminating_backends_are_used_only_when_no_ready_one_is_left() {
    let mut fixture = Fixture::new("term", 2);
    let b1 = fixture.net.backends[0].addr;
    let b2 = fixture.net.backends[1].addr;
    fixture.upsert(&web(vec![
        BackendSpec::ready(b1, BACKEND_PORT, false),
        BackendSpec::terminating(b2, BACKEND_PORT, false),
    ]));
    let mut probe = fixture.probe();
    assert!(pick(&mut probe, 20).iter().all(|name| name == "b1"));

    fixture.upsert(&web(vec![BackendSpec::terminating(
        b2,
        BACKEND_PORT,
        false,
    )]));
    assert!(pick(&mut probe, 5).iter().all(|name| name == "b2"));
}

#[test]
fn backend_changes_reach_new_connections_without_disturbing_open_ones() {
    let mut fixture = Fixture::new("update", 2);
    fixture.upsert(&web(fixture.backends(&["b1"])));
    let mut probe = fixture.probe();
    let held = probe.connect_greeted(vip(), true).unwrap();
    assert_eq!(held.backend, "b1");

    fixture.upsert(&web(fixture.backends(&["b2"])));
    assert!(pick(&mut probe, 10).iter().all(|name| name == "b2"));
    // The connection to the removed backend is a plain connection to it.
    assert_eq!(
        probe.echo(held.id, "still there").unwrap(),
        "b1:still there"
    );
    assert_eq!(probe.peer(held.id), SocketAddr::V4(vip()));

    // Writing the same state again changes nothing.
    let same = web(fixture.backends(&["b2"]));
    let applied = fixture
        .dataplane
        .load_balancer()
        .upsert_service(&same)
        .unwrap();
    assert_eq!(applied, baton_node::dataplane::Applied::Unchanged);

    fixture
        .dataplane
        .load_balancer()
        .delete_service("default/web:http")
        .unwrap();
    let gone = probe.connect_greeted(vip(), false).unwrap_err();
    assert_eq!(
        gone.errno, ENETUNREACH,
        "a deleted service is no longer translated"
    );
}

#[test]
fn a_thousand_services_with_ten_backends_each_answer() {
    let mut fixture = Fixture::new("scale", 10);
    let backends = fixture.all_backends();
    let specs: Vec<ServiceSpec> = (0..1000u32)
        .map(|i| {
            let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 97, 0, 0)) + i);
            ServiceSpec::new(
                format!("scale/svc-{i}:http"),
                Protocol::Tcp,
                vec![Frontend::cluster_ip(vip, 80)],
            )
            .with_backends(backends.clone())
        })
        .collect();
    let start = Instant::now();
    let report = fixture.dataplane.load_balancer().reconcile(&specs);
    let took = start.elapsed();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.created, 1000);
    eprintln!("1000 services x 10 backends programmed in {took:?}");

    let dump = fixture.dataplane.dump().unwrap();
    assert_eq!(dump.services.len(), 1000);
    assert!(
        dump.services
            .iter()
            .all(|service| service.backend_ids.len() == 10)
    );
    assert_eq!(
        dump.backends.len(),
        10,
        "backends are shared, not duplicated"
    );

    let mut probe = fixture.probe();
    for i in (0..1000u32).step_by(37) {
        let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 97, 0, 0)) + i);
        let service = SocketAddrV4::new(vip, 80);
        let connected = probe
            .connect_greeted(service, false)
            .unwrap_or_else(|f| panic!("{vip}: {f:?}"));
        assert!(fixture.net.names().contains(&connected.backend));
        assert_eq!(connected.peer, SocketAddr::V4(service));
    }
    // A second full reconcile with the same state writes nothing.
    let report = fixture.dataplane.load_balancer().reconcile(&specs);
    assert_eq!(report.unchanged, 1000, "{report:?}");
}

#[test]
fn socket_lb_creates_no_iptables_or_nftables_rules() {
    let mut fixture = Fixture::new("rules", 1);
    fixture.upsert(&web(fixture.all_backends()));
    let mut probe = fixture.probe();
    probe.connect_greeted(vip(), false).unwrap();
    for (program, args) in [
        ("iptables-save", &[][..]),
        ("nft", &["list", "ruleset"][..]),
    ] {
        let out = fixture.net.node.exec(program, args);
        let rules: Vec<&str> = out
            .lines()
            .filter(|line| {
                line.starts_with("-A") || line.contains("rule") || line.contains("chain")
            })
            .collect();
        assert!(rules.is_empty(), "{program} in the node namespace:\n{out}");
    }
}

#[test]
fn sockets_opened_before_a_restart_keep_their_peer_and_their_count() {
    baton_e2e::assert_root();
    let bpffs = support::Bpffs::mount("sock-restart");
    let pins = bpffs.path().join("node");
    let net = Backends::create("sockr", 1);
    let cgroup = OwnedCgroup::create("sockr");
    let spec = web(vec![BackendSpec::ready(
        net.backends[0].addr,
        BACKEND_PORT,
        false,
    )]);
    let start = || {
        let mut dataplane =
            Dataplane::load(&LoadOptions::new().pin_dir(&pins)).unwrap_or_else(|e| panic!("{e}"));
        let attachment = dataplane
            .attach_cgroup(cgroup.path())
            .unwrap_or_else(|e| panic!("{e}"));
        let applied = dataplane.load_balancer().upsert_service(&spec).unwrap();
        (dataplane, attachment, applied)
    };
    let sockets = |dataplane: &Dataplane| -> u32 {
        dataplane
            .dump()
            .unwrap()
            .backends
            .iter()
            .map(|backend| backend.conns.sockets)
            .sum()
    };

    let (dataplane, attachment, applied) = start();
    assert_eq!(applied, baton_node::dataplane::Applied::Created);
    let mut probe = Probe::spawn(&net.node, Some(cgroup.path())).expect("probe");
    let held = probe.connect_greeted(vip(), true).unwrap();
    assert_eq!(sockets(&dataplane), 1);

    // Down: the pinned cgroup links keep translating new connections.
    drop(attachment);
    drop(dataplane);
    probe
        .connect_greeted(vip(), false)
        .expect("new connection while the agent is down");

    let (dataplane, _attachment, applied) = start();
    assert_eq!(applied, baton_node::dataplane::Applied::Unchanged);
    // Socket storage outlived the old programs: the peer is still the
    // service, and the count is still there...
    assert_eq!(probe.peer(held.id), SocketAddr::V4(vip()));
    assert_eq!(sockets(&dataplane), 1);
    // ...and the new sock_release program uncounts it at close.
    probe.close(held.id);
    let deadline = Instant::now() + Duration::from_secs(2);
    while sockets(&dataplane) != 0 {
        assert!(
            Instant::now() < deadline,
            "socket still counted after close"
        );
        thread::sleep(Duration::from_millis(20));
    }
    drop(probe);
}
