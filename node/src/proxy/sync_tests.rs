use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use super::*;
use crate::dataplane::{Algorithm, BackendSpec, Frontend, TrafficPolicy};

/// Records every call; keeps what was programmed; refuses what it is told
/// to, with the error it is given.
#[derive(Default)]
struct Recorder {
    maps: HashMap<String, ServiceSpec>,
    calls: Vec<String>,
    refuse: BTreeMap<String, fn(&str) -> LbError>,
    reconciled: Vec<Vec<String>>,
}

fn map_full(service: &str) -> LbError {
    LbError::MapFull {
        service: service.to_owned(),
        map: "baton_lb_be",
        capacity: 4,
    }
}

fn conflict(service: &str) -> LbError {
    LbError::FrontendConflict {
        service: service.to_owned(),
        frontend: "10.96.0.1:80/TCP".into(),
        owner: "other/svc".into(),
    }
}

impl Programmer for Recorder {
    fn upsert(&mut self, spec: &ServiceSpec) -> Result<Applied, LbError> {
        self.calls.push(format!("upsert {}", spec.name));
        if let Some(error) = self.refuse.get(&spec.name) {
            return Err(error(&spec.name));
        }
        // A frontend may belong to one spec only.
        for (name, other) in &self.maps {
            if name != &spec.name
                && other
                    .frontends
                    .iter()
                    .any(|frontend| spec.frontends.contains(frontend))
            {
                return Err(conflict(&spec.name));
            }
        }
        Ok(match self.maps.insert(spec.name.clone(), spec.clone()) {
            None => Applied::Created,
            Some(old) if old == *spec => Applied::Unchanged,
            Some(_) => Applied::Updated,
        })
    }

    fn delete(&mut self, name: &str) -> Result<(), LbError> {
        self.calls.push(format!("delete {name}"));
        self.maps.remove(name).map(|_| ()).ok_or(LbError::NotFound {
            service: name.to_owned(),
        })
    }

    fn reconcile(&mut self, specs: &[ServiceSpec]) -> ReconcileReport {
        self.reconciled
            .push(specs.iter().map(|spec| spec.name.clone()).collect());
        let mut report = ReconcileReport::default();
        let keep: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
        let stale: Vec<String> = self
            .maps
            .keys()
            .filter(|name| !keep.contains(&name.as_str()))
            .cloned()
            .collect();
        for name in stale {
            self.maps.remove(&name);
            report.deleted += 1;
        }
        for spec in specs {
            match self.upsert(spec) {
                Ok(Applied::Created) => report.created += 1,
                Ok(Applied::Updated) => report.updated += 1,
                Ok(Applied::Unchanged) => report.unchanged += 1,
                Err(error) => report.errors.push(error),
            }
        }
        self.calls.clear();
        report
    }
}

fn svc(name: &str) -> ServiceRef {
    ServiceRef::new("default", name)
}

fn spec(name: &str, vip: u8, backends: &[u8]) -> ServiceSpec {
    ServiceSpec::new(
        name,
        Protocol::Tcp,
        vec![Frontend::cluster_ip(Ipv4Addr::new(10, 96, 0, vip), 80)],
    )
    .with_backends(
        backends
            .iter()
            .map(|b| BackendSpec::ready(Ipv4Addr::new(10, 244, 1, *b), 8080, false))
            .collect(),
    )
}

fn translation(specs: Vec<ServiceSpec>) -> Translation {
    Translation {
        specs,
        ..Translation::default()
    }
}

#[test]
fn the_first_sync_reconciles_everything_at_once() {
    let mut maps = Recorder::default();
    maps.maps.insert(
        "default/gone:http".into(),
        spec("default/gone:http", 9, &[1]),
    );
    let mut syncer = Syncer::default();
    let report = syncer.initial(
        &mut maps,
        vec![
            (
                svc("a"),
                translation(vec![spec("default/a:http", 1, &[1, 2])]),
            ),
            (svc("b"), translation(vec![spec("default/b:http", 2, &[3])])),
        ],
        Instant::now(),
    );
    assert_eq!(
        maps.reconciled,
        vec![vec![
            "default/a:http".to_owned(),
            "default/b:http".to_owned()
        ]]
    );
    assert_eq!((report.created, report.deleted), (2, 1));
    assert!(report.failures.is_empty());
    assert!(syncer.programmed("default/a:http").is_some());
}

