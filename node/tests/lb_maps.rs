//! The map-programming layer against the kernel's maps: typed map-full
//! errors that leave the datapath as it was, updates that leave exactly
//! the live entries, restore from pins with adoption by the proxy's next
//! reconcile, and conntrack garbage collection. Needs root.

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use baton_abi::{
    conntrack::{CT_MAP_NAME, CtEntry, CtKey},
    lb::{SERVICES_MAP_NAME, SLOTS_MAP_NAME},
};
use baton_node::{
    dataplane::{
        Applied, BackendSpec, Capacities, Dataplane, Frontend, Hook, LbError, LoadOptions,
        NodeConfig, Protocol, ServiceSpec,
    },
    sys::test_run::TestRun,
};
use support::{Bpffs, packets};

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 3, last)
}

fn service(name: &str, vip_last: u8, backends: &[u8]) -> ServiceSpec {
    ServiceSpec::new(
        name,
        Protocol::Tcp,
        vec![Frontend::cluster_ip(Ipv4Addr::new(10, 96, 1, vip_last), 80)],
    )
    .with_backends(
        backends
            .iter()
            .map(|last| BackendSpec::ready(ip(*last), 8080, false))
            .collect(),
    )
}

fn load(options: &LoadOptions) -> Dataplane {
    baton_e2e::assert_root();
    Dataplane::load(options).unwrap_or_else(|error| panic!("{error}"))
}

fn backend_addrs(dataplane: &Dataplane) -> Vec<Ipv4Addr> {
    let mut addrs: Vec<Ipv4Addr> = dataplane
        .dump()
        .unwrap()
        .backends
        .iter()
        .map(|backend| Ipv4Addr::from(backend.backend.addr))
        .collect();
    addrs.sort();
    addrs
}

#[test]
fn a_full_map_is_reported_and_the_datapath_keeps_its_previous_state() {
    let capacities = Capacities {
        frontends: 2,
        slots: 8,
        ..Capacities::default()
    };
    let mut dataplane = load(&LoadOptions::new().capacities(capacities));
    let lb = dataplane.load_balancer();
    lb.upsert_service(&service("a", 1, &[1])).unwrap();
    lb.upsert_service(&service("b", 2, &[1, 2, 3, 4])).unwrap();

    // A third frontend does not fit.
    let error = lb.upsert_service(&service("c", 3, &[9])).unwrap_err();
    match &error {
        LbError::MapFull {
            service,
            map,
            capacity,
        } => {
            assert_eq!(
                (service.as_str(), *map, *capacity),
                ("c", SERVICES_MAP_NAME, 2)
            );
        }
        other => panic!("expected a map-full error, got {other}"),
    }
    assert!(lb.service_id("c").is_none());

    // Replacing b's backends needs its new bank next to the old one: 5
    // slots are in use, 4 more do not fit in 8.
    let error = lb
        .upsert_service(&service("b", 2, &[5, 6, 7, 8]))
        .unwrap_err();
    assert!(
        matches!(
            error,
            LbError::MapFull {
                map: SLOTS_MAP_NAME,
                ..
            }
        ),
        "{error}"
    );
    let dump = dataplane.dump().unwrap();
    assert_eq!(dump.services.len(), 2);
    let b = dump
        .services
        .iter()
        .find(|service| service.key.addr == [10, 96, 1, 2])
        .unwrap();
    assert_eq!(b.backend_ids.len(), 4, "b keeps its old backends");
    assert_eq!(
        backend_addrs(&dataplane),
        [ip(1), ip(2), ip(3), ip(4)],
        "nothing of the refused state left"
    );
}

#[test]
fn updates_and_deletes_leave_exactly_the_live_entries() {
    let mut dataplane = load(&LoadOptions::new());
    let lb = dataplane.load_balancer();
    assert_eq!(
        lb.upsert_service(&service("web", 1, &[1, 2, 3])).unwrap(),
        Applied::Created
    );
    assert_eq!(
        lb.upsert_service(&service("web", 1, &[1, 2, 3])).unwrap(),
        Applied::Unchanged
    );
    assert_eq!(
        lb.upsert_service(&service("web", 1, &[2, 3, 4])).unwrap(),
        Applied::Updated
    );
    assert_eq!(lb.slot_entries(), 3, "the old bank is gone");
    assert_eq!(
        backend_addrs(&dataplane),
        [ip(2), ip(3), ip(4)],
        "backend 1 is unused and deleted"
    );

    // A backend shared by two services stays until neither uses it.
    let lb = dataplane.load_balancer();
    lb.upsert_service(&service("api", 2, &[4])).unwrap();
    lb.upsert_service(&service("web", 1, &[5])).unwrap();
    assert_eq!(backend_addrs(&dataplane), [ip(4), ip(5)]);

    let lb = dataplane.load_balancer();
    lb.delete_service("web").unwrap();
    lb.delete_service("api").unwrap();
    assert!(matches!(
        lb.delete_service("api"),
        Err(LbError::NotFound { .. })
    ));
    let dump = dataplane.dump().unwrap();
    assert!(
        dump.services.is_empty() && dump.backends.is_empty(),
        "{dump}"
    );
    assert_eq!(dataplane.load_balancer().slot_entries(), 0);
}

