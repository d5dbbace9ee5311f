//! Rollouts simulated step by step: the plan's writes are applied to the
//! ReplicaSets, a fake kubelet makes pods available, and invariants are
//! checked after every step.

use std::collections::HashMap;

use serde_json::json;

use super::*;

fn deployment(replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "d", "uid": "dep-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": strategy,
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 10,
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}},
        },
    }))
    .unwrap()
}

fn now() -> jiff::Timestamp {
    "2024-01-01T00:00:00Z".parse().unwrap()
}

/// Applies the plan's writes; `ready` makes every desired pod available.
fn apply(rss: &mut Vec<ReplicaSet>, plan: &Plan, ready: bool, seq: &mut i64) {
    for s in &plan.steps {
        match s {
            Step::Create(rs) => {
                let mut rs = (**rs).clone();
                *seq += 1;
                rs.metadata.uid = Some(format!("rs-{seq}"));
                rs.metadata.creation_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        now() + jiff::SignedDuration::from_secs(*seq),
                    ));
                rss.push(rs);
            }
            Step::Scale {
                name,
                to,
                annotations,
                ..
            } => {
                let rs = rss
                    .iter_mut()
                    .find(|r| r.metadata.name.as_deref() == Some(name))
                    .unwrap();
                rs.spec.as_mut().unwrap().replicas = Some(*to);
                rs.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .extend(annotations.clone());
            }
            Step::Annotate { name, annotations } => {
                let rs = rss
                    .iter_mut()
                    .find(|r| r.metadata.name.as_deref() == Some(name))
                    .unwrap();
                rs.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .extend(annotations.clone());
            }
            Step::Delete { name } => rss.retain(|r| r.metadata.name.as_deref() != Some(name)),
            Step::Revision(_) => {}
        }
    }
    // The ReplicaSet controller and kubelet: actual pods follow spec; new
    // pods become available only when `ready`.
    for rs in rss.iter_mut() {
        let want = rs_replicas(rs);
        let st = rs.status.get_or_insert_with(Default::default);
        let avail = st.available_replicas.unwrap_or(0);
        let avail = if ready { want } else { avail.min(want) };
        st.replicas = want;
        st.ready_replicas = Some(avail);
        st.available_replicas = Some(avail);
    }
}

fn sync_once(d: &Deployment, rss: &[ReplicaSet]) -> Plan {
    sync(Observed {
        deployment: d,
        replicasets: rss.to_vec(),
        pods_per_rs: HashMap::new(),
        now: now(),
    })
}

fn with_status(mut d: Deployment, p: &Plan) -> Deployment {
    d.status = Some(p.status.clone());
    if let Some(Step::Revision(r)) = p.steps.iter().find(|s| matches!(s, Step::Revision(_))) {
        d.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(REVISION.into(), r.clone());
    }
    d
}

#[test]
fn new_deployment_creates_one_hashed_replicaset_at_revision_1() {
    let d = deployment(3, "nginx:1.14.2", json!({}));
    let p = sync_once(&d, &[]);
    let Step::Create(rs) = &p.steps[0] else {
        panic!("{:?}", p.steps)
    };
    let hash = rs.metadata.labels.as_ref().unwrap()[HASH_LABEL].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()[HASH_LABEL],
        hash
    );
    assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(3));
    let ann = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        (
            ann[REVISION].as_str(),
            ann[DESIRED_REPLICAS].as_str(),
            ann[MAX_REPLICAS].as_str()
        ),
        ("1", "3", "4")
    );
    let o = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (o.kind.as_str(), o.controller, o.block_owner_deletion),
        ("Deployment", Some(true), Some(true))
    );
    assert!(p.steps.contains(&Step::Revision("1".into())));
    let prog = status::get(&p.status, "Progressing").unwrap();
    assert_eq!(prog.reason.as_deref(), Some("NewReplicaSetCreated"));
}

/// Runs a rollout to completion, checking `check(available)` after every
/// step while pods become available one sync later.
fn roll(
    d: Deployment,
    mut rss: Vec<ReplicaSet>,
    check: impl Fn(i32, &[ReplicaSet]),
) -> (Deployment, Vec<ReplicaSet>) {
    let mut d = d;
    let mut seq = 10;
    for _ in 0..50 {
        let p = sync_once(&d, &rss);
        apply(&mut rss, &p, false, &mut seq);
        check(rss.iter().map(rs_available).sum(), &rss);
        d = with_status(d, &p);
        let p = sync_once(&d, &rss);
        if p.steps.is_empty() && status::complete(&d, &p.status) {
            d = with_status(d, &p);
            return (d, rss);
        }
        // The kubelet makes the new pods available.
        apply(&mut rss, &Plan::default(), true, &mut seq);
        check(rss.iter().map(rs_available).sum(), &rss);
    }
    panic!("rollout did not finish: {rss:#?}");
}

