//! The Job controller's decisions as pure functions of the Job, its pods
//! and the time (`syncJob` / `manageJob` of pkg/controller/job): which
//! pods to create (with their completion index) or delete, the status with
//! its conditions (`Suspended`, `FailureTarget` then `Failed`,
//! `SuccessCriteriaMet` then `Complete`, the terminal ones only once no pod
//! runs or terminates), the events, and when to look again (active
//! deadline, pod failure backoff).
//!
//! Succeeded and failed pods are counted from the pods that exist, never
//! lower than the counts already in the status; pods carry no tracking
//! finalizer, so `status.uncountedTerminatedPods` stays empty.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::indexes;
use crate::controllers::podutil::{controller_ref, is_active, is_ready, is_terminal, phase};
use crate::controllers::replicaset::ranking::pods_to_delete;
use crate::validation::batch::COMPLETION_INDEX;

/// At most this many creations or deletions per sync
/// (`MaxPodCreateDeletePerSync`).
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;
/// The first delay before a failed pod is replaced, doubled per further
/// consecutive failure up to [`BACKOFF_MAX`] (`DefaultJobPodFailureBackOff`).
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);
/// The environment variable holding an Indexed Job pod's index.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

pub const BACKOFF_LIMIT_MESSAGE: &str = "Job has reached the specified backoff limit";
pub const DEADLINE_MESSAGE: &str = "Job was active longer than specified deadline";
pub const COMPLETIONS_MESSAGE: &str = "Reached expected number of succeeded pods";

/// An event the sync records on the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

fn normal(reason: &str, message: &str) -> Event {
    Event {
        warning: false,
        reason: reason.into(),
        message: message.into(),
    }
}

/// What one sync does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// One entry per pod to create: its completion index for an Indexed Job.
    pub create: Vec<Option<i32>>,
    /// Names of the pods to delete.
    pub delete: Vec<String>,
    /// The status to write (its `active` counts the planned creations and
    /// deletions as done).
    pub status: JobStatus,
    pub events: Vec<Event>,
    /// Sync again after this long even without a change.
    pub requeue: Option<Duration>,
}

fn condition<'a>(status: &'a JobStatus, ty: &str) -> Option<&'a JobCondition> {
    status.conditions.iter().flatten().find(|c| c.type_ == ty)
}

fn condition_true(status: &JobStatus, ty: &str) -> bool {
    condition(status, ty).is_some_and(|c| c.status == "True")
}

/// Finished: `Complete` or `Failed` is True (`IsJobFinished`).
pub fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .is_some_and(|s| condition_true(s, "Complete") || condition_true(s, "Failed"))
}

/// The finished condition's type, if any (`FinishedCondition`).
pub fn finished_as(job: &Job) -> Option<&'static str> {
    let s = job.status.as_ref()?;
    if condition_true(s, "Complete") {
        Some("Complete")
    } else if condition_true(s, "Failed") {
        Some("Failed")
    } else {
        None
    }
}