#[test]
fn a_frontend_belongs_to_one_service() {
    let mut dataplane = load(&LoadOptions::new());
    let lb = dataplane.load_balancer();
    lb.upsert_service(&service("web", 1, &[1])).unwrap();
    let error = lb.upsert_service(&service("other", 1, &[2])).unwrap_err();
    assert!(matches!(error, LbError::FrontendConflict { .. }), "{error}");
    let invalid = ServiceSpec::new("bad", Protocol::Tcp, vec![]);
    assert!(matches!(
        lb.upsert_service(&invalid),
        Err(LbError::InvalidSpec { .. })
    ));
}

#[test]
fn a_restart_restores_services_and_the_next_reconcile_adopts_or_deletes_them() {
    let bpffs = Bpffs::mount("lb-restore");
    let options = LoadOptions::new().pin_dir(bpffs.path().join("node"));
    let specs = [
        service("a", 1, &[1, 2]),
        service("b", 2, &[2, 3]),
        service("c", 3, &[4]),
    ];
    let mut first = load(&options);
    for spec in &specs {
        first.load_balancer().upsert_service(spec).unwrap();
    }
    let ids: Vec<u32> = ["a", "b"]
        .iter()
        .map(|name| first.load_balancer().service_id(name).unwrap())
        .collect();
    drop(first);

    let mut second = load(&options);
    assert_eq!(second.load_balancer().len(), 3, "restored from the pins");
    let report = second.load_balancer().reconcile(&specs[..2]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.unchanged, report.deleted), (2, 1), "{report:?}");
    let adopted: Vec<u32> = ["a", "b"]
        .iter()
        .map(|name| second.load_balancer().service_id(name).unwrap())
        .collect();
    assert_eq!(adopted, ids, "ids are kept across the restart");
    assert_eq!(
        backend_addrs(&second),
        [ip(1), ip(2), ip(3)],
        "c's backend went with c"
    );
}

#[test]
fn conntrack_gc_removes_expired_flows_and_uncounts_their_backend() {
    let bpffs = Bpffs::mount("ct-gc");
    let pins = bpffs.path().join("node");
    let mut dataplane = load(&LoadOptions::new().pin_dir(&pins));
    let node = Ipv4Addr::new(198, 18, 0, 1);
    dataplane.node().set_local_addresses(&[(node, 0)]).unwrap();
    dataplane
        .node()
        .set_config(&NodeConfig {
            snat_addr: Some(node),
            ..NodeConfig::default()
        })
        .unwrap();
    let spec = ServiceSpec::new("udp", Protocol::Udp, vec![Frontend::node_port(30053)])
        .with_backends(vec![BackendSpec::ready(ip(1), 53, false)]);
    dataplane.load_balancer().upsert_service(&spec).unwrap();
    let datagram = packets::udp(
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 5000),
        SocketAddrV4::new(node, 30053),
        b"query",
    );
    dataplane
        .test_run(Hook::UplinkIngress, &TestRun::new(&datagram))
        .unwrap();
    let flows = |dataplane: &Dataplane| -> u32 {
        dataplane
            .dump()
            .unwrap()
            .backends
            .iter()
            .map(|backend| backend.conns.flows)
            .sum()
    };
    assert_eq!(dataplane.conntrack().unwrap().len(), 2);
    assert_eq!(flows(&dataplane), 1);

    // Nothing expired yet: GC keeps the flow.
    let report = dataplane.conntrack_gc().unwrap();
    assert_eq!((report.scanned, report.removed), (2, 0));

    // Age the flow past its expiry through the pinned map, as time would.
    let map = MapData::from_pin(pins.join(CT_MAP_NAME)).unwrap();
    let mut ct: BpfHashMap<MapData, CtKey, CtEntry> =
        BpfHashMap::try_from(Map::LruHashMap(map)).unwrap();
    let keys: Vec<CtKey> = ct.keys().map(Result::unwrap).collect();
    for key in keys {
        let mut entry = ct.get(&key, 0).unwrap();
        entry.expires_ns = 1;
        ct.insert(key, entry, 0).unwrap();
    }
    let report = dataplane.conntrack_gc().unwrap();
    assert_eq!((report.removed, report.uncounted), (2, 1), "{report:?}");
    assert!(dataplane.conntrack().unwrap().is_empty());
    assert_eq!(flows(&dataplane), 0);
}

#[test]
fn the_dump_shows_services_backends_conntrack_and_counters() {
    let mut dataplane = load(&LoadOptions::new());
    dataplane
        .load_balancer()
        .upsert_service(&service("default/web:http", 1, &[1, 2]))
        .unwrap();
    dataplane
        .load_balancer()
        .upsert_service(&service("default/empty:http", 2, &[]))
        .unwrap();
    let text = dataplane.dump().unwrap().to_string();
    for expected in [
        "10.96.1.1:80/TCP",
        "ClusterIP",
        "10.244.3.1:8080",
        "[default/web:http]",
        "(none: refused)",
        "BACKENDS",
        "CONNTRACK",
        "METRICS",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
}

#[test]
fn baton_node_dataplane_dump_reads_a_running_nodes_pins() {
    let bpffs = Bpffs::mount("dump-cli");
    let pins = bpffs.path().join("node");
    let mut dataplane = load(&LoadOptions::new().pin_dir(&pins));
    dataplane
        .load_balancer()
        .upsert_service(&service("default/web:http", 7, &[1, 2]))
        .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_baton-node"))
        .args(["dataplane", "dump", "--pin-dir"])
        .arg(&pins)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in ["10.96.1.7:80/TCP", "10.244.3.1:8080", "10.244.3.2:8080"] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
}
