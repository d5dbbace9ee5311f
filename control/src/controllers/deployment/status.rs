//! Deployment status and conditions (`calculateStatus`, `syncRolloutStatus`):
//! the replica counts, `Available` (MinimumReplicasAvailable) and
//! `Progressing` (NewReplicaSetCreated / FoundNewReplicaSet /
//! ReplicaSetUpdated / NewReplicaSetAvailable / ProgressDeadlineExceeded /
//! DeploymentPaused / DeploymentResumed).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::util::{max_unavailable, replicas, rs_actual, rs_available, rs_replicas, rs_status};

pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn get<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.iter().flatten().find(|c| c.type_ == type_)
}

/// `SetDeploymentCondition`: same status and reason → unchanged; same
/// status → keeps lastTransitionTime.
pub fn set(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    let conds = s.conditions.get_or_insert_with(Vec::new);
    if let Some(cur) = conds.iter().find(|x| x.type_ == c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

pub fn remove(s: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = s.conditions.as_mut() {
        c.retain(|x| x.type_ != type_);
    }
}

/// `calculateStatus` over every ReplicaSet of the Deployment.
pub fn calculate(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(|r| rs_available(r)).sum();
    let total_spec: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let mut s = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|r| rs_actual(r)).sum()),
        updated_replicas: Some(new_rs.map(rs_actual).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|r| rs_status(r, |s| s.ready_replicas)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        collision_count: d.status.as_ref().and_then(|s| s.collision_count),
        conditions: d.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    if available >= replicas(d) - max_unavailable(d) {
        set(
            &mut s,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set(
            &mut s,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    // Zero counts are omitted on the wire, as Go's omitempty does.
    for f in [
        &mut s.replicas,
        &mut s.updated_replicas,
        &mut s.ready_replicas,
        &mut s.available_replicas,
        &mut s.unavailable_replicas,
    ] {
        if *f == Some(0) {
            *f = None;
        }
    }
    s
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// `DeploymentComplete`.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    n(s.updated_replicas) == r
        && n(s.replicas) == r
        && n(s.available_replicas) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// `DeploymentProgressing`.
fn progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(s.replicas) - n(s.updated_replicas);
    n(s.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(s.ready_replicas) > n(old.ready_replicas)
        || n(s.available_replicas) > n(old.available_replicas)
}

fn deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

/// `syncRolloutStatus`'s Progressing condition; returns the seconds until
/// the progress deadline should be checked again.
pub fn rollout(
    d: &Deployment,
    s: &mut DeploymentStatus,
    new_rs: Option<&ReplicaSet>,
    now: jiff::Timestamp,
) -> Option<i64> {
    let Some(deadline_s) = deadline(d) else {
        remove(s, "Progressing");
        return None;
    };
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let cur = get(s, "Progressing").cloned();
    if paused
        || cur
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    {
        return None;
    }
    let rs_name = new_rs.and_then(|r| r.metadata.name.clone());
    let dname = d.metadata.name.clone().unwrap_or_default();
    if complete(d, s) {
        let msg = match &rs_name {
            Some(r) => format!("ReplicaSet \"{r}\" has successfully progressed."),
            None => format!("Deployment \"{dname}\" has successfully progressed."),
        };
        set(
            s,
            condition("Progressing", "True", "NewReplicaSetAvailable", msg, now),
        );
        return None;
    }
    if progressing(d, s) {
        let msg = format!(
            "ReplicaSet \"{}\" is progressing.",
            rs_name.clone().unwrap_or_default()
        );
        let mut c = condition("Progressing", "True", "ReplicaSetUpdated", msg, now);
        if let Some(cur) = &cur
            && cur.status == "True"
        {
            c.last_transition_time = cur.last_transition_time.clone();
        }
        remove(s, "Progressing");
        set(s, c);
        return Some(deadline_s as i64);
    }
    let last = get(s, "Progressing")
        .and_then(|c| c.last_update_time.as_ref())
        .map(|t| t.0);
    if let Some(last) = last {
        let elapsed = now.as_second() - last.as_second();
        if elapsed > deadline_s as i64 {
            let msg = match &rs_name {
                Some(r) => format!("ReplicaSet \"{r}\" has timed out progressing."),
                None => format!("Deployment \"{dname}\" has timed out progressing."),
            };
            set(
                s,
                condition("Progressing", "False", "ProgressDeadlineExceeded", msg, now),
            );
            return None;
        }
        return Some(deadline_s as i64 - elapsed + 1);
    }
    Some(deadline_s as i64)
}
