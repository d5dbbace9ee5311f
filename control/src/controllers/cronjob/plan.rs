//! The CronJob controller's decisions as pure functions
//! (pkg/controller/cronjob/utils.go): the most recent unmet schedule time
//! and how many were missed (`mostRecentScheduleTime`), when to look again
//! (`nextScheduleTimeDuration`), the Job of a scheduled time
//! (`getJobFromTemplate2`, named `<cronjob>-<minutes since the epoch>`),
//! and which finished Jobs the history limits remove (`removeOldestJobs`).

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controllers::job::reconcile::finished_as;
use crate::controllers::podutil::controller_ref;
use crate::validation::batch::CRONJOB_SCHEDULED_TIMESTAMP;
use crate::validation::cron::{self, Schedule};

/// Padding added to a requeue for clock skew (`nextScheduleDelta`).
pub const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// How many schedule times passed unmet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    /// More than 100: the `TooManyMissedTimes` warning.
    Many,
}

/// What `mostRecentScheduleTime` finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    /// The last schedule time, or the creation time.
    pub earliest: Timestamp,
    /// The latest schedule time at or before now after `earliest`.
    pub most_recent: Option<Timestamp>,
    pub missed: Missed,
}

/// The CronJob's schedule and the zone it runs in: `spec.timeZone`, a
/// `TZ=` prefix of the schedule, or the controller's local zone.
pub fn schedule_of(cj: &CronJob) -> Result<(Schedule, TimeZone), String> {
    let spec = cj.spec.clone().unwrap_or_default();
    let (schedule, prefix) = cron::parse(&spec.schedule)?;
    let zone = match spec.time_zone.or(prefix) {
        Some(tz) => cron::load_zone(&tz)?,
        None => TimeZone::system(),
    };
    Ok((schedule, zone))
}

fn seconds(s: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(s)
}

/// `mostRecentScheduleTime`.
pub fn most_recent_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    tz: &TimeZone,
    include_deadline: bool,
) -> Result<Recent, String> {
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(created);
    if include_deadline && let Some(d) = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds)
    {
        let deadline = now - seconds(d);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    let none = |missed| Recent {
        earliest,
        most_recent: None,
        missed,
    };
    let Some(t1) = sched.next(earliest, tz) else {
        return Ok(none(Missed::None));
    };
    if now < t1 {
        return Ok(none(Missed::None));
    }
    let Some(t2) = sched.next(t1, tz) else {
        return Ok(Recent {
            earliest,
            most_recent: Some(t1),
            missed: Missed::None,
        });
    };
    if now < t2 {
        return Ok(Recent {
            earliest,
            most_recent: Some(t1),
            missed: Missed::None,
        });
    }
    let between = (t2.as_millisecond() - t1.as_millisecond() + 500) / 1000;
    if between < 1 {
        return Err("time difference between two schedules is less than 1 second".into());
    }
    let elapsed = (now.as_millisecond() - t1.as_millisecond()) / 1000;
    let missed_count = elapsed / between + 1;
    let potential = t1 + seconds((missed_count - 2) * between);
    let mut most_recent = None;
    let mut t = sched.next(potential, tz);
    while let Some(x) = t.filter(|x| *x <= now) {
        most_recent = Some(x);
        t = sched.next(x, tz);
    }
    let missed = match missed_count {
        n if n > 100 => Missed::Many,
        n if n > 1 => Missed::Few,
        _ => Missed::None,
    };
    Ok(Recent {
        earliest,
        most_recent,
        missed,
    })
}

/// `nextScheduleTimeDuration`: how long until the next schedule time,
/// padded by [`NEXT_SCHEDULE_DELTA`].
pub fn requeue_after(cj: &CronJob, now: Timestamp, sched: &Schedule, tz: &TimeZone) -> Duration {
    let from = match most_recent_schedule_time(cj, now, sched, tz, false) {
        Err(_) => now,
        Ok(Recent {
            most_recent: Some(t),
            ..
        }) => t,
        Ok(Recent {
            earliest,
            missed: Missed::None,
            ..
        }) => earliest,
        Ok(_) => now,
    };
    match sched.next(from, tz) {
        Some(next) => {
            let ms = next.as_millisecond() - now.as_millisecond();
            Duration::from_millis(ms.max(0) as u64) + NEXT_SCHEDULE_DELTA
        }
        // No time within five years: look again in a day.
        None => Duration::from_secs(24 * 3600),
    }
}

