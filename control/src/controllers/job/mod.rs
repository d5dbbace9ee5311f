//! The Job controller: runs a Job's pods to completion — up to
//! `parallelism` at once while completions remain, each Indexed Job index
//! once — replaces failed pods after a backoff until `backoffLimit`, stops
//! at `activeDeadlineSeconds`, deletes the pods of a suspended Job, and
//! keeps the status counts and conditions. Runs as a kube-runtime
//! `Controller` over the shared Job and Pod informers; the decisions are
//! [`reconcile::plan`]'s.

pub mod indexes;
pub mod reconcile;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, warn};

use self::reconcile::{Plan, plan, pod_for};
use super::expectations::Expectations;
use super::podutil::{controller_of, controller_ref, is_active};
use super::replicaset::api_message;
use crate::client::informer::{objects, tokio_stream_from};
use crate::client::recorder::{self, EventType, Recorder};
use crate::client::{Change, is_status};
use crate::validation::selector::{Selector, from_label_selector};

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
    pods: Store<Pod>,
    expectations: Arc<Expectations>,
    recorder: Recorder,
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn selector(job: &Job) -> Option<Selector> {
    job.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| from_label_selector(s).ok())
        .filter(|s| !s.is_empty())
}

/// Records what the informer saw against the expectations.
fn observe(exp: &Expectations, c: &Change<Pod>) {
    let pod = c.object();
    let Some(owner) = controller_of(&pod.metadata).filter(|o| o.kind == "Job") else {
        return;
    };
    let ns = pod.namespace().unwrap_or_default();
    let job_key = key(&ns, &owner.name);
    let pod_key = key(&ns, &pod.name_any());
    match c {
        Change::Applied { old: None, new } => {
            exp.creation_observed(&job_key);
            if new.metadata.deletion_timestamp.is_some() {
                exp.deletion_observed(&job_key, &pod_key);
            }
        }
        Change::Applied { old: Some(o), new } => {
            if new.metadata.deletion_timestamp.is_some() && o.metadata.deletion_timestamp.is_none()
            {
                exp.deletion_observed(&job_key, &pod_key);
            }
        }
        Change::Deleted(_) => exp.deletion_observed(&job_key, &pod_key),
    }
}

/// The Jobs a pod change concerns: its controller, or for an orphan every
/// Job of the namespace selecting it.
fn owners_of(pod: &Pod, jobs: &Store<Job>) -> Vec<ObjectRef<Job>> {
    let ns = pod.namespace().unwrap_or_default();
    match controller_of(&pod.metadata) {
        Some(o) if o.kind == "Job" => vec![ObjectRef::new(&o.name).within(&ns)],
        Some(_) => Vec::new(),
        None => jobs
            .state()
            .iter()
            .filter(|j| {
                j.namespace().as_deref() == Some(ns.as_str())
                    && selector(j).is_some_and(|s| s.matches(pod.labels()))
            })
            .map(|j| ObjectRef::from_obj(j.as_ref()))
            .collect(),
    }
}

