//! The load balancer's state machine on in-memory maps: what it writes for
//! a service, bank switches, rollback after a failed write, restore after
//! a restart, capacity refusals, deletes and Maglev tables. Assertions look
//! at the maps as a datapath reads them: from a frontend to its bank's
//! slots to the backends.

use std::{collections::BTreeSet, net::Ipv4Addr};

use baton_abi::lb::{
    BACKEND_F_LOCAL, BACKEND_STATE_ACTIVE, Backend, BackendConns, FrontendKind, SCOPE_DEFAULT,
    SCOPE_INTERNAL, ServiceStats,
};

use super::*;
use crate::dataplane::lb::{
    memory_maps::{Contents, MemoryLbMaps},
    spec::{Frontend, TrafficPolicy},
};

const NODE_PORT: u16 = 30_080;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 1, last)
}

fn vip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 96, 0, last)
}

/// A ClusterIP service `vip(vip_last):80` with ready backends
/// `ip(last):8080`, none on this node.
fn service(name: &str, vip_last: u8, backends: &[u8]) -> ServiceSpec {
    ServiceSpec::new(
        name,
        Protocol::Tcp,
        vec![Frontend::cluster_ip(vip(vip_last), 80)],
    )
    .with_backends(
        backends
            .iter()
            .map(|last| BackendSpec::ready(ip(*last), 8080, false))
            .collect(),
    )
}

/// The same with a NodePort too: two frontends on one view.
fn with_node_port(spec: ServiceSpec) -> ServiceSpec {
    let mut spec = spec;
    spec.frontends.push(Frontend::node_port(NODE_PORT));
    spec
}

fn cluster_key(vip_last: u8) -> ServiceKey {
    Frontend::cluster_ip(vip(vip_last), 80).key(Protocol::Tcp, SCOPE_DEFAULT)
}

fn node_port_key(scope: u8) -> ServiceKey {
    Frontend::node_port(NODE_PORT).key(Protocol::Tcp, scope)
}

/// Small Maglev tables, so their contents are easy to check.
fn capacities() -> Capacities {
    Capacities {
        maglev_tables: 4,
        maglev_table_size: 13,
        ..Capacities::default()
    }
}

/// A load balancer on empty maps, and a handle on those maps.
fn balancer(capacities: Capacities) -> (LoadBalancer<MemoryLbMaps>, MemoryLbMaps) {
    let maps = MemoryLbMaps::new(&capacities);
    let lb = LoadBalancer::restore(maps.clone(), capacities).unwrap();
    (lb, maps)
}

fn slot_key(value: &ServiceValue, slot: u16) -> SlotKey {
    SlotKey {
        service_id: value.service_id,
        slot: value.slot_offset + slot,
        bank: value.bank,
        _pad: 0,
    }
}

/// The backends a datapath picks among for frontend `key`, in slot order.
fn reads(contents: &Contents, key: &ServiceKey) -> Vec<Ipv4Addr> {
    let value = contents.services[key];
    (1..=value.count)
        .map(|slot| {
            let slot = contents.slots[&slot_key(&value, slot)];
            Ipv4Addr::from(contents.backends[&slot.backend_id].addr)
        })
        .collect()
}