#[test]
fn only_changed_specs_are_written() {
    let mut maps = Recorder::default();
    let mut syncer = Syncer::default();
    let now = Instant::now();
    syncer.initial(
        &mut maps,
        vec![(
            svc("a"),
            translation(vec![
                spec("default/a:http", 1, &[1, 2]),
                spec("default/a:https", 2, &[1, 2]),
            ]),
        )],
        now,
    );
    // The same state again: nothing is written.
    let report = syncer.update(
        &mut maps,
        vec![(
            svc("a"),
            Some(translation(vec![
                spec("default/a:http", 1, &[1, 2]),
                spec("default/a:https", 2, &[1, 2]),
            ])),
        )],
        now,
    );
    assert!(maps.calls.is_empty(), "{:?}", maps.calls);
    assert!(!report.wrote());
    // One port's backends change: that spec only.
    let report = syncer.update(
        &mut maps,
        vec![(
            svc("a"),
            Some(translation(vec![
                spec("default/a:http", 1, &[1, 2, 3]),
                spec("default/a:https", 2, &[1, 2]),
            ])),
        )],
        now,
    );
    assert_eq!(maps.calls, ["upsert default/a:http"]);
    assert_eq!(report.updated, 1);
    // A port goes away: its spec is deleted, the other is kept.
    maps.calls.clear();
    syncer.update(
        &mut maps,
        vec![(
            svc("a"),
            Some(translation(vec![spec("default/a:http", 1, &[1, 2, 3])])),
        )],
        now,
    );
    assert_eq!(maps.calls, ["delete default/a:https"]);
    // The service goes away.
    maps.calls.clear();
    let report = syncer.update(&mut maps, vec![(svc("a"), None)], now);
    assert_eq!(maps.calls, ["delete default/a:http"]);
    assert_eq!(report.deleted, 1);
    assert!(maps.maps.is_empty());
    assert_eq!(syncer.services().count(), 0);
}

#[test]
fn deletes_run_before_upserts_so_a_frontend_can_move() {
    let mut maps = Recorder::default();
    let mut syncer = Syncer::default();
    let now = Instant::now();
    syncer.initial(
        &mut maps,
        vec![(svc("old"), translation(vec![spec("default/old", 7, &[1])]))],
        now,
    );
    // In one batch: "new" takes the frontend 10.96.0.7:80 that "old" had.
    let report = syncer.update(
        &mut maps,
        vec![
            (
                svc("new"),
                Some(translation(vec![spec("default/new", 7, &[2])])),
            ),
            (svc("old"), None),
        ],
        now,
    );
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(maps.calls, ["delete default/old", "upsert default/new"]);
}

#[test]
fn a_map_full_failure_is_reported_once_retried_with_backoff_and_recovers() {
    let mut maps = Recorder::default();
    maps.refuse.insert("default/big".into(), map_full);
    let mut syncer = Syncer::new(Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(4),
    });
    let t0 = Instant::now();
    syncer.initial(&mut maps, Vec::new(), t0);
    let report = syncer.update(
        &mut maps,
        vec![(
            svc("big"),
            Some(translation(vec![spec("default/big", 1, &[1, 2, 3])])),
        )],
        t0,
    );
    assert_eq!(report.failures.len(), 1);
    let failure = &report.failures[0];
    assert!(failure.new);
    assert_eq!(failure.service, svc("big"));
    assert_eq!(error_kind(&failure.error), "map_full");
    assert!(
        failure.error.to_string().contains("baton_lb_be"),
        "{}",
        failure.error
    );
    assert_eq!(syncer.failing(), 1);
    assert_eq!(syncer.next_retry(), Some(t0 + Duration::from_secs(1)));
    assert!(syncer.programmed("default/big").is_none());

    // Not due yet: nothing is tried.
    maps.calls.clear();
    let report = syncer.retry_due(&mut maps, t0 + Duration::from_millis(500));
    assert!(maps.calls.is_empty());
    assert!(report.failures.is_empty());
    // Due: tried, fails the same way (not new), backoff doubles, capped.
    let t1 = t0 + Duration::from_secs(1);
    let report = syncer.retry_due(&mut maps, t1);
    assert_eq!(maps.calls, ["upsert default/big"]);
    assert!(!report.failures[0].new);
    assert_eq!(report.failures[0].attempts, 2);
    assert_eq!(syncer.next_retry(), Some(t1 + Duration::from_secs(2)));
    let t2 = t1 + Duration::from_secs(2);
    syncer.retry_due(&mut maps, t2);
    syncer.retry_due(&mut maps, t2 + Duration::from_secs(4));
    assert_eq!(
        syncer.next_retry(),
        Some(t2 + Duration::from_secs(4) + Duration::from_secs(4))
    );

    // Room is made: the next retry programs it and reports the recovery.
    maps.refuse.clear();
    let report = syncer.retry_due(&mut maps, t2 + Duration::from_secs(60));
    assert_eq!(report.created, 1);
    assert_eq!(
        report.recovered,
        vec![(svc("big"), "default/big".to_owned())]
    );
    assert_eq!(syncer.failing(), 0);
    assert_eq!(syncer.next_retry(), None);
    assert!(maps.maps.contains_key("default/big"));
}

