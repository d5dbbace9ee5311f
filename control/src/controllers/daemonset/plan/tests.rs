use super::*;
use serde_json::{Value, json};

const HASH: &str = "new";

fn ds(strategy: Value) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": "default", "generation": 4,
            "annotations": {"deprecated.daemonset.template.generation": "2"}},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": strategy,
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": "agent:2"}], "nodeSelector": {"role": "worker"}}}}
    }))
    .unwrap()
}

fn rolling_ds(unavailable: Value, surge: Value) -> DaemonSet {
    ds(
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": unavailable, "maxSurge": surge}}),
    )
}

fn node(name: &str, role: &str) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"role": role}}})).unwrap()
}

/// A pod on `node`: `hash` "new" or "old", `ready`, created at `at` seconds.
fn pod(name: &str, node: &str, hash: &str, ready: bool, at: i64) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "agent", HASH_LABEL: hash},
            "creationTimestamp": jiff::Timestamp::from_second(at).unwrap().to_string()},
        "spec": {"containers": [], "nodeName": node},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
    .unwrap()
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_000).unwrap()
}

fn refs<T>(v: &[T]) -> Vec<&T> {
    v.iter().collect()
}

#[test]
fn every_eligible_node_without_a_pod_gets_one() {
    let d = rolling_ds(json!(1), json!(0));
    let nodes = [node("n1", "worker"), node("n2", "worker"), node("n3", "db")];
    let pods = [pod("a-1", "n1", HASH, true, 1)];
    let by = pods_by_node(&refs(&pods));
    let m = manage(&d, &refs(&nodes), &by, HASH, now());
    assert_eq!(m.create, ["n2"]);
    assert!(m.delete.is_empty() && m.failed.is_empty());
}

#[test]
fn pods_on_ineligible_or_missing_nodes_go_and_extra_pods_are_pruned() {
    let d = rolling_ds(json!(1), json!(0));
    let nodes = [node("n1", "worker"), node("n3", "db")];
    let pods = [
        pod("a-1", "n1", HASH, true, 1),
        pod("a-2", "n1", HASH, true, 2),
        pod("a-3", "n3", HASH, true, 1),
        pod("a-4", "gone", HASH, true, 1),
    ];
    let by = pods_by_node(&refs(&pods));
    let m = manage(&d, &refs(&nodes), &by, HASH, now());
    assert!(m.create.is_empty());
    assert_eq!(m.delete, ["a-2", "a-3", "a-4"]);
}

#[test]
fn failed_pods_are_reported_and_succeeded_ones_deleted() {
    let d = rolling_ds(json!(1), json!(0));
    let nodes = [node("n1", "worker"), node("n2", "worker")];
    let mut failed = pod("a-1", "n1", HASH, false, 1);
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let mut done = pod("a-2", "n2", HASH, false, 1);
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let pods = [failed, done];
    let by = pods_by_node(&refs(&pods));
    let m = manage(&d, &refs(&nodes), &by, HASH, now());
    assert_eq!(m.failed, [("n1".to_string(), "a-1".to_string())]);
    assert_eq!(m.delete, ["a-2"]);
    assert!(m.create.is_empty());
}

#[test]
fn rolling_update_without_surge_replaces_max_unavailable_at_a_time() {
    let d = rolling_ds(json!(1), json!(0));
    let nodes = [
        node("n1", "worker"),
        node("n2", "worker"),
        node("n3", "worker"),
    ];
    let pods = [
        pod("a-1", "n1", "old", true, 1),
        pod("a-2", "n2", "old", true, 1),
        pod("a-3", "n3", "old", true, 1),
    ];
    let by = pods_by_node(&refs(&pods));
    let r = rolling(&d, &refs(&nodes), &by, HASH, now());
    assert_eq!(r.delete, ["a-1"]);
    // A new pod not yet available uses the budget: nothing more goes.
    let pods = [
        pod("a-9", "n1", HASH, false, 5),
        pod("a-2", "n2", "old", true, 1),
        pod("a-3", "n3", "old", true, 1),
    ];
    let by = pods_by_node(&refs(&pods));
    assert!(
        rolling(&d, &refs(&nodes), &by, HASH, now())
            .delete
            .is_empty()
    );
    // Once available, the next old pod goes; unavailable old pods always go.
    let pods = [
        pod("a-9", "n1", HASH, true, 5),
        pod("a-2", "n2", "old", true, 1),
        pod("a-3", "n3", "old", false, 1),
    ];
    let by = pods_by_node(&refs(&pods));
    assert_eq!(
        rolling(&d, &refs(&nodes), &by, HASH, now()).delete,
        ["a-3", "a-2"]
    );
    // maxUnavailable 67% of 3 nodes rounds up to 3.
    let wide = rolling_ds(json!("67%"), json!(0));
    let pods = [
        pod("a-1", "n1", "old", true, 1),
        pod("a-2", "n2", "old", true, 1),
        pod("a-3", "n3", "old", true, 1),
    ];
    let by = pods_by_node(&refs(&pods));
    assert_eq!(
        rolling(&wide, &refs(&nodes), &by, HASH, now()).delete,
        ["a-1", "a-2", "a-3"]
    );
}