/// What a datapath relies on: every frontend's slots exist in its bank
/// and name existing backends, and nothing is left that no frontend leads
/// to (slots, memberships, backends).
fn assert_consistent(contents: &Contents) {
    let mut live_slots = BTreeSet::new();
    let mut live_services = BTreeSet::new();
    for (key, value) in &contents.services {
        live_services.insert(value.service_id);
        for slot in 1..=value.count {
            let slot = slot_key(value, slot);
            let Some(target) = contents.slots.get(&slot) else {
                panic!("{key:?}: slot {slot:?} missing");
            };
            assert!(
                contents.backends.contains_key(&target.backend_id),
                "{slot:?} names a missing backend"
            );
            live_slots.insert(slot);
        }
    }
    let stray: Vec<&SlotKey> = contents
        .slots
        .keys()
        .filter(|key| !live_slots.contains(*key))
        .collect();
    assert!(stray.is_empty(), "slots no frontend reads: {stray:?}");
    for key in contents.members.keys() {
        assert!(
            live_services.contains(&key.service_id)
                && contents.backends.contains_key(&key.backend_id),
            "stray membership {key:?}"
        );
    }
    let used: BTreeSet<u32> = contents.members.keys().map(|key| key.backend_id).collect();
    let unused: Vec<&u32> = contents
        .backends
        .keys()
        .filter(|id| !used.contains(*id))
        .collect();
    assert!(unused.is_empty(), "backends no service uses: {unused:?}");
}

/// Backend ids of the memberships of service `id`.
fn members_of(contents: &Contents, id: u32) -> Vec<u32> {
    contents
        .members
        .keys()
        .filter(|key| key.service_id == id)
        .map(|key| key.backend_id)
        .collect()
}

fn backend_ids(lb: &LoadBalancer<MemoryLbMaps>, lasts: &[u8]) -> Vec<u32> {
    lasts
        .iter()
        .map(|last| lb.backend_id(ip(*last), 8080, Protocol::Tcp).unwrap())
        .collect()
}

/// Only the hash maps a datapath follows from a frontend, and the
/// counters.
fn assert_no_service_left(contents: &Contents) {
    assert!(
        contents.services.is_empty()
            && contents.slots.is_empty()
            && contents.members.is_empty()
            && contents.backends.is_empty()
            && contents.stats.is_empty(),
        "{contents:#?}"
    );
}

#[test]
fn an_upsert_writes_a_service_the_datapath_can_follow() {
    let (mut lb, maps) = balancer(capacities());
    // Backend id 1 was used before: its old counts are not the new
    // backend's load.
    maps.edit(|contents| {
        contents.conns.insert(
            1,
            BackendConns {
                sockets: 3,
                flows: 2,
            },
        );
    });

    assert_eq!(
        lb.upsert_service(&service("web", 1, &[2, 1])).unwrap(),
        Applied::Created
    );

    let id = lb.service_id("web").unwrap();
    let contents = maps.contents();
    let value = contents.services[&cluster_key(1)];
    assert_eq!(
        value,
        ServiceValue {
            service_id: id,
            count: 2,
            flags: 0,
            algorithm: Algorithm::Random as u8,
            kind: FrontendKind::ClusterIp as u8,
            bank: 0,
            _pad0: 0,
            affinity_timeout_s: 0,
            maglev_table: 0,
            slot_offset: 0,
            _pad1: 0,
        }
    );
    assert_eq!(reads(&contents, &cluster_key(1)), [ip(1), ip(2)]);
    let ids = backend_ids(&lb, &[1, 2]);
    assert_eq!(members_of(&contents, id), ids);
    assert!(contents.members.values().all(|member| member.weight == 1));
    assert_eq!(
        contents.backends[&ids[0]],
        Backend {
            addr: ip(1).octets(),
            port: 8080,
            proto: Protocol::Tcp.number(),
            state: BACKEND_STATE_ACTIVE,
            flags: 0,
            _pad: [0; 3],
        }
    );
    assert!(contents.conns.is_empty(), "{:?}", contents.conns);
    assert!(
        contents.maglev.is_empty(),
        "random selection needs no table"
    );
    assert_eq!(lb.slot_entries(), 2);
    assert_consistent(&contents);
}

