//! The disruption controller's arithmetic (pkg/controller/disruption), as
//! pure functions: the pods a budget expects and needs healthy, the
//! evictions still awaited, the healthy count, and the status with its
//! `DisruptionAllowed` condition.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controllers::podutil::{controller_of, is_ready};

/// How long an eviction's entry in `disruptedPods` waits for the pod to go
/// (`DeletionTimeout`).
pub const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

pub const CONDITION: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

/// `intstr.GetScaledValueFromIntOrPercent` rounding up.
pub fn scaled_value(v: &IntOrString, total: i32) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return Err(format!(
                    "invalid value for IntOrString: invalid value {s:?}"
                ));
            };
            Ok(((p * i64::from(total) + 99) / 100) as i32)
        }
    }
}

/// What the pods' controllers want: `(uid, replicas)` of a controller,
/// `None` when the reference names none that is served.
pub type Finder<'a> = dyn FnMut(&OwnerReference, &str) -> Option<(String, i32)> + 'a;

/// `getExpectedScale`: the sum of the scales of the pods' controllers, and
/// the pods without one.
pub fn expected_scale(
    pods: &[Arc<Pod>],
    find: &mut Finder<'_>,
) -> Result<(i32, Vec<String>), String> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(cref) = controller_of(&pod.metadata) else {
            unmanaged.push(name);
            continue;
        };
        if scales.contains_key(&cref.uid) {
            continue;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        match find(cref, ns) {
            Some((uid, replicas)) => {
                scales.insert(uid, replicas);
            }
            None => return Err(format!("found no controllers for pod {name:?}")),
        }
    }
    Ok((scales.values().sum(), unmanaged))
}

/// What a budget expects of its pods.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expected {
    pub expected_count: i32,
    pub desired_healthy: i32,
    /// Pods without a controller, when the budget needed their scale.
    pub unmanaged: Vec<String>,
}

/// `getExpectedPodCount`: an integer `minAvailable` counts the pods
/// themselves; a percentage or `maxUnavailable` needs the controllers'
/// scale.
pub fn expected_pod_count(
    spec: &PodDisruptionBudgetSpec,
    pods: &[Arc<Pod>],
    find: &mut Finder<'_>,
) -> Result<Expected, String> {
    let mut out = Expected::default();
    if let Some(mu) = &spec.max_unavailable {
        let (count, unmanaged) = expected_scale(pods, find)?;
        let max_unavailable = scaled_value(mu, count)?;
        out.expected_count = count;
        out.desired_healthy = (count - max_unavailable).max(0);
        out.unmanaged = unmanaged;
    } else if let Some(ma) = &spec.min_available {
        match ma {
            IntOrString::Int(i) => {
                out.desired_healthy = *i;
                out.expected_count = pods.len() as i32;
            }
            IntOrString::String(_) => {
                let (count, unmanaged) = expected_scale(pods, find)?;
                out.expected_count = count;
                out.desired_healthy = scaled_value(ma, count)?;
                out.unmanaged = unmanaged;
            }
        }
    }
    Ok(out)
}

/// The evictions still awaited.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Disrupted {
    pub pods: BTreeMap<String, Time>,
    /// When the first awaited eviction times out.
    pub recheck: Option<Timestamp>,
    /// Pods evicted more than [`DELETION_TIMEOUT`] ago that are still there.
    pub not_deleted: Vec<String>,
}

/// `buildDisruptedPodMap`: the entries of pods still there, not being
/// deleted, and evicted less than [`DELETION_TIMEOUT`] ago.
pub fn disrupted_pods(pods: &[Arc<Pod>], pdb: &PodDisruptionBudget, now: Timestamp) -> Disrupted {
    let mut out = Disrupted::default();
    let Some(recorded) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return out;
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = recorded.get(&name) else {
            continue;
        };
        let expected_deletion = at.0 + DELETION_TIMEOUT;
        if expected_deletion < now {
            out.not_deleted.push(name);
        } else {
            if out.recheck.is_none_or(|r| expected_deletion < r) {
                out.recheck = Some(expected_deletion);
            }
            out.pods.insert(name, at.clone());
        }
    }
    out
}