#[test]
fn a_failing_spec_is_retried_at_once_when_its_service_changes() {
    let mut maps = Recorder::default();
    maps.refuse.insert("default/x".into(), map_full);
    let mut syncer = Syncer::default();
    let now = Instant::now();
    syncer.initial(
        &mut maps,
        vec![(svc("x"), translation(vec![spec("default/x", 1, &[1])]))],
        now,
    );
    assert_eq!(syncer.failing(), 1);
    maps.refuse.clear();
    let report = syncer.update(
        &mut maps,
        vec![(
            svc("x"),
            Some(translation(vec![spec("default/x", 1, &[1])])),
        )],
        now,
    );
    assert_eq!(report.created, 1);
    assert_eq!(report.recovered.len(), 1);
}

#[test]
fn a_conflict_keeps_the_owner_and_a_new_error_text_is_reported_again() {
    let mut maps = Recorder::default();
    let mut syncer = Syncer::default();
    let now = Instant::now();
    syncer.initial(
        &mut maps,
        vec![(
            svc("first"),
            translation(vec![spec("default/first", 5, &[1])]),
        )],
        now,
    );
    let report = syncer.update(
        &mut maps,
        vec![(
            svc("second"),
            Some(translation(vec![spec("default/second", 5, &[2])])),
        )],
        now,
    );
    assert_eq!(error_kind(&report.failures[0].error), "frontend_conflict");
    assert!(report.failures[0].new);
    assert_eq!(
        maps.maps["default/first"].backends[0].addr,
        Ipv4Addr::new(10, 244, 1, 1)
    );
    maps.refuse.insert("default/second".into(), map_full);
    let report = syncer.retry_due(&mut maps, now + Duration::from_secs(5));
    assert!(report.failures[0].new, "another error is news");
    // The service is deleted while failing: nothing to remove or retry.
    maps.calls.clear();
    let report = syncer.update(&mut maps, vec![(svc("second"), None)], now);
    assert!(report.recovered.is_empty());
    assert!(maps.calls.is_empty(), "{:?}", maps.calls);
    assert_eq!(syncer.failing(), 0);
    assert_eq!(syncer.next_retry(), None);
}

#[test]
fn usage_counts_entries_per_map() {
    let mut maps = Recorder::default();
    let mut syncer = Syncer::default();
    let local = spec("default/l", 2, &[1, 2])
        .with_algorithm(Algorithm::Maglev)
        .with_policies(TrafficPolicy::Local, TrafficPolicy::Cluster);
    let mut local = local;
    local.frontends.push(Frontend::node_port(30000));
    local.backends[0].node_local = true;
    syncer.initial(
        &mut maps,
        vec![
            (
                svc("c"),
                translation(vec![spec("default/c", 1, &[1, 2, 3])]),
            ),
            (svc("l"), translation(vec![local])),
        ],
        Instant::now(),
    );
    let usage = syncer.usage();
    assert_eq!(usage.services, 2);
    // c: one ClusterIP; l: ClusterIP + NodePort (Local) + its internal entry.
    assert_eq!(usage.frontends, 4);
    // Three distinct backends, members 3 + 2.
    assert_eq!(usage.backends, 3);
    assert_eq!(usage.members, 5);
    // c: 3 slots; l: the All view (2) and the Local view (1).
    assert_eq!(usage.slots, 6);
    assert_eq!(usage.maglev_tables, 2);
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let backoff = Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(3),
    };
    let delays: Vec<u128> = (1..=6).map(|n| backoff.delay(n).as_millis()).collect();
    assert_eq!(delays, [500, 1000, 2000, 3000, 3000, 3000]);
}