#[test]
fn an_unchanged_upsert_writes_nothing() {
    let (mut lb, maps) = balancer(capacities());
    let spec = with_node_port(service("web", 1, &[1, 2, 3]))
        .with_algorithm(Algorithm::Maglev)
        .with_affinity(std::time::Duration::from_secs(30));
    lb.upsert_service(&spec).unwrap();
    let before = maps.contents();
    let writes = maps.writes();

    // The proxy may list endpoints in any order.
    let mut reordered = spec.clone();
    reordered.backends.reverse();
    assert_eq!(lb.upsert_service(&reordered).unwrap(), Applied::Unchanged);
    assert_eq!(lb.upsert_service(&spec).unwrap(), Applied::Unchanged);

    assert_eq!(maps.writes(), writes);
    assert_eq!(maps.contents(), before);
}

#[test]
fn a_changed_backend_list_switches_bank_and_removes_what_the_old_one_used() {
    let (mut lb, maps) = balancer(capacities());
    lb.upsert_service(&with_node_port(service("web", 1, &[1, 2, 3])))
        .unwrap();
    lb.upsert_service(&service("api", 2, &[3])).unwrap();
    let web = lb.service_id("web").unwrap();
    let old_ids = backend_ids(&lb, &[1, 2, 3]);

    assert_eq!(
        lb.upsert_service(&with_node_port(service("web", 1, &[2, 3, 4])))
            .unwrap(),
        Applied::Updated
    );

    let contents = maps.contents();
    for key in [cluster_key(1), node_port_key(SCOPE_DEFAULT)] {
        let value = contents.services[&key];
        assert_eq!((value.service_id, value.bank), (web, 1), "{key:?}");
        assert_eq!(reads(&contents, &key), [ip(2), ip(3), ip(4)], "{key:?}");
    }
    let web_banks: BTreeSet<u8> = contents
        .slots
        .keys()
        .filter(|key| key.service_id == web)
        .map(|key| key.bank)
        .collect();
    assert_eq!(web_banks, BTreeSet::from([1]), "the old bank is deleted");
    assert!(
        !contents.backends.contains_key(&old_ids[0]),
        "backend 1 is no longer used"
    );
    assert_eq!(
        backend_ids(&lb, &[2, 3]),
        old_ids[1..],
        "kept backends keep their ids"
    );
    assert_eq!(members_of(&contents, web), backend_ids(&lb, &[2, 3, 4]));
    assert_eq!(lb.slot_entries(), 4, "web's 3 and api's 1");
    assert_consistent(&contents);

    // Backend 3 is referenced by both services: it goes with the last.
    lb.delete_service("api").unwrap();
    assert!(maps.contents().backends.contains_key(&old_ids[2]));
    lb.upsert_service(&with_node_port(service("web", 1, &[4])))
        .unwrap();
    let contents = maps.contents();
    assert_eq!(contents.services[&cluster_key(1)].bank, 0, "and back");
    assert_eq!(reads(&contents, &cluster_key(1)), [ip(4)]);
    assert_eq!(contents.backends.len(), 1);
    assert_consistent(&contents);
}

#[test]
fn a_backend_whose_locality_changed_is_rewritten_without_a_switch() {
    let (mut lb, maps) = balancer(capacities());
    lb.upsert_service(&service("web", 1, &[1, 2])).unwrap();
    let before = maps.contents();
    let writes = maps.writes();

    let mut spec = service("web", 1, &[1, 2]);
    spec.backends[1].node_local = true;
    assert_eq!(lb.upsert_service(&spec).unwrap(), Applied::Unchanged);

    assert_eq!(maps.writes(), writes + 1, "one backend entry");
    let id = backend_ids(&lb, &[2])[0];
    let mut expected = before;
    expected.backends.get_mut(&id).unwrap().flags = BACKEND_F_LOCAL;
    assert_eq!(maps.contents(), expected);
}

