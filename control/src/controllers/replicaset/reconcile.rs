//! The ReplicaSet controller's decisions as pure functions: how many pods to
//! create or which to delete (`manageReplicas`), the pod built from the
//! template (`getPodsFromTemplate`), and the status (`calculateStatus`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ObjectMeta;

use super::ranking::pods_to_delete;
use crate::controllers::podutil::{controller_ref, is_available, is_ready};

/// At most this many creations or deletions per sync (`BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// What one sync does to the pods.
#[derive(Debug, PartialEq, Eq)]
pub enum Manage {
    Create(usize),
    /// Names of the pods to delete, in order.
    Delete(Vec<String>),
    Nothing,
}

/// `manageReplicas`'s diff: `active` are the ReplicaSet's active pods,
/// `related` all active pods of its owner (for the spread rank).
pub fn manage(replicas: i32, active: &[&Pod], related: &[&Pod]) -> Manage {
    let diff = active.len() as i64 - replicas.max(0) as i64;
    if diff < 0 {
        Manage::Create(((-diff) as usize).min(BURST_REPLICAS))
    } else if diff > 0 {
        let n = (diff as usize).min(BURST_REPLICAS);
        Manage::Delete(
            pods_to_delete(active, related, n)
                .into_iter()
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect(),
        )
    } else {
        Manage::Nothing
    }
}

/// Batches of creations: 1, 2, 4, … (`slowStartBatch`), so a failing
/// create (quota, webhook) fails fast instead of n times.
pub fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut left, mut size) = (n, 1usize);
    while left > 0 {
        let b = size.min(left);
        out.push(b);
        left -= b;
        size *= 2;
    }
    out
}

/// A new pod from the ReplicaSet's template (`GetPodFromTemplate`).
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let tmpl = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tm = tmpl.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                rs.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: rs.metadata.namespace.clone(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..Default::default()
        },
        spec: tmpl.spec,
        status: None,
    }
}

fn labels_superset(
    have: Option<&BTreeMap<String, String>>,
    want: Option<&BTreeMap<String, String>>,
) -> bool {
    want.into_iter()
        .flatten()
        .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
}

/// The status a sync writes; `failure` is the message of a failed
/// create/delete (the ReplicaFailure condition).
pub fn status(
    rs: &ReplicaSet,
    active: &[&Pod],
    now: jiff::Timestamp,
    failure: Option<(&str, String)>,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let tmpl_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = old.conditions.unwrap_or_default();
    match failure {
        Some((reason, message)) => {
            if !conditions.iter().any(|c| c.type_ == "ReplicaFailure") {
                conditions.push(ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(message),
                    last_transition_time: Some(
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
                    ),
                });
            }
        }
        None => conditions.retain(|c| c.type_ != "ReplicaFailure"),
    }
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(
            active
                .iter()
                .filter(|p| labels_superset(p.metadata.labels.as_ref(), tmpl_labels))
                .count() as i32,
        ),
        ready_replicas: Some(active.iter().filter(|p| is_ready(p)).count() as i32),
        available_replicas: Some(
            active
                .iter()
                .filter(|p| is_available(p, min_ready, now))
                .count() as i32,
        ),
        observed_generation: rs.metadata.generation.or(old.observed_generation),
        conditions: (!conditions.is_empty()).then_some(conditions),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn creates_missing_and_deletes_surplus_in_burst_limits() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap();
        assert_eq!(manage(3, &[&p], &[&p]), Manage::Create(2));
        assert_eq!(manage(0, &[&p], &[&p]), Manage::Delete(vec!["a".into()]));
        assert_eq!(manage(1, &[&p], &[&p]), Manage::Nothing);
        assert_eq!(manage(1000, &[], &[]), Manage::Create(500));
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
    }

    #[test]
    fn template_pod_is_controlled_by_the_replicaset() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "d", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        }))
        .unwrap();
        let p = pod_from_template(&rs);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
        let o = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                o.kind.as_str(),
                o.uid.as_str(),
                o.controller,
                o.block_owner_deletion
            ),
            ("ReplicaSet", "u1", Some(true), Some(true))
        );
    }

    #[test]
    fn status_counts_ready_and_available_with_min_ready_seconds() {
        let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "r", "generation": 4},
            "spec": {"minReadySeconds": 30, "selector": {}, "template": {"metadata": {"labels": {"app": "web"}}}}})).unwrap();
        let ready = |since: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "labels": {"app": "web"}},
                "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}]}})).unwrap()
        };
        let (old, new) = (ready("2024-01-01T00:00:00Z"), ready("2024-01-01T00:00:50Z"));
        let now: jiff::Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let s = status(&rs, &[&old, &new], now, None);
        assert_eq!(
            (
                s.replicas,
                s.ready_replicas,
                s.available_replicas,
                s.fully_labeled_replicas,
                s.observed_generation
            ),
            (2, Some(2), Some(1), Some(2), Some(4))
        );
    }
}