/// `countHealthyPods`: Ready pods neither being deleted nor awaited
/// evictions.
pub fn count_healthy(pods: &[Arc<Pod>], disrupted: &BTreeMap<String, Time>, now: Timestamp) -> i32 {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or("");
            disrupted
                .get(name)
                .is_none_or(|t| t.0 + DELETION_TIMEOUT <= now)
        })
        .filter(|p| is_ready(p))
        .count() as i32
}

/// `apimeta.SetStatusCondition`: the transition time moves only when the
/// status changes.
fn set_condition(conds: &mut Vec<Condition>, new: Condition) {
    match conds.iter_mut().find(|c| c.type_ == new.type_) {
        Some(c) => {
            if c.status != new.status {
                c.status = new.status;
                c.last_transition_time = new.last_transition_time;
            }
            c.reason = new.reason;
            c.message = new.message;
            c.observed_generation = new.observed_generation;
        }
        None => conds.push(new),
    }
}

fn condition(
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

/// `UpdateDisruptionAllowedCondition`.
pub fn update_allowed_condition(status: &mut PodDisruptionBudgetStatus, now: Timestamp) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let c = if status.disruptions_allowed > 0 {
        condition(
            "True",
            SUFFICIENT_PODS,
            String::new(),
            status.observed_generation,
            now,
        )
    } else {
        condition(
            "False",
            INSUFFICIENT_PODS,
            String::new(),
            status.observed_generation,
            now,
        )
    };
    set_condition(conds, c);
}

/// `ConditionsAreUpToDate`.
fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = &pdb.status else {
        return false;
    };
    let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == CONDITION)
    else {
        return false;
    };
    if status.observed_generation != pdb.metadata.generation {
        return false;
    }
    if status.disruptions_allowed > 0 {
        c.status == "True" && c.reason == SUFFICIENT_PODS
    } else {
        c.status == "False" && c.reason == INSUFFICIENT_PODS
    }
}

/// `updatePdbStatus`: the new status, or `None` when the stored one is it.
/// No disruption is allowed while the budget expects no pods.
pub fn next_status(
    pdb: &PodDisruptionBudget,
    current_healthy: i32,
    expected: &Expected,
    disrupted: BTreeMap<String, Time>,
    now: Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    let mut allowed = current_healthy - expected.desired_healthy;
    if expected.expected_count <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let old = pdb.status.clone().unwrap_or_default();
    let same_disrupted = old.disrupted_pods.clone().unwrap_or_default() == disrupted;
    if old.current_healthy == current_healthy
        && old.desired_healthy == expected.desired_healthy
        && old.expected_pods == expected.expected_count
        && old.disruptions_allowed == allowed
        && same_disrupted
        && old.observed_generation == pdb.metadata.generation
        && conditions_up_to_date(pdb)
    {
        return None;
    }
    let mut status = PodDisruptionBudgetStatus {
        current_healthy,
        desired_healthy: expected.desired_healthy,
        expected_pods: expected.expected_count,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: pdb.metadata.generation,
        conditions: old.conditions,
    };
    update_allowed_condition(&mut status, now);
    Some(status)
}

/// How long a pod's `DisruptionTarget` condition waits for the pod to go
/// before it is reset (`stalePodDisruptionTimeout`).
pub const STALE_DISRUPTION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// `nonTerminatingPodHasStaleDisruptionCondition`: for a pod marked
/// `DisruptionTarget` (not by its kubelet) that is neither deleting nor
/// finished, how long until the mark is stale (zero once it is).
pub fn stale_disruption_in(pod: &Pod, now: Timestamp) -> Option<SignedDuration> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let c = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget")?;
    if c.status != "True" || c.reason.as_deref() == Some("TerminationByKubelet") {
        return None;
    }
    let since = c
        .last_transition_time
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    let left = STALE_DISRUPTION_TIMEOUT - now.duration_since(since);
    Some(left.max(SignedDuration::ZERO))
}