#[test]
fn rolling_update_with_surge_creates_beside_old_pods_then_deletes_them() {
    let d = rolling_ds(json!(0), json!(1));
    let nodes = [node("n1", "worker"), node("n2", "worker")];
    let pods = [
        pod("a-1", "n1", "old", true, 1),
        pod("a-2", "n2", "old", true, 1),
    ];
    let by = pods_by_node(&refs(&pods));
    let r = rolling(&d, &refs(&nodes), &by, HASH, now());
    assert_eq!((r.create, r.delete), (vec!["n1".to_string()], vec![]));
    // The surged pod is not available yet: wait.
    let pods = [
        pod("a-1", "n1", "old", true, 1),
        pod("a-9", "n1", HASH, false, 5),
        pod("a-2", "n2", "old", true, 1),
    ];
    let by = pods_by_node(&refs(&pods));
    let r = rolling(&d, &refs(&nodes), &by, HASH, now());
    assert!(r.create.is_empty() && r.delete.is_empty());
    // Manage keeps both while the new one is not available.
    assert!(
        manage(&d, &refs(&nodes), &by, HASH, now())
            .delete
            .is_empty()
    );
    // Available: the old pod goes, and the next node surges.
    let pods = [
        pod("a-1", "n1", "old", true, 1),
        pod("a-9", "n1", HASH, true, 5),
        pod("a-2", "n2", "old", true, 1),
    ];
    let by = pods_by_node(&refs(&pods));
    let r = rolling(&d, &refs(&nodes), &by, HASH, now());
    assert_eq!(r.delete, ["a-1"]);
    assert_eq!(r.create, ["n2"]);
}

#[test]
fn on_delete_never_replaces_pods() {
    let d = ds(json!({"type": "OnDelete"}));
    let nodes = [node("n1", "worker")];
    let pods = [pod("a-1", "n1", "old", true, 1)];
    let by = pods_by_node(&refs(&pods));
    // The update strategy's counts are zero: rolling falls back to one
    // unavailable, but the controller only rolls RollingUpdate sets.
    assert_eq!(surge_and_unavailable(&d, 1), (0, 0));
    assert_eq!(
        manage(&d, &refs(&nodes), &by, HASH, now()),
        Manage::default()
    );
}

#[test]
fn status_counts_nodes_and_pods() {
    let d = rolling_ds(json!(1), json!(0));
    let nodes = [
        node("n1", "worker"),
        node("n2", "worker"),
        node("n3", "worker"),
        node("n4", "db"),
    ];
    let pods = [
        pod("a-1", "n1", HASH, true, 1),
        pod("a-2", "n2", "old", false, 1),
        pod("a-4", "n4", HASH, true, 1),
    ];
    let by = pods_by_node(&refs(&pods));
    let s = status(&d, &refs(&nodes), &by, HASH, now(), true);
    assert_eq!(s.desired_number_scheduled, 3);
    assert_eq!(s.current_number_scheduled, 2);
    assert_eq!(s.number_misscheduled, 1);
    assert_eq!(s.number_ready, 1);
    assert_eq!(s.number_available, Some(1));
    assert_eq!(s.number_unavailable, Some(2));
    assert_eq!(s.updated_number_scheduled, Some(1));
    assert_eq!(s.observed_generation, Some(4));
    let unobserved = status(&d, &refs(&nodes), &by, HASH, now(), false);
    assert_eq!(unobserved.observed_generation, None);
}

#[test]
fn pods_match_by_hash_or_template_generation() {
    let mut p = pod("a-1", "n1", "other", true, 1);
    assert!(!is_updated(&p, HASH, Some(2)));
    p.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(TEMPLATE_GENERATION_LABEL.into(), "2".into());
    assert!(is_updated(&p, HASH, Some(2)));
    assert!(is_updated(&pod("a-1", "n1", HASH, true, 1), HASH, None));
}