#[test]
fn a_failed_write_during_a_switch_leaves_the_maps_as_they_were() {
    let old = with_node_port(service("web", 1, &[1, 2, 3]));
    let new = with_node_port(service("web", 1, &[2, 3, 4]));
    // Writes of the switch until it is live: backend 4's counts and
    // entry, three slots of the new bank, backend 4's membership, the two
    // frontends.
    for n in 1..=8 {
        let (mut lb, maps) = balancer(capacities());
        lb.upsert_service(&service("api", 2, &[3])).unwrap();
        lb.upsert_service(&old).unwrap();
        let before = maps.contents();

        maps.fail_write(n);
        let error = lb.upsert_service(&new).unwrap_err();
        assert!(
            matches!(&error, LbError::Map { service, .. } if service == "web"),
            "write {n}: {error}"
        );
        assert_eq!(maps.contents(), before, "write {n}");

        // The load balancer still knows the old state...
        let writes = maps.writes();
        assert_eq!(lb.upsert_service(&old).unwrap(), Applied::Unchanged);
        assert_eq!(maps.writes(), writes, "write {n}");
        // ...switches from it, and counts references right.
        assert_eq!(lb.upsert_service(&new).unwrap(), Applied::Updated);
        let contents = maps.contents();
        assert_eq!(reads(&contents, &cluster_key(1)), [ip(2), ip(3), ip(4)]);
        assert_consistent(&contents);
        lb.delete_service("web").unwrap();
        lb.delete_service("api").unwrap();
        assert_no_service_left(&maps.contents());
    }
}

#[test]
fn a_failed_write_during_a_create_leaves_nothing_and_frees_the_service_id() {
    let web = with_node_port(service("web", 1, &[1]));
    // Writes 2..=7 of the create: backend 1's counts and entry, its slot,
    // its membership, the two frontends. (Write 1 clears the counters of
    // the id, best effort.)
    for n in 2..=7 {
        let capacities = Capacities {
            service_ids: 3,
            ..capacities()
        };
        let (mut lb, maps) = balancer(capacities);
        lb.upsert_service(&service("api", 2, &[2])).unwrap();
        let before = maps.contents();

        maps.fail_write(n);
        let error = lb.upsert_service(&web).unwrap_err();
        assert!(matches!(error, LbError::Map { .. }), "write {n}: {error}");
        assert_eq!(maps.contents(), before, "write {n}");
        assert_eq!(lb.service_id("web"), None);
        assert_eq!((lb.len(), lb.slot_entries()), (1, 1));

        // Ids 1 and 2 are all there are: the failed create gave its back.
        assert_eq!(lb.upsert_service(&web).unwrap(), Applied::Created);
        assert_consistent(&maps.contents());
    }
}

#[test]
fn a_map_the_kernel_finds_full_is_map_full_and_rolled_back() {
    let (mut lb, maps) = balancer(capacities());
    // The kernel's map is smaller than the load balancer was told.
    maps.resize(SLOTS_MAP_NAME, 2);
    lb.upsert_service(&service("api", 2, &[1])).unwrap();
    let before = maps.contents();

    let error = lb.upsert_service(&service("web", 1, &[2, 3])).unwrap_err();
    assert!(
        matches!(
            &error,
            LbError::MapFull { service, map: SLOTS_MAP_NAME, .. } if service == "web"
        ),
        "{error}"
    );
    assert_eq!(maps.contents(), before);
    assert_eq!(lb.len(), 1);
}