/// An event a decision records on the CronJob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

fn warning(reason: &'static str, message: String) -> Note {
    Note {
        warning: true,
        reason,
        message,
    }
}

/// What a sync does about the schedule (`syncCronJob` after the Jobs are
/// folded into the status).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing until the CronJob changes: it is suspended, or its zone or
    /// schedule cannot be used (said in the note).
    Idle(Option<Note>),
    /// Nothing until `after`: no unmet time, the time was processed, it is
    /// too late to start, or Forbid with a Job running (said in the note).
    Wait { after: Duration, note: Option<Note> },
    /// Start the Job of `scheduled`, first deleting the active Jobs named
    /// in `replace` (Replace).
    Start {
        scheduled: Timestamp,
        replace: Vec<String>,
        note: Option<Note>,
    },
}

/// The decision for `cj` (its status as the Jobs left it) at `now`.
pub fn decide(cj: &CronJob, now: Timestamp) -> Decision {
    let spec = cj.spec.clone().unwrap_or_default();
    let status = cj.status.clone().unwrap_or_default();
    if let Some(tz) = &spec.time_zone
        && let Err(e) = cron::load_zone(tz)
    {
        return Decision::Idle(Some(warning(
            "UnknownTimeZone",
            format!("invalid timeZone: {tz:?}: {e}"),
        )));
    }
    if spec.suspend == Some(true) {
        return Decision::Idle(None);
    }
    let (sched, tz) = match schedule_of(cj) {
        Ok(s) => s,
        Err(e) => {
            return Decision::Idle(Some(warning(
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            )));
        }
    };
    let recent = match most_recent_schedule_time(cj, now, &sched, &tz, true) {
        Ok(r) => r,
        Err(e) => {
            return Decision::Idle(Some(warning(
                "InvalidSchedule",
                format!("invalid schedule: {} : {e}", spec.schedule),
            )));
        }
    };
    let wait = |note| Decision::Wait {
        after: requeue_after(cj, now, &sched, &tz),
        note,
    };
    let Some(scheduled) = recent.most_recent else {
        return wait(None);
    };
    let too_many = (recent.missed == Missed::Many).then(|| {
        warning(
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        )
    });
    if let Some(d) = spec.starting_deadline_seconds
        && scheduled + seconds(d) < now
    {
        let when = scheduled
            .to_zoned(TimeZone::UTC)
            .strftime("%a, %d %b %Y %H:%M:%S %z")
            .to_string();
        return wait(Some(warning(
            "MissSchedule",
            format!("Missed scheduled time to start a job: {when}"),
        )));
    }
    let name = job_name(cj.metadata.name.as_deref().unwrap_or_default(), scheduled);
    let active = status.active.unwrap_or_default();
    let processed = active
        .iter()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || status.last_schedule_time.as_ref().map(|t| t.0) == Some(scheduled);
    if processed {
        return wait(None);
    }
    let replace = match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            return wait(Some(Note {
                warning: false,
                reason: "JobAlreadyActive",
                message: "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            }));
        }
        Some("Replace") => active.iter().filter_map(|r| r.name.clone()).collect(),
        _ => Vec::new(),
    };
    Decision::Start {
        scheduled,
        replace,
        note: too_many,
    }
}

/// `getJobName`: the CronJob's name and the scheduled time in minutes
/// since the epoch, the same for every attempt at one time.
pub fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

/// `getJobFromTemplate2`: the Job of the scheduled time, with the
/// template's labels and annotations, the scheduled time (RFC 3339 in the
/// CronJob's zone, UTC without one) and the CronJob as its controller.
pub fn job_for(cj: &CronJob, scheduled: Timestamp) -> Job {
    let spec = cj.spec.clone().unwrap_or_default();
    let tmpl = spec.job_template;
    let meta = tmpl.metadata.unwrap_or_default();
    let zone = spec
        .time_zone
        .as_deref()
        .and_then(|z| cron::load_zone(z).ok())
        .unwrap_or(TimeZone::UTC);
    let stamp = scheduled
        .to_zoned(zone)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
        .replace("+00:00", "Z");
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(CRONJOB_SCHEDULED_TIMESTAMP.into(), stamp);
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(
                cj.metadata.name.as_deref().unwrap_or_default(),
                scheduled,
            )),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..Default::default()
        },
        spec: tmpl.spec,
        status: None,
    }
}