/// Runs the controller.
pub async fn run(
    client: kube::Client,
    job_store: Store<Job>,
    job_rx: UnboundedReceiver<Change<Job>>,
    pod_store: Store<Pod>,
    pod_rx: UnboundedReceiver<Change<Pod>>,
    workers: u16,
) {
    let exp = Arc::new(Expectations::default());
    let ctx = Arc::new(Ctx {
        recorder: recorder::for_component(client.clone(), "job-controller"),
        client,
        pods: pod_store,
        expectations: exp.clone(),
    });
    let pods = tokio_stream_from(pod_rx).map(move |c| {
        observe(&exp, &c);
        Ok((**c.object()).clone())
    });
    let store_for_map = job_store.clone();
    Controller::for_stream(objects(job_rx), job_store)
        .watches_stream(pods, move |pod: Pod| owners_of(&pod, &store_for_map))
        .with_config(ControllerConfig::default().concurrency(workers))
        .run(
            reconcile_job,
            |_, e, _| {
                debug!(error = %e, "job sync failed; retrying");
                Action::requeue(Duration::from_secs(2))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The Job's pods (`getPodsForJob`): those it controls and still selects,
/// with matching orphans adopted and controlled pods that stopped matching
/// released.
async fn claim_pods(ctx: &Ctx, job: &Job) -> Vec<Arc<Pod>> {
    let ns = job.namespace().unwrap_or_default();
    let uid = job.uid().unwrap_or_default();
    let sel = selector(job);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut owned = Vec::new();
    let deleting = job.metadata.deletion_timestamp.is_some();
    for p in ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
    {
        let matches = sel.as_ref().is_some_and(|s| s.matches(p.labels()));
        match controller_of(&p.metadata) {
            Some(o) if o.uid == uid => {
                if matches {
                    owned.push(p);
                } else if !deleting {
                    let refs: Vec<_> = p
                        .owner_references()
                        .iter()
                        .filter(|o| o.uid != uid)
                        .cloned()
                        .collect();
                    let patch = json!({"metadata": {"ownerReferences": refs, "uid": p.uid()}});
                    let _ = api
                        .patch(
                            &p.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await;
                }
            }
            None if matches && is_active(&p) && !deleting => {
                let mut refs = p.owner_references().to_vec();
                refs.push(controller_ref(job));
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": p.uid()}});
                match api
                    .patch(
                        &p.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(adopted) => owned.push(Arc::new(adopted)),
                    Err(e) => debug!(pod = %p.name_any(), error = %e, "adopting failed"),
                }
            }
            _ => {}
        }
    }
    owned
}

async fn reconcile_job(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let job_key = key(&ns, &name);
    if job.metadata.deletion_timestamp.is_some() || reconcile::is_finished(&job) {
        ctx.expectations.forget(&job_key);
        return Ok(Action::await_change());
    }
    if !ctx.expectations.satisfied(&job_key) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let pods = claim_pods(&ctx, &job).await;
    let refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let mut p = plan(&job, &refs, jiff::Timestamp::now());
    let failed_creates = create_pods(&ctx, &job, &job_key, &p).await;
    let failed_deletes = delete_pods(&ctx, &job, &job_key, &p).await;
    if let Some(a) = p.status.active.as_mut() {
        *a += failed_deletes - failed_creates;
    }
    for e in &p.events {
        let ty = if e.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.recorder
            .event(job.as_ref(), ty, &e.reason, e.message.clone());
    }
    if job.status.as_ref() != Some(&p.status) {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": p.status});
        if let Err(source) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            && !is_status(&source, 404)
        {
            return Err(Error::Api {
                verb: "update status of",
                what: job_key,
                source,
            });
        }
    }
    if failed_creates > 0 || failed_deletes > 0 {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    Ok(match p.requeue {
        Some(d) => Action::requeue(d + Duration::from_millis(100)),
        None => Action::await_change(),
    })
}

/// Creates the planned pods; returns how many failed.
async fn create_pods(ctx: &Ctx, job: &Job, job_key: &str, p: &Plan) -> i32 {
    if p.create.is_empty() {
        return 0;
    }
    ctx.expectations
        .expect_creations(job_key, p.create.len() as i64);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let pp = PostParams::default();
    let results = futures::future::join_all(p.create.iter().map(|i| {
        let pod = pod_for(job, *i);
        let api = api.clone();
        let pp = pp.clone();
        async move { api.create(&pp, &pod).await }
    }))
    .await;
    let mut failed = 0;
    for r in results {
        match r {
            Ok(pod) => ctx.recorder.event(
                job,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {}", pod.name_any()),
            ),
            Err(e) => {
                failed += 1;
                ctx.expectations.creation_observed(job_key);
                ctx.recorder.event(
                    job,
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating: {}", api_message(&e)),
                );
            }
        }
    }
    failed
}

/// Deletes the planned pods; returns how many failed.
async fn delete_pods(ctx: &Ctx, job: &Job, job_key: &str, p: &Plan) -> i32 {
    if p.delete.is_empty() {
        return 0;
    }
    let ns = job.namespace().unwrap_or_default();
    ctx.expectations
        .expect_deletions(job_key, p.delete.iter().map(|n| key(&ns, n)));
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let results = futures::future::join_all(p.delete.iter().map(|n| {
        let api = api.clone();
        async move { (n, api.delete(n, &DeleteParams::default()).await) }
    }))
    .await;
    let mut failed = 0;
    for (n, r) in results {
        match r {
            Ok(_) => ctx.recorder.event(
                job,
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {n}"),
            ),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                ctx.expectations.deletion_observed(job_key, &key(&ns, n))
            }
            Err(e) => {
                failed += 1;
                ctx.expectations.deletion_observed(job_key, &key(&ns, n));
                warn!(pod = %n, error = %e, "deleting pod failed");
                ctx.recorder.event(
                    job,
                    EventType::Warning,
                    "FailedDelete",
                    format!("Error deleting: {}", api_message(&e)),
                );
            }
        }
    }
    failed
}