#[test]
fn a_service_that_does_not_fit_is_refused_before_any_write() {
    struct Case {
        capacities: Capacities,
        first: ServiceSpec,
        second: ServiceSpec,
        map: &'static str,
        capacity: u32,
    }
    let maglev = |spec: ServiceSpec| spec.with_algorithm(Algorithm::Maglev);
    let cases = [
        // Ids 1..4: three backends.
        Case {
            capacities: Capacities {
                backends: 4,
                ..capacities()
            },
            first: service("a", 1, &[1, 2]),
            second: service("b", 2, &[2, 3, 4]),
            map: BACKENDS_MAP_NAME,
            capacity: 4,
        },
        // Id 1 only.
        Case {
            capacities: Capacities {
                service_ids: 2,
                ..capacities()
            },
            first: service("a", 1, &[1]),
            second: service("b", 2, &[1]),
            map: SERVICE_STATS_MAP_NAME,
            capacity: 2,
        },
        // The new table is filled while the old one serves.
        Case {
            capacities: Capacities {
                maglev_tables: 1,
                ..capacities()
            },
            first: maglev(service("a", 1, &[1])),
            second: maglev(service("a", 1, &[1, 2])),
            map: MAGLEV_MAP_NAME,
            capacity: 1,
        },
        // A Local external policy needs a table per view.
        Case {
            capacities: Capacities {
                maglev_tables: 1,
                ..capacities()
            },
            first: service("a", 1, &[1]),
            second: maglev(with_node_port(service("b", 2, &[2])))
                .with_policies(TrafficPolicy::Local, TrafficPolicy::Cluster),
            map: MAGLEV_MAP_NAME,
            capacity: 1,
        },
    ];
    for case in cases {
        let (mut lb, maps) = balancer(case.capacities);
        lb.upsert_service(&case.first).unwrap();
        let before = maps.contents();
        let writes = maps.writes();

        let error = lb.upsert_service(&case.second).unwrap_err();
        match &error {
            LbError::MapFull {
                service,
                map,
                capacity,
            } => assert_eq!(
                (service.as_str(), *map, *capacity),
                (case.second.name.as_str(), case.map, case.capacity)
            ),
            other => panic!("{}: expected a map-full error, got {other}", case.map),
        }
        assert_eq!(maps.writes(), writes, "{error}");
        assert_eq!(maps.contents(), before, "{error}");
        assert_eq!(
            lb.upsert_service(&case.first).unwrap(),
            Applied::Unchanged,
            "{error}"
        );
    }
}

#[test]
fn a_restart_adopts_services_ids_and_banks_and_rewrites_nothing() {
    let capacities = capacities();
    let (mut lb, maps) = balancer(capacities);
    let web = service("web", 1, &[1, 2, 3]);
    let api = with_node_port(service("api", 2, &[3, 4])).with_algorithm(Algorithm::Maglev);
    lb.upsert_service(&service("web", 1, &[1, 2])).unwrap();
    lb.upsert_service(&web).unwrap();
    lb.upsert_service(&api).unwrap();
    let ids = (lb.service_id("web").unwrap(), lb.service_id("api").unwrap());
    let api_table = maps.contents().services[&cluster_key(2)].maglev_table;
    let before = maps.contents();
    drop(lb);

    let mut lb = LoadBalancer::restore(maps.clone(), capacities).unwrap();
    assert_eq!(maps.contents(), before, "a clean restore deletes nothing");
    assert_eq!((lb.len(), lb.slot_entries()), (2, 5));
    assert_eq!(lb.service_id("web"), None, "names live only in the proxy");
    assert_eq!(
        lb.service_name(ids.0),
        None,
        "restored services are unnamed until claimed"
    );

    let writes = maps.writes();
    assert_eq!(lb.upsert_service(&web).unwrap(), Applied::Unchanged);
    assert_eq!(lb.upsert_service(&api).unwrap(), Applied::Unchanged);
    assert_eq!(maps.writes(), writes, "nothing rewritten");
    assert_eq!(
        (lb.service_id("web").unwrap(), lb.service_id("api").unwrap()),
        ids
    );
    assert_eq!(lb.service_name(ids.0), Some("web"));

    // web was on bank 1: its next switch writes bank 0. Backend 3 stays
    // (api uses it), 2 goes.
    lb.upsert_service(&service("web", 1, &[1, 3])).unwrap();
    let contents = maps.contents();
    assert_eq!(contents.services[&cluster_key(1)].bank, 0);
    assert_eq!(reads(&contents, &cluster_key(1)), [ip(1), ip(3)]);
    assert_eq!(lb.backend_id(ip(2), 8080, Protocol::Tcp), None);
    assert_consistent(&contents);

    // Restored ids, backend ids and Maglev tables are not handed out again.
    lb.upsert_service(&service("db", 3, &[5]).with_algorithm(Algorithm::Maglev))
        .unwrap();
    let db = lb.service_id("db").unwrap();
    assert!(db != ids.0 && db != ids.1);
    let contents = maps.contents();
    assert_ne!(contents.services[&cluster_key(3)].maglev_table, api_table);
    assert_eq!(contents.backends.len(), 4);
    assert_consistent(&contents);
}

