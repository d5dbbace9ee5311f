//! The CronJob controller (upstream's `ControllerV2`): creates a Job at
//! each schedule time of a CronJob (in its time zone, within
//! `startingDeadlineSeconds`, as `concurrencyPolicy` allows, not while
//! suspended), keeps `status.active`, `lastScheduleTime` and
//! `lastSuccessfulTime`, and removes finished Jobs beyond the history
//! limits. Each sync asks to be run again at the next schedule time.
//! Runs as a kube-runtime `Controller` over the shared CronJob and Job
//! informers; the decisions are [`plan`]'s.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::debug;

use self::plan::{Decision, Note, decide, job_for, jobs_to_trim, requeue_after};
use super::job::reconcile::finished_as;
use super::podutil::controller_of;
use super::replicaset::api_message;
use crate::client::informer::{objects, tokio_stream_from};
use crate::client::recorder::{self, EventType, Recorder};
use crate::client::{Change, is_status};

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{verb} {what}: {source}")]
    Api {
        verb: &'static str,
        what: String,
        #[source]
        source: kube::Error,
    },
}

struct Ctx {
    client: kube::Client,
    jobs: Store<Job>,
    recorder: Recorder,
}

/// Runs the controller.
pub async fn run(
    client: kube::Client,
    cj_store: Store<CronJob>,
    cj_rx: UnboundedReceiver<Change<CronJob>>,
    job_store: Store<Job>,
    job_rx: UnboundedReceiver<Change<Job>>,
    workers: u16,
) {
    let ctx = Arc::new(Ctx {
        recorder: recorder::for_component(client.clone(), "cronjob-controller"),
        client,
        jobs: job_store,
    });
    let jobs = tokio_stream_from(job_rx).map(|c| Ok((**c.object()).clone()));
    Controller::for_stream(objects(cj_rx), cj_store)
        .watches_stream(jobs, |job: Job| {
            let ns = job.namespace().unwrap_or_default();
            controller_of(&job.metadata)
                .filter(|o| o.kind == "CronJob")
                .map(|o| ObjectRef::new(&o.name).within(&ns))
        })
        .with_config(ControllerConfig::default().concurrency(workers))
        .run(
            reconcile_cron_job,
            |_, e, _| {
                debug!(error = %e, "cronjob sync failed; retrying");
                Action::requeue(Duration::from_secs(5))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn remove_active(status: &mut CronJobStatus, uid: Option<&str>) {
    if let Some(a) = status.active.as_mut() {
        a.retain(|r| r.uid.as_deref() != uid);
    }
}

/// One sync: the state of the CronJob's Jobs, then at most one new Job.
struct Sync<'a> {
    ctx: &'a Ctx,
    cj: &'a CronJob,
    status: CronJobStatus,
}

impl Sync<'_> {
    fn event(&self, ty: EventType, reason: &str, message: String) {
        self.ctx.recorder.event(self.cj, ty, reason, message);
    }

    fn api(&self) -> Api<Job> {
        Api::namespaced(
            self.ctx.client.clone(),
            &self.cj.namespace().unwrap_or_default(),
        )
    }

    /// `deleteJob`: deletes a Job (its pods in the background) and its
    /// reference.
    async fn delete_job(&mut self, job: &Job) -> bool {
        let name = job.name_any();
        match self.api().delete(&name, &DeleteParams::background()).await {
            Ok(_) => {
                remove_active(&mut self.status, job.metadata.uid.as_deref());
                self.event(
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted job {name}"),
                );
                true
            }
            Err(e) => {
                self.event(
                    EventType::Warning,
                    "FailedDelete",
                    format!("Deleted job: {}", api_message(&e)),
                );
                false
            }
        }
    }

    /// Folds the Jobs into the status (`syncCronJob`'s first half).
    async fn reconcile_jobs(&mut self, jobs: &[Arc<Job>]) -> Result<(), Error> {
        for j in jobs {
            let uid = j.metadata.uid.as_deref();
            let found = self
                .status
                .active
                .iter()
                .flatten()
                .any(|r| r.uid.as_deref() == uid);
            let finished = finished_as(j);
            if !found && finished.is_none() {
                self.event(
                    EventType::Warning,
                    "UnexpectedJob",
                    format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        j.name_any()
                    ),
                );
            } else if found && let Some(cond) = finished {
                remove_active(&mut self.status, uid);
                self.event(
                    EventType::Normal,
                    "SawCompletedJob",
                    format!("Saw completed job: {}, condition: {cond}", j.name_any()),
                );
            } else if finished == Some("Complete")
                && let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.clone())
                && self
                    .status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|t| done.0 > t.0)
            {
                self.status.last_successful_time = Some(done);
            }
        }
        let missing: Vec<ObjectReference> = self
            .status
            .active
            .iter()
            .flatten()
            .filter(|r| !jobs.iter().any(|j| j.metadata.uid == r.uid))
            .cloned()
            .collect();
        for r in missing {
            let name = r.name.clone().unwrap_or_default();
            match self.api().get(&name).await {
                Err(e) if is_status(&e, 404) => {
                    self.event(
                        EventType::Normal,
                        "MissingJob",
                        format!("Active job went missing: {name}"),
                    );
                    remove_active(&mut self.status, r.uid.as_deref());
                }
                Err(source) => {
                    return Err(Error::Api {
                        verb: "get",
                        what: name,
                        source,
                    });
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    fn note(&self, note: Option<Note>) {
        if let Some(n) = note {
            let ty = if n.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.event(ty, n.reason, n.message);
        }
    }

    /// Acts on [`decide`]: starts the Job of the most recent unmet schedule
    /// time, if any; returns when to look again.
    async fn schedule(&mut self) -> Result<Option<Duration>, Error> {
        let now = jiff::Timestamp::now();
        let cj = CronJob {
            status: Some(self.status.clone()),
            ..self.cj.clone()
        };
        let (scheduled, replace) = match decide(&cj, now) {
            Decision::Idle(note) => {
                self.note(note);
                return Ok(None);
            }
            Decision::Wait { after, note } => {
                self.note(note);
                return Ok(Some(after));
            }
            Decision::Start {
                scheduled,
                replace,
                note,
            } => {
                self.note(note);
                (scheduled, replace)
            }
        };
        for job_name in replace {
            match self.api().get(&job_name).await {
                Ok(job) => {
                    if !self.delete_job(&job).await {
                        return Ok(Some(Duration::from_secs(5)));
                    }
                }
                Err(e) if is_status(&e, 404) => {
                    let uid = self
                        .status
                        .active
                        .iter()
                        .flatten()
                        .find(|r| r.name.as_deref() == Some(job_name.as_str()))
                        .and_then(|r| r.uid.clone());
                    remove_active(&mut self.status, uid.as_deref());
                }
                Err(source) => {
                    return Err(Error::Api {
                        verb: "get",
                        what: job_name,
                        source,
                    });
                }
            }
        }
        let job = job_for(self.cj, scheduled);
        let name = job.name_any();
        let created = match self.api().create(&PostParams::default(), &job).await {
            Ok(j) => {
                self.event(
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created job {}", j.name_any()),
                );
                j
            }
            Err(e) if is_status(&e, 409) => {
                let existing = self.api().get(&name).await.map_err(|source| Error::Api {
                    verb: "get",
                    what: name.clone(),
                    source,
                })?;
                let ours = controller_of(&existing.metadata)
                    .is_some_and(|o| Some(&o.uid) == self.cj.metadata.uid.as_ref());
                let listed = self
                    .status
                    .active
                    .iter()
                    .flatten()
                    .any(|r| r.uid == existing.metadata.uid);
                if !ours || listed {
                    return Ok(None);
                }
                existing
            }
            Err(source) => {
                self.event(
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating job: {}", api_message(&source)),
                );
                return Err(Error::Api {
                    verb: "create job for",
                    what: self.cj.name_any(),
                    source,
                });
            }
        };
        self.status
            .active
            .get_or_insert_with(Vec::new)
            .push(job_ref(&created));
        self.status.last_schedule_time = Some(Time(scheduled));
        let cj = CronJob {
            status: Some(self.status.clone()),
            ..self.cj.clone()
        };
        Ok(plan::schedule_of(&cj)
            .ok()
            .map(|(sched, tz)| requeue_after(&cj, now, &sched, &tz)))
    }

    async fn write_status(&self) -> Result<(), Error> {
        if self.cj.status.clone().unwrap_or_default() == self.status {
            return Ok(());
        }
        let active = match &self.status.active {
            Some(a) if !a.is_empty() => json!(a),
            _ => serde_json::Value::Null,
        };
        let patch = json!({"status": {
            "active": active,
            "lastScheduleTime": self.status.last_schedule_time,
            "lastSuccessfulTime": self.status.last_successful_time,
        }});
        let api: Api<CronJob> = Api::namespaced(
            self.ctx.client.clone(),
            &self.cj.namespace().unwrap_or_default(),
        );
        match api
            .patch_status(
                &self.cj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Err(e) if !is_status(&e, 404) => Err(Error::Api {
                verb: "update status of",
                what: self.cj.name_any(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

async fn reconcile_cron_job(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = cj.namespace().unwrap_or_default();
    let uid = cj.uid().unwrap_or_default();
    let jobs: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| {
            j.namespace().as_deref() == Some(ns.as_str())
                && controller_of(&j.metadata).is_some_and(|o| o.uid == uid)
        })
        .collect();
    let mut sync = Sync {
        ctx: &ctx,
        cj: &cj,
        status: cj.status.clone().unwrap_or_default(),
    };
    // `cleanupFinishedJobs`.
    let refs: Vec<&Job> = jobs.iter().map(|j| j.as_ref()).collect();
    let trim = jobs_to_trim(&cj, &refs);
    for name in &trim {
        if let Some(j) = jobs
            .iter()
            .find(|j| j.metadata.name.as_ref() == Some(name))
            .cloned()
        {
            sync.delete_job(&j).await;
        }
    }
    // As upstream, the removed Jobs are still folded in: a succeeded one
    // still sets `lastSuccessfulTime`.
    sync.reconcile_jobs(&jobs).await?;
    let requeue = if cj.metadata.deletion_timestamp.is_some() {
        None
    } else {
        sync.schedule().await?
    };
    sync.write_status().await?;
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}