/// `removeOldestJobs` for both limits: the names of the oldest finished
/// Jobs (by start time, unstarted last, then name) beyond
/// `successfulJobsHistoryLimit` and `failedJobsHistoryLimit`.
pub fn jobs_to_trim(cj: &CronJob, jobs: &[&Job]) -> Vec<String> {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else {
            continue;
        };
        let mut finished: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|j| finished_as(j) == Some(kind))
            .collect();
        let excess = finished.len().saturating_sub(limit.max(0) as usize);
        if excess == 0 {
            continue;
        }
        finished.sort_by_key(|j| {
            let start = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0);
            (start.is_none(), start, j.metadata.name.clone())
        });
        out.extend(
            finished[..excess]
                .iter()
                .map(|j| j.metadata.name.clone().unwrap_or_default()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cron_job(schedule: &str, status: Value) -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "hello", "namespace": "d", "uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"schedule": schedule, "timeZone": "UTC", "successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1,
                "jobTemplate": {"metadata": {"labels": {"app": "hello"}}, "spec": {"template": {"spec": {"containers": []}}}}},
            "status": status,
        }))
        .unwrap()
    }

    fn recent(cj: &CronJob, now: &str) -> Recent {
        let (s, tz) = schedule_of(cj).unwrap();
        most_recent_schedule_time(cj, ts(now), &s, &tz, true).unwrap()
    }

    #[test]
    fn most_recent_unmet_time_and_missed_counts() {
        let cj = cron_job("*/5 * * * *", json!({}));
        let r = recent(&cj, "2024-01-01T00:04:00Z");
        assert_eq!((r.most_recent, r.missed), (None, Missed::None));
        let r = recent(&cj, "2024-01-01T00:06:00Z");
        assert_eq!(r.most_recent, Some(ts("2024-01-01T00:05:00Z")));
        assert_eq!(r.missed, Missed::None);
        let r = recent(&cj, "2024-01-01T00:21:00Z");
        assert_eq!(
            (r.most_recent, r.missed),
            (Some(ts("2024-01-01T00:20:00Z")), Missed::Few)
        );
        let r = recent(&cj, "2024-01-03T00:00:30Z");
        assert_eq!(
            (r.most_recent, r.missed),
            (Some(ts("2024-01-03T00:00:00Z")), Missed::Many)
        );
        // The last schedule time is the floor.
        let done = cron_job(
            "*/5 * * * *",
            json!({"lastScheduleTime": "2024-01-01T00:20:00Z"}),
        );
        assert_eq!(recent(&done, "2024-01-01T00:21:00Z").most_recent, None);
    }

    #[test]
    fn starting_deadline_bounds_how_far_back_to_look() {
        let mut cj = cron_job("0 * * * *", json!({}));
        cj.spec.as_mut().unwrap().starting_deadline_seconds = Some(60);
        // 01:00 was missed by more than the deadline.
        assert_eq!(recent(&cj, "2024-01-01T01:05:00Z").most_recent, None);
        assert_eq!(
            recent(&cj, "2024-01-01T01:00:30Z").most_recent,
            Some(ts("2024-01-01T01:00:00Z"))
        );
    }

    #[test]
    fn requeue_waits_for_the_next_time() {
        let cj = cron_job(
            "* * * * *",
            json!({"lastScheduleTime": "2024-01-01T00:10:00Z"}),
        );
        let (s, tz) = schedule_of(&cj).unwrap();
        assert_eq!(
            requeue_after(&cj, ts("2024-01-01T00:10:20Z"), &s, &tz),
            Duration::from_secs(40) + NEXT_SCHEDULE_DELTA
        );
    }

    #[test]
    fn job_named_by_minutes_with_the_scheduled_timestamp() {
        let cj = cron_job("* * * * *", json!({}));
        let t = ts("2024-01-01T00:10:00Z");
        assert_eq!(job_name("hello", t), "hello-28401130");
        let job = job_for(&cj, t);
        assert_eq!(job.metadata.name.as_deref(), Some("hello-28401130"));
        assert_eq!(
            job.metadata.annotations.as_ref().unwrap()[CRONJOB_SCHEDULED_TIMESTAMP],
            "2024-01-01T00:10:00Z"
        );
        assert_eq!(job.metadata.labels.as_ref().unwrap()["app"], "hello");
        let o = &job.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (o.kind.as_str(), o.controller, o.block_owner_deletion),
            ("CronJob", Some(true), Some(true))
        );
    }

    #[test]
    fn decisions_follow_suspend_deadline_and_concurrency_policy() {
        let now = ts("2024-01-01T00:10:30Z");
        let mut cj = cron_job(
            "* * * * *",
            json!({"lastScheduleTime": "2024-01-01T00:09:00Z"}),
        );
        assert_eq!(
            decide(&cj, now),
            Decision::Start {
                scheduled: ts("2024-01-01T00:10:00Z"),
                replace: vec![],
                note: None
            }
        );
        // The time was already processed: wait for the next one.
        let done = cron_job(
            "* * * * *",
            json!({"lastScheduleTime": "2024-01-01T00:10:00Z"}),
        );
        assert_eq!(
            decide(&done, now),
            Decision::Wait {
                after: Duration::from_secs(30) + NEXT_SCHEDULE_DELTA,
                note: None
            }
        );
        // Forbid with a running Job waits; Replace deletes it first.
        cj.status.as_mut().unwrap().active = Some(vec![
            serde_json::from_value(json!({"name": "hello-28401129", "uid": "j1"})).unwrap(),
        ]);
        cj.spec.as_mut().unwrap().concurrency_policy = Some("Forbid".into());
        assert!(matches!(
            decide(&cj, now),
            Decision::Wait {
                note: Some(Note {
                    reason: "JobAlreadyActive",
                    ..
                }),
                ..
            }
        ));
        cj.spec.as_mut().unwrap().concurrency_policy = Some("Replace".into());
        assert!(matches!(
            decide(&cj, now),
            Decision::Start { replace, .. } if replace == vec!["hello-28401129".to_string()]
        ));
        // Past the starting deadline: missed.
        cj.spec.as_mut().unwrap().starting_deadline_seconds = Some(10);
        cj.spec.as_mut().unwrap().schedule = "0 * * * *".into();
        cj.status.as_mut().unwrap().last_schedule_time = None;
        assert!(matches!(
            decide(&cj, ts("2024-01-01T01:00:20Z")),
            Decision::Wait { .. }
        ));
        cj.spec.as_mut().unwrap().suspend = Some(true);
        assert_eq!(decide(&cj, now), Decision::Idle(None));
        cj.spec.as_mut().unwrap().suspend = Some(false);
        cj.spec.as_mut().unwrap().schedule = "61 * * * *".into();
        assert!(matches!(
            decide(&cj, now),
            Decision::Idle(Some(Note {
                reason: "UnparseableSchedule",
                ..
            }))
        ));
    }

    #[test]
    fn late_starts_within_the_deadline_and_too_many_missed_times() {
        let mut cj = cron_job(
            "0 * * * *",
            json!({"lastScheduleTime": "2024-01-01T00:00:00Z"}),
        );
        cj.spec.as_mut().unwrap().starting_deadline_seconds = Some(600);
        // 01:00 is 5 minutes late: within the deadline, started.
        assert!(matches!(
            decide(&cj, ts("2024-01-01T01:05:00Z")),
            Decision::Start { .. }
        ));
        // Far behind without a deadline: the latest time, and a warning.
        cj.spec.as_mut().unwrap().starting_deadline_seconds = None;
        cj.spec.as_mut().unwrap().schedule = "* * * * *".into();
        assert!(matches!(
            decide(&cj, ts("2024-01-02T00:00:30Z")),
            Decision::Start { scheduled, note: Some(Note { reason: "TooManyMissedTimes", .. }), .. }
                if scheduled == ts("2024-01-02T00:00:00Z")
        ));
    }

    #[test]
    fn history_limits_remove_the_oldest_finished_jobs() {
        let cj = cron_job("* * * * *", json!({}));
        let job = |name: &str, ty: &str, start: &str| -> Job {
            serde_json::from_value(
                json!({"metadata": {"name": name}, "status": {"startTime": start,
                "conditions": [{"type": ty, "status": "True"}]}}),
            )
            .unwrap()
        };
        let jobs = [
            job("s1", "Complete", "2024-01-01T00:01:00Z"),
            job("s3", "Complete", "2024-01-01T00:03:00Z"),
            job("s2", "Complete", "2024-01-01T00:02:00Z"),
            job("f1", "Failed", "2024-01-01T00:01:30Z"),
            job("f2", "Failed", "2024-01-01T00:02:30Z"),
            job("r", "Running", "2024-01-01T00:00:00Z"),
        ];
        let refs: Vec<&Job> = jobs.iter().collect();
        assert_eq!(jobs_to_trim(&cj, &refs), vec!["s1", "f1"]);
    }
}