#[test]
fn a_restart_removes_what_a_crash_left_half_done() {
    let capacities = capacities();
    let (mut lb, maps) = balancer(capacities);
    lb.upsert_service(&service("web", 1, &[1, 2])).unwrap();
    lb.upsert_service(&service("api", 2, &[3])).unwrap();
    let web = lb.service_id("web").unwrap();
    let web_value = maps.contents().services[&cluster_key(1)];
    let backend_1 = backend_ids(&lb, &[1])[0];
    let clean = maps.contents();
    drop(lb);

    let unknown = 77;
    let slot = |service_id, slot, bank| {
        (
            SlotKey {
                service_id,
                slot,
                bank,
                _pad: 0,
            },
            SlotValue {
                backend_id: backend_1,
            },
        )
    };
    maps.edit(|contents| {
        // A switch of web that wrote its other bank but no frontend yet.
        contents.slots.extend([slot(web, 1, 1), slot(web, 2, 1)]);
        // Slots past the end of web's live view.
        contents.slots.extend([slot(web, 3, 0)]);
        // A frontend of web switched to the other bank, the rest not.
        contents.services.insert(
            Frontend::cluster_ip(vip(200), 80).key(Protocol::Tcp, SCOPE_DEFAULT),
            ServiceValue {
                bank: 1,
                ..web_value
            },
        );
        // A service whose frontends were already deleted.
        contents.slots.extend([slot(unknown, 1, 0)]);
        contents.members.insert(
            MemberKey {
                service_id: unknown,
                backend_id: backend_1,
            },
            MemberValue { weight: 1 },
        );
        // A backend written for a service that never got it.
        contents.backends.insert(
            60,
            Backend {
                addr: ip(60).octets(),
                ..Backend::default()
            },
        );
    });

    let mut lb = LoadBalancer::restore(maps.clone(), capacities).unwrap();
    assert_eq!(maps.contents(), clean);
    assert_eq!((lb.len(), lb.slot_entries()), (2, 3));

    // Reference counts do not include the removed membership: web's
    // backend 1 goes with web.
    let report = lb.reconcile([&service("api", 2, &[3])]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.unchanged, report.deleted), (1, 1));
    let contents = maps.contents();
    assert_eq!(contents.backends.len(), 1);
    assert_consistent(&contents);
}