fn new_condition(
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> JobCondition {
    JobCondition {
        type_: ty.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// `ensureJobConditionStatus`: sets the condition when it differs; a False
/// condition is never added where none was. Returns whether it changed.
fn ensure(
    status: &mut JobStatus,
    ty: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let list = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = list.iter_mut().find(|c| c.type_ == ty) {
        if c.status != value
            || c.reason.as_deref() != Some(reason)
            || c.message.as_deref() != Some(message)
        {
            *c = new_condition(ty, value, reason, message, now);
            return true;
        }
        return false;
    }
    if value != "False" {
        list.push(new_condition(ty, value, reason, message, now));
        return true;
    }
    false
}

/// When the pod's containers finished, the latest of them.
fn finished_at(p: &Pod) -> Option<Timestamp> {
    let s = p.status.as_ref()?;
    s.container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
}

/// Time left before a failed pod may be replaced: `BACKOFF_BASE` doubled
/// per consecutive failure since the last success, from the last failure.
pub fn backoff_remaining(pods: &[&Pod], now: Timestamp) -> Option<Duration> {
    let last_success = pods
        .iter()
        .filter(|p| phase(p) == "Succeeded")
        .filter_map(|p| finished_at(p))
        .max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| phase(p) == "Failed")
        .filter_map(|p| finished_at(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = *failures.iter().max()?;
    let shift = (failures.len() - 1).min(16) as u32;
    let delay = BACKOFF_BASE.saturating_mul(1 << shift).min(BACKOFF_MAX);
    let elapsed = Duration::try_from(now.duration_since(last)).unwrap_or(Duration::ZERO);
    delay.checked_sub(elapsed).filter(|d| !d.is_zero())
}

/// Container restarts of the running and pending pods
/// (`pastBackoffLimitOnFailure`'s count).
fn restarts(active: &[&Pod]) -> i64 {
    active
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .map(|c| i64::from(c.restart_count))
        .sum()
}

/// Seconds left before `activeDeadlineSeconds` passes; `Some(0)` once it has.
fn deadline_left(job: &Job, start: Option<&Time>, now: Timestamp) -> Option<i64> {
    let ads = job.spec.as_ref()?.active_deadline_seconds?;
    let start = start?.0;
    let elapsed_ms = now.as_millisecond() - start.as_millisecond();
    Some((ads * 1000 - elapsed_ms).max(0))
}

/// The pods of an Indexed Job to keep (one per pending index) and delete
/// (duplicates, indexes out of range or already succeeded).
fn sort_indexed<'a>(
    active: &[&'a Pod],
    succeeded: &BTreeSet<i32>,
    completions: i32,
) -> (Vec<&'a Pod>, Vec<&'a Pod>, BTreeSet<i32>) {
    let mut sorted = active.to_vec();
    sorted.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.clone().map(|t| t.0),
            p.metadata.name.clone(),
        )
    });
    let (mut keep, mut drop, mut held) = (Vec::new(), Vec::new(), BTreeSet::new());
    for p in sorted {
        match indexes::of_pod(p) {
            Some(i) if i < completions && !succeeded.contains(&i) && held.insert(i) => keep.push(p),
            _ => drop.push(p),
        }
    }
    (keep, drop, held)
}

fn names(pods: &[&Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

/// The sync's decisions for `job` with its (claimed) `pods` at `now`.
pub fn plan(job: &Job, pods: &[&Pod], now: Timestamp) -> Plan {
    let old = job.status.clone().unwrap_or_default();
    if is_finished(job) {
        return Plan {
            status: old,
            ..Plan::default()
        };
    }
    let spec = job.spec.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let suspended = spec.suspend == Some(true);
    let active: Vec<&Pod> = pods.iter().copied().filter(|p| is_active(p)).collect();
    let terminating = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && !is_terminal(p))
        .count();
    let succeeded_pods: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| phase(p) == "Succeeded")
        .collect();
    let failed_pods = pods.iter().filter(|p| phase(p) == "Failed").count() as i32;

    let mut status = old.clone();
    let mut events = Vec::new();
    let mut succeeded_indexes = BTreeSet::new();
    let succeeded = if indexed {
        let c = completions.unwrap_or(0);
        succeeded_indexes = indexes::parse(old.completed_indexes.as_deref().unwrap_or(""), c);
        succeeded_indexes.extend(
            succeeded_pods
                .iter()
                .filter_map(|p| indexes::of_pod(p))
                .filter(|i| *i < c),
        );
        succeeded_indexes.len() as i32
    } else {
        old.succeeded.unwrap_or(0).max(succeeded_pods.len() as i32)
    };
    let failed = old.failed.unwrap_or(0).max(failed_pods);

    let mut target = ["FailureTarget", "SuccessCriteriaMet"]
        .iter()
        .find_map(|t| condition(&old, t).filter(|c| c.status == "True").cloned());

    if suspended && target.is_none() {
        if ensure(
            &mut status,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            events.push(normal("Suspended", "Job suspended"));
        }
    } else if !suspended
        && ensure(
            &mut status,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now,
        )
    {
        events.push(normal("Resumed", "Job resumed"));
        // The active deadline counts from the resumption.
        status.start_time = Some(Time(now));
    }
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }

    let deadline = deadline_left(job, status.start_time.as_ref(), now).filter(|_| !suspended);
    if target.is_none() {
        let on_failure = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("OnFailure");
        let r = restarts(&active);
        let past_on_failure = on_failure
            && if backoff_limit == 0 {
                r > 0
            } else {
                r >= i64::from(backoff_limit)
            };
        let reason = if failed > backoff_limit || past_on_failure {
            Some(("BackoffLimitExceeded", BACKOFF_LIMIT_MESSAGE))
        } else if deadline == Some(0) {
            Some(("DeadlineExceeded", DEADLINE_MESSAGE))
        } else {
            None
        };
        if let Some((reason, message)) = reason {
            ensure(&mut status, "FailureTarget", "True", reason, message, now);
            target = Some(new_condition("FailureTarget", "True", reason, message, now));
        }
    }

    let mut create = Vec::new();
    let mut delete = Vec::new();
    let mut requeue = None;
    if target.is_some() || suspended {
        delete = names(&active);
    } else if indexed {
        let c = completions.unwrap_or(0);
        let (keep, drop, held) = sort_indexed(&active, &succeeded_indexes, c);
        delete = names(&drop);
        let want = parallelism.min(c - succeeded).max(0) as usize;
        if keep.len() > want {
            delete.extend(names(&pods_to_delete(&keep, &keep, keep.len() - want)));
        } else if keep.len() < want {
            match backoff_remaining(pods, now) {
                Some(d) => requeue = Some(d),
                None => {
                    let n = (want - keep.len()).min(MAX_POD_CREATE_DELETE_PER_SYNC);
                    create = indexes::first_pending(&succeeded_indexes, &held, n, c)
                        .into_iter()
                        .map(Some)
                        .collect();
                }
            }
        }
    } else {
        let want = match completions {
            None if succeeded > 0 => active.len() as i32,
            None => parallelism,
            Some(c) => (c - succeeded).min(parallelism).max(0),
        } as usize;
        if active.len() > want {
            let n = (active.len() - want).min(MAX_POD_CREATE_DELETE_PER_SYNC);
            delete = names(&pods_to_delete(&active, &active, n));
        } else if active.len() < want {
            match backoff_remaining(pods, now) {
                Some(d) => requeue = Some(d),
                None => {
                    create = vec![None; (want - active.len()).min(MAX_POD_CREATE_DELETE_PER_SYNC)]
                }
            }
        }
    }
    delete.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
    let active_after = active.len() + create.len() - delete.len();

    if target.is_none() && !suspended {
        let complete = match (indexed, completions) {
            (true, c) => succeeded >= c.unwrap_or(0),
            (false, None) => succeeded > 0 && active_after == 0,
            (false, Some(c)) => succeeded >= c && active_after == 0,
        };
        if complete {
            ensure(
                &mut status,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                COMPLETIONS_MESSAGE,
                now,
            );
            target = Some(new_condition(
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                COMPLETIONS_MESSAGE,
                now,
            ));
        }
    }

    // The terminal condition waits until no pod of the Job runs or
    // terminates.
    if let Some(t) = &target
        && active.is_empty()
        && terminating == 0
    {
        let reason = t.reason.clone().unwrap_or_default();
        let message = t.message.clone().unwrap_or_default();
        if t.type_ == "FailureTarget" {
            ensure(&mut status, "Failed", "True", &reason, &message, now);
            events.push(Event {
                warning: true,
                reason,
                message,
            });
        } else {
            ensure(&mut status, "Complete", "True", &reason, &message, now);
            status.completion_time = Some(Time(now));
            if completions.is_some_and(|c| succeeded > c) {
                events.push(Event {
                    warning: true,
                    reason: "TooManySucceededPods".into(),
                    message: "Too many succeeded pods running after completion count reached"
                        .into(),
                });
            }
            events.push(normal("Completed", "Job completed"));
        }
    } else if target.is_none()
        && let Some(left) = deadline
    {
        let d = Duration::from_millis(left as u64);
        requeue = Some(requeue.map_or(d, |r: Duration| r.min(d)));
    }

    let deleted: BTreeSet<&String> = delete.iter().collect();
    status.active = Some(active_after as i32);
    status.ready = Some(
        active
            .iter()
            .filter(|p| {
                is_ready(p) && !deleted.contains(p.metadata.name.as_ref().unwrap_or(&String::new()))
            })
            .count() as i32,
    );
    status.terminating = Some(terminating as i32);
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    if indexed {
        let done = indexes::format(&succeeded_indexes);
        status.completed_indexes = (!done.is_empty()).then_some(done);
    }
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    Plan {
        create,
        delete,
        status,
        events,
        requeue,
    }
}