#[test]
fn rolling_update_with_max_unavailable_zero_never_drops_below_desired() {
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let d = deployment(3, "nginx:1.14.2", strategy.clone());
    let (d, rss) = roll(d, vec![], |_, _| {});
    assert_eq!(rss.len(), 1);
    let mut d2 = deployment(3, "nginx:1.16.1", strategy);
    d2.metadata.generation = Some(2);
    d2.status = d.status.clone();
    d2.metadata.annotations = d.metadata.annotations.clone();
    let (d2, rss) = roll(d2, rss, |avail, rss| {
        assert!(avail >= 3, "available {avail} < 3: {rss:#?}");
        let total: i32 = rss.iter().map(rs_replicas).sum();
        assert!(total <= 4, "surge exceeded: {total}");
    });
    let new: Vec<_> = rss.iter().filter(|r| rs_replicas(r) > 0).collect();
    assert_eq!(new.len(), 1);
    assert_eq!(revision(new[0]), 2);
    let prog = status::get(d2.status.as_ref().unwrap(), "Progressing").unwrap();
    assert_eq!(prog.reason.as_deref(), Some("NewReplicaSetAvailable"));
    let avail = status::get(d2.status.as_ref().unwrap(), "Available").unwrap();
    assert_eq!(
        (avail.status.as_str(), avail.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
}

#[test]
fn rollback_reuses_the_old_replicaset_with_a_new_revision() {
    let d = deployment(2, "nginx:1", json!({}));
    let (d, rss) = roll(d, vec![], |_, _| {});
    let mut d2 = deployment(2, "nginx:2", json!({}));
    d2.status = d.status.clone();
    d2.metadata.annotations = d.metadata.annotations.clone();
    let (d2, rss) = roll(d2, rss, |_, _| {});
    let mut d3 = deployment(2, "nginx:1", json!({}));
    d3.status = d2.status.clone();
    d3.metadata.annotations = d2.metadata.annotations.clone();
    let p = sync_once(&d3, &rss);
    assert!(p.steps.iter().any(|s| matches!(s, Step::Annotate { annotations, .. } if annotations.get(REVISION).map(String::as_str) == Some("3"))), "{:?}", p.steps);
    assert!(!p.steps.iter().any(|s| matches!(s, Step::Create(_))));
    let (_, rss) = roll(d3, rss, |_, _| {});
    assert_eq!(rss.len(), 2);
}

#[test]
fn recreate_scales_old_to_zero_and_waits_for_pods_to_go() {
    let d = deployment(2, "nginx:1", json!({"type": "Recreate"}));
    let (d, mut rss) = roll(d, vec![], |_, _| {});
    let mut d2 = deployment(2, "nginx:2", json!({"type": "Recreate"}));
    d2.status = d.status.clone();
    let p = sync_once(&d2, &rss);
    assert!(
        matches!(&p.steps[..], [Step::Scale { to: 0, .. }]),
        "{:?}",
        p.steps
    );
    let mut seq = 50;
    apply(&mut rss, &p, false, &mut seq);
    // Pods still terminating: nothing created yet.
    let old_uid = rss[0].metadata.uid.clone().unwrap_or_default();
    rss[0].status.as_mut().unwrap().replicas = 0;
    let p = sync(Observed {
        deployment: &d2,
        replicasets: rss.clone(),
        pods_per_rs: [(old_uid, 1)].into(),
        now: now(),
    });
    assert!(p.steps.iter().all(|s| !matches!(s, Step::Create(_))));
    let p = sync_once(&d2, &rss);
    assert!(
        p.steps.iter().any(
            |s| matches!(s, Step::Create(rs) if rs.spec.as_ref().unwrap().replicas == Some(2))
        ),
        "{:?}",
        p.steps
    );
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}});
    let d = deployment(10, "nginx:1", strategy.clone());
    let (d, mut rss) = roll(d, vec![], |_, _| {});
    let mut d2 = deployment(10, "nginx:2", strategy.clone());
    d2.status = d.status.clone();
    let p = sync_once(&d2, &rss);
    let mut seq = 70;
    apply(&mut rss, &p, false, &mut seq);
    let sizes: Vec<i32> = rss.iter().map(rs_replicas).collect();
    // As upstream: the new ReplicaSet starts at maxSurge and, in the same
    // sync, the old one drops by maxUnavailable.
    assert_eq!(sizes, vec![8, 3]);
    // Now the user scales to 20 while both ReplicaSets are active.
    let mut d3 = deployment(20, "nginx:2", strategy);
    d3.status = with_status(d2, &p).status;
    let p = sync_once(&d3, &rss);
    apply(&mut rss, &p, false, &mut seq);
    let sizes: Vec<i32> = rss.iter().map(rs_replicas).collect();
    assert_eq!(sizes.iter().sum::<i32>(), 23, "{sizes:?}");
    assert!(sizes[0] > sizes[1], "{sizes:?}");
}

#[test]
fn history_beyond_the_limit_is_deleted_oldest_first() {
    let mut d = deployment(1, "nginx:9", json!({}));
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let mut rss = Vec::new();
    for (i, img) in ["nginx:1", "nginx:2", "nginx:3"].iter().enumerate() {
        let mut rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": format!("old{i}"), "annotations": {REVISION: (i + 1).to_string()}, "generation": 1},
            "spec": {"replicas": 0, "selector": {}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": img}]}}},
            "status": {"replicas": 0, "observedGeneration": 1},
        }))
        .unwrap();
        rs.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        rss.push(rs);
    }
    let (_, rss) = roll(d, rss, |_, _| {});
    let names: Vec<_> = rss
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .filter(|n| n.starts_with("old"))
        .collect();
    assert_eq!(names, vec!["old2"]);
}