#[test]
fn maglev_services_get_a_filled_table_per_view() {
    let capacities = capacities();
    let m = capacities.maglev_table_size;
    let (mut lb, maps) = balancer(capacities);
    let mut spec = with_node_port(service("web", 1, &[1, 2, 3]))
        .with_algorithm(Algorithm::Maglev)
        .with_policies(TrafficPolicy::Local, TrafficPolicy::Cluster);
    spec.backends[0].node_local = true;
    lb.upsert_service(&spec).unwrap();

    // The table of `key`, as the programs index it.
    let table = |contents: &Contents, key: &ServiceKey| -> Vec<u32> {
        let value = contents.services[key];
        assert_eq!(value.algorithm, Algorithm::Maglev as u8, "{key:?}");
        let base = value.maglev_table * m;
        (base..base + m)
            .map(|index| {
                contents
                    .maglev
                    .get(&index)
                    .map_or(0, |entry| entry.backend_id)
            })
            .collect()
    };
    let expected = |lb: &LoadBalancer<MemoryLbMaps>, lasts: &[u8]| -> Vec<u32> {
        let backends: Vec<MaglevBackend> = lasts
            .iter()
            .zip(backend_ids(lb, lasts))
            .map(|(last, id)| MaglevBackend {
                addr: ip(*last),
                port: 8080,
                weight: 1,
                id,
            })
            .collect();
        maglev::table(&backends, m)
    };

    let contents = maps.contents();
    let all = table(&contents, &cluster_key(1));
    assert_eq!(all, expected(&lb, &[1, 2, 3]));
    assert_eq!(
        all.iter().copied().collect::<BTreeSet<u32>>(),
        backend_ids(&lb, &[1, 2, 3]).into_iter().collect(),
        "every backend has positions, every position a backend"
    );
    assert_eq!(table(&contents, &node_port_key(SCOPE_INTERNAL)), all);
    assert_eq!(
        table(&contents, &node_port_key(SCOPE_DEFAULT)),
        expected(&lb, &[1]),
        "the Local view's own table"
    );
    let tables: BTreeSet<u32> = contents
        .services
        .values()
        .map(|value| value.maglev_table)
        .collect();
    assert_eq!(tables.len(), 2);

    // An update fills new tables next to the serving ones.
    spec.backends.truncate(2);
    lb.upsert_service(&spec).unwrap();
    let contents = maps.contents();
    assert_eq!(table(&contents, &cluster_key(1)), expected(&lb, &[1, 2]));
    assert_eq!(
        table(&contents, &node_port_key(SCOPE_DEFAULT)),
        expected(&lb, &[1])
    );
    let new_tables: BTreeSet<u32> = contents
        .services
        .values()
        .map(|value| value.maglev_table)
        .collect();
    assert!(new_tables.is_disjoint(&tables), "{new_tables:?} {tables:?}");
    assert_consistent(&contents);
}

#[test]
fn delete_removes_everything_the_service_wrote() {
    let (mut lb, maps) = balancer(capacities());
    lb.upsert_service(
        &with_node_port(service("web", 1, &[1, 2]))
            .with_algorithm(Algorithm::Maglev)
            .with_affinity(std::time::Duration::from_secs(60)),
    )
    .unwrap();
    lb.upsert_service(&service("api", 2, &[2, 3])).unwrap();
    let ids = [lb.service_id("web").unwrap(), lb.service_id("api").unwrap()];
    // The datapath counted connections of both.
    maps.edit(|contents| {
        for id in ids {
            contents.stats.insert(
                id,
                ServiceStats {
                    new_flows: 5,
                    ..ServiceStats::default()
                },
            );
        }
    });

    lb.delete_service("web").unwrap();
    let contents = maps.contents();
    assert_eq!(
        contents.services.keys().copied().collect::<Vec<_>>(),
        [cluster_key(2)]
    );
    assert_eq!(contents.backends.len(), 2, "api's backends stay");
    assert!(!contents.stats.contains_key(&ids[0]));
    assert_consistent(&contents);

    lb.delete_service("api").unwrap();
    assert_no_service_left(&maps.contents());
    assert!(lb.is_empty());
    assert_eq!(lb.slot_entries(), 0);
    assert!(matches!(
        lb.delete_service("api"),
        Err(LbError::NotFound { .. })
    ));
}

#[test]
fn a_recycled_service_id_starts_with_fresh_counters() {
    let (mut lb, maps) = balancer(Capacities {
        service_ids: 2,
        ..capacities()
    });
    lb.upsert_service(&service("a", 1, &[1])).unwrap();
    let id = lb.service_id("a").unwrap();
    lb.delete_service("a").unwrap();
    // A connection of the deleted service was still counted.
    maps.edit(|contents| {
        contents.stats.insert(
            id,
            ServiceStats {
                packets: 9,
                ..ServiceStats::default()
            },
        );
    });

    lb.upsert_service(&service("b", 2, &[2])).unwrap();
    assert_eq!(lb.service_id("b"), Some(id));
    assert!(maps.contents().stats.is_empty());
}