/// `failSafe`: a budget that could not be computed allows no disruption.
pub fn fail_safe(
    pdb: &PodDisruptionBudget,
    message: &str,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let observed = status.observed_generation;
    let conds = status.conditions.get_or_insert_with(Vec::new);
    set_condition(
        conds,
        condition("False", SYNC_FAILED, message.to_string(), observed, now),
    );
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(name: &str, ready: bool, owner: Option<(&str, &str)>) -> Arc<Pod> {
        let refs = owner.map(|(kind, uid)| {
            json!([{"apiVersion": "apps/v1", "kind": kind, "name": "rs", "uid": uid, "controller": true}])
        });
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "ownerReferences": refs},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .unwrap(),
        )
    }

    fn spec(v: Value) -> PodDisruptionBudgetSpec {
        serde_json::from_value(v).unwrap()
    }

    fn scale(n: i32) -> impl FnMut(&OwnerReference, &str) -> Option<(String, i32)> {
        move |r, _| Some((r.uid.clone(), n))
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled_value(&IntOrString::String("50%".into()), 3), Ok(2));
        assert_eq!(scaled_value(&IntOrString::String("25%".into()), 10), Ok(3));
        assert_eq!(scaled_value(&IntOrString::String("100%".into()), 7), Ok(7));
        assert_eq!(scaled_value(&IntOrString::String("0%".into()), 7), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(4), 7), Ok(4));
        assert!(scaled_value(&IntOrString::String("half".into()), 7).is_err());
    }

    #[test]
    fn min_available_integer_counts_the_pods() {
        let pods = vec![pod("a", true, None), pod("b", true, None)];
        let e =
            expected_pod_count(&spec(json!({"minAvailable": 2})), &pods, &mut scale(5)).unwrap();
        assert_eq!(
            e,
            Expected {
                expected_count: 2,
                desired_healthy: 2,
                unmanaged: vec![]
            }
        );
    }

    #[test]
    fn percentages_and_max_unavailable_use_the_controllers_scale() {
        let pods = vec![
            pod("a", true, Some(("ReplicaSet", "u1"))),
            pod("b", true, Some(("ReplicaSet", "u1"))),
            pod("c", true, None),
        ];
        let e = expected_pod_count(&spec(json!({"minAvailable": "50%"})), &pods, &mut scale(5))
            .unwrap();
        assert_eq!((e.expected_count, e.desired_healthy), (5, 3));
        assert_eq!(e.unmanaged, vec!["c".to_string()]);
        let e =
            expected_pod_count(&spec(json!({"maxUnavailable": 1})), &pods, &mut scale(5)).unwrap();
        assert_eq!((e.expected_count, e.desired_healthy), (5, 4));
        let e = expected_pod_count(
            &spec(json!({"maxUnavailable": "30%"})),
            &pods,
            &mut scale(5),
        )
        .unwrap();
        assert_eq!(
            (e.expected_count, e.desired_healthy),
            (5, 3),
            "30% of 5 rounds up to 2"
        );
        let e =
            expected_pod_count(&spec(json!({"maxUnavailable": 9})), &pods, &mut scale(5)).unwrap();
        assert_eq!(e.desired_healthy, 0);
        let err = expected_pod_count(
            &spec(json!({"maxUnavailable": 1})),
            &pods,
            &mut |_: &OwnerReference, _: &str| None,
        )
        .unwrap_err();
        assert_eq!(err, "found no controllers for pod \"a\"");
        let e = expected_pod_count(&spec(json!({})), &pods, &mut scale(5)).unwrap();
        assert_eq!(e, Expected::default());
    }

    fn budget(status: Value) -> PodDisruptionBudget {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default", "generation": 2},
            "spec": {"minAvailable": 2}, "status": status}),
        )
        .unwrap()
    }

    #[test]
    fn evictions_are_awaited_for_two_minutes() {
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let pods = vec![
            pod("a", true, None),
            pod("b", true, None),
            pod("c", true, None),
        ];
        let pdb = budget(json!({"disruptedPods": {
            "a": "2024-01-01T00:09:30Z", "b": "2024-01-01T00:07:00Z", "gone": "2024-01-01T00:09:59Z"}}));
        let d = disrupted_pods(&pods, &pdb, now);
        assert_eq!(d.pods.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(d.not_deleted, vec!["b".to_string()]);
        assert_eq!(d.recheck, Some("2024-01-01T00:11:30Z".parse().unwrap()));
        assert_eq!(count_healthy(&pods, &d.pods, now), 2, "a is about to go");
        let unready = vec![pod("a", false, None), pod("b", true, None)];
        assert_eq!(count_healthy(&unready, &BTreeMap::new(), now), 1);
    }

    #[test]
    fn disruption_marks_go_stale_after_two_minutes() {
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let marked = |reason: &str, since: &str, phase: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "a"}, "status": {"phase": phase, "conditions": [
                {"type": "DisruptionTarget", "status": "True", "reason": reason, "lastTransitionTime": since}]}}))
            .unwrap()
        };
        assert_eq!(
            stale_disruption_in(
                &marked("EvictionByEvictionAPI", "2024-01-01T00:09:00Z", "Running"),
                now
            ),
            Some(SignedDuration::from_secs(60))
        );
        assert_eq!(
            stale_disruption_in(
                &marked("EvictionByEvictionAPI", "2024-01-01T00:05:00Z", "Running"),
                now
            ),
            Some(SignedDuration::ZERO)
        );
        assert_eq!(
            stale_disruption_in(
                &marked("TerminationByKubelet", "2024-01-01T00:05:00Z", "Running"),
                now
            ),
            None
        );
        assert_eq!(
            stale_disruption_in(
                &marked("EvictionByEvictionAPI", "2024-01-01T00:05:00Z", "Failed"),
                now
            ),
            None
        );
        assert_eq!(stale_disruption_in(&pod("b", true, None), now), None);
    }

    #[test]
    fn status_and_condition() {
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let pdb = budget(
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}),
        );
        let e = Expected {
            expected_count: 3,
            desired_healthy: 2,
            unmanaged: vec![],
        };
        let s = next_status(&pdb, 3, &e, BTreeMap::new(), now).unwrap();
        assert_eq!(
            (
                s.current_healthy,
                s.desired_healthy,
                s.expected_pods,
                s.disruptions_allowed
            ),
            (3, 2, 3, 1)
        );
        assert_eq!(s.observed_generation, Some(2));
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("DisruptionAllowed", "True", "SufficientPods")
        );
        assert_eq!(c.observed_generation, Some(2));
        // Written once: the same numbers later change nothing.
        let mut synced = pdb.clone();
        synced.status = Some(s.clone());
        assert_eq!(next_status(&synced, 3, &e, BTreeMap::new(), now), None);
        // Fewer healthy pods than needed allow nothing; the condition flips.
        let later: Timestamp = "2024-01-01T00:11:00Z".parse().unwrap();
        let s2 = next_status(&synced, 1, &e, BTreeMap::new(), later).unwrap();
        assert_eq!(s2.disruptions_allowed, 0);
        let c = &s2.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (
                c.status.as_str(),
                c.reason.as_str(),
                c.last_transition_time.0
            ),
            ("False", "InsufficientPods", later)
        );
        // No expected pods: nothing allowed.
        let none = Expected {
            expected_count: 0,
            desired_healthy: 0,
            unmanaged: vec![],
        };
        assert_eq!(
            next_status(&pdb, 2, &none, BTreeMap::new(), now)
                .unwrap()
                .disruptions_allowed,
            0
        );
        // A failed sync allows nothing and says why.
        let f = fail_safe(&synced, "found no controllers for pod \"a\"", later);
        assert_eq!(f.disruptions_allowed, 0);
        let c = &f.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("False", "SyncFailed", "found no controllers for pod \"a\"")
        );
    }
}