/// A new pod of `job` (`getPodFromTemplate`), for an Indexed Job with its
/// index in the annotation and label, the hostname `<job>-<index>` and
/// `JOB_COMPLETION_INDEX` in every container's environment.
pub fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let tmpl = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tm = tmpl.metadata.unwrap_or_default();
    let mut spec = tmpl.spec;
    let mut labels = tm.labels;
    let mut annotations = tm.annotations;
    let generate_name = match index {
        None => format!("{name}-"),
        Some(i) => {
            let v = i.to_string();
            labels
                .get_or_insert_with(Default::default)
                .insert(COMPLETION_INDEX.into(), v.clone());
            annotations
                .get_or_insert_with(Default::default)
                .insert(COMPLETION_INDEX.into(), v);
            if let Some(s) = spec.as_mut() {
                if s.hostname.as_deref().unwrap_or("").is_empty() {
                    s.hostname = Some(format!("{name}-{i}"));
                }
                let env = EnvVar {
                    name: COMPLETION_INDEX_ENV.into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                        }),
                        ..Default::default()
                    }),
                };
                let containers = s
                    .containers
                    .iter_mut()
                    .chain(s.init_containers.iter_mut().flatten());
                for c in containers {
                    let list = c.env.get_or_insert_with(Vec::new);
                    if !list.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                        list.push(env.clone());
                    }
                }
            }
            format!("{name}-{i}-")
        }
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels,
            annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![controller_ref(job)]),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn now() -> Timestamp {
        "2024-01-01T00:10:00Z".parse().unwrap()
    }

    fn job(spec: Value, status: Value) -> Job {
        let mut s = json!({"parallelism": 1, "completions": 1, "backoffLimit": 6,
            "completionMode": "NonIndexed", "suspend": false,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}});
        for (k, v) in spec.as_object().unwrap() {
            s[k] = v.clone();
        }
        serde_json::from_value(
            json!({"metadata": {"name": "pi", "namespace": "d", "uid": "u1"},
            "spec": s, "status": status}),
        )
        .unwrap()
    }

    fn pod(name: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {"phase": phase}}))
            .unwrap()
    }

    fn indexed_pod(name: &str, phase: &str, index: i32) -> Pod {
        let mut p = pod(name, phase);
        p.metadata.annotations = Some([(COMPLETION_INDEX.to_string(), index.to_string())].into());
        p
    }

    fn types(s: &JobStatus) -> Vec<(String, String)> {
        s.conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.reason.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn creates_up_to_parallelism_within_remaining_completions() {
        let j = job(json!({"parallelism": 3, "completions": 5}), json!({}));
        let p = plan(&j, &[], now());
        assert_eq!(p.create.len(), 3);
        assert_eq!(p.status.active, Some(3));
        assert!(p.status.start_time.is_some());
        let (a, b, c, d) = (
            pod("a", "Succeeded"),
            pod("b", "Succeeded"),
            pod("c", "Succeeded"),
            pod("e", "Running"),
        );
        let p = plan(&j, &[&a, &b, &c, &d], now());
        // Two completions remain, one runs: one more.
        assert_eq!((p.create.len(), p.status.succeeded), (1, Some(3)));
    }

    #[test]
    fn work_queue_jobs_stop_creating_after_a_success() {
        let j = job(json!({"parallelism": 2, "completions": null}), json!({}));
        assert_eq!(plan(&j, &[], now()).create.len(), 2);
        let (a, b) = (pod("a", "Succeeded"), pod("b", "Running"));
        let p = plan(&j, &[&a, &b], now());
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert!(types(&p.status).is_empty());
        let p = plan(&j, &[&a], now());
        assert_eq!(
            types(&p.status),
            vec![
                ("SuccessCriteriaMet".into(), "CompletionsReached".into()),
                ("Complete".into(), "CompletionsReached".into())
            ]
        );
    }

    #[test]
    fn completes_with_success_criteria_then_complete() {
        let j = job(json!({}), json!({}));
        let a = pod("a", "Succeeded");
        let p = plan(&j, &[&a], now());
        assert_eq!(
            types(&p.status),
            vec![
                ("SuccessCriteriaMet".into(), "CompletionsReached".into()),
                ("Complete".into(), "CompletionsReached".into())
            ]
        );
        assert!(p.status.completion_time.is_some());
        assert_eq!(p.events, vec![normal("Completed", "Job completed")]);
        // A finished Job is left alone.
        let done = Job {
            status: Some(p.status.clone()),
            ..j
        };
        assert!(is_finished(&done));
        assert_eq!(plan(&done, &[&a], now()).create.len(), 0);
    }

    #[test]
    fn backoff_limit_fails_after_pods_are_gone() {
        let j = job(json!({"backoffLimit": 1}), json!({}));
        let (a, b, c) = (pod("a", "Failed"), pod("b", "Failed"), pod("c", "Running"));
        // Two failures exceed a limit of one: the running pod is deleted,
        // FailureTarget first.
        let p = plan(&j, &[&a, &b, &c], now());
        assert_eq!(p.delete, vec!["c".to_string()]);
        assert_eq!(
            types(&p.status),
            vec![("FailureTarget".into(), "BackoffLimitExceeded".into())]
        );
        assert!(p.events.is_empty());
        let j2 = job(
            json!({"backoffLimit": 1}),
            serde_json::to_value(&p.status).unwrap(),
        );
        let p = plan(&j2, &[&a, &b], now());
        assert_eq!(
            types(&p.status),
            vec![
                ("FailureTarget".into(), "BackoffLimitExceeded".into()),
                ("Failed".into(), "BackoffLimitExceeded".into())
            ]
        );
        assert_eq!(
            p.events,
            vec![Event {
                warning: true,
                reason: "BackoffLimitExceeded".into(),
                message: BACKOFF_LIMIT_MESSAGE.into()
            }]
        );
        assert_eq!((p.status.failed, p.status.active), (Some(2), Some(0)));
        // One failure within the limit: replaced.
        let p = plan(&j, &[&a], now());
        assert_eq!((p.create.len(), p.status.failed), (1, Some(1)));
    }

    #[test]
    fn on_failure_counts_container_restarts() {
        let j = job(
            json!({"backoffLimit": 2, "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "x"}]}}}),
            json!({}),
        );
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "a"},
            "status": {"phase": "Running", "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 2}]}})).unwrap();
        let plan = plan(&j, &[&p], now());
        assert_eq!(plan.delete, vec!["a".to_string()]);
        assert_eq!(
            types(&plan.status),
            vec![("FailureTarget".into(), "BackoffLimitExceeded".into())]
        );
    }

    #[test]
    fn active_deadline() {
        let j = job(
            json!({"activeDeadlineSeconds": 60}),
            json!({"startTime": "2024-01-01T00:09:30Z"}),
        );
        let a = pod("a", "Running");
        let p = plan(&j, &[&a], now());
        assert_eq!(p.requeue, Some(Duration::from_secs(30)));
        let j = job(
            json!({"activeDeadlineSeconds": 60}),
            json!({"startTime": "2024-01-01T00:00:00Z"}),
        );
        let p = plan(&j, &[&a], now());
        assert_eq!(p.delete, vec!["a".to_string()]);
        assert_eq!(
            types(&p.status),
            vec![("FailureTarget".into(), "DeadlineExceeded".into())]
        );
    }

    #[test]
    fn suspend_deletes_active_pods_and_resume_resets_start_time() {
        let j = job(
            json!({"suspend": true}),
            json!({"startTime": "2024-01-01T00:00:00Z"}),
        );
        let a = pod("a", "Running");
        let p = plan(&j, &[&a], now());
        assert_eq!(p.delete, vec!["a".to_string()]);
        assert_eq!(
            types(&p.status),
            vec![("Suspended".into(), "JobSuspended".into())]
        );
        assert_eq!(p.events, vec![normal("Suspended", "Job suspended")]);
        let resumed = job(json!({}), serde_json::to_value(&p.status).unwrap());
        let p = plan(&resumed, &[], now());
        assert_eq!(
            types(&p.status),
            vec![("Suspended".into(), "JobResumed".into())]
        );
        assert_eq!(p.status.start_time, Some(Time(now())));
        assert_eq!(p.create.len(), 1);
    }

    #[test]
    fn indexed_jobs_fill_missing_indexes() {
        let j = job(
            json!({"completionMode": "Indexed", "completions": 5, "parallelism": 2}),
            json!({"completedIndexes": "0"}),
        );
        let (a, b, dup) = (
            indexed_pod("a", "Succeeded", 1),
            indexed_pod("b", "Running", 3),
            indexed_pod("c", "Running", 3),
        );
        let p = plan(&j, &[&a, &b, &dup], now());
        assert_eq!(p.delete, vec!["c".to_string()]);
        assert_eq!(p.create, vec![Some(2)]);
        assert_eq!(p.status.completed_indexes.as_deref(), Some("0-1"));
        assert_eq!(p.status.succeeded, Some(2));
        let pod = pod_for(&j, Some(2));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-2-"));
        assert_eq!(
            pod.metadata.annotations.unwrap()[COMPLETION_INDEX],
            "2".to_string()
        );
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
        assert_eq!(
            spec.containers[0].env.as_ref().unwrap()[0].name,
            COMPLETION_INDEX_ENV
        );
        let o = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (o.kind.as_str(), o.controller, o.block_owner_deletion),
            ("Job", Some(true), Some(true))
        );
    }

    #[test]
    fn failed_pods_are_replaced_after_a_backoff() {
        let failed = |name: &str, at: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": name}, "status": {"phase": "Failed",
                "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 1, "finishedAt": at}}}]}}))
            .unwrap()
        };
        let (a, b) = (
            failed("a", "2024-01-01T00:09:55Z"),
            failed("b", "2024-01-01T00:09:50Z"),
        );
        // Two consecutive failures: 20 s from the last one.
        assert_eq!(
            backoff_remaining(&[&a, &b], now()),
            Some(Duration::from_secs(15))
        );
        let j = job(json!({}), json!({}));
        let p = plan(&j, &[&a, &b], now());
        assert!(p.create.is_empty());
        assert_eq!(p.requeue, Some(Duration::from_secs(15)));
    }
}
