//! The ReplicaSet controller: keeps `spec.replicas` pods matching the
//! selector, owned by the ReplicaSet (adopting orphans, releasing pods that
//! stopped matching), with expectations so a slow watch never causes extra
//! pods, scale-down in Kubernetes' order keeping survivors spread, and the
//! status counts. Runs as a kube-runtime `Controller` over the shared
//! ReplicaSet and Pod informers.

pub mod ranking;
pub mod reconcile;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, warn};

use self::reconcile::{Manage, manage, pod_from_template, slow_start_batches, status};
use super::expectations::Expectations;
use super::podutil::{controller_of, controller_ref, is_active};
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
    replicasets: Store<ReplicaSet>,
    expectations: Arc<Expectations>,
    recorder: Recorder,
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn selector(rs: &ReplicaSet) -> Option<Selector> {
    rs.spec
        .as_ref()
        .and_then(|s| from_label_selector(&s.selector).ok())
        .filter(|s| !s.is_empty())
}

/// Records what the informer saw against the expectations.
fn observe(exp: &Expectations, c: &Change<Pod>) {
    let pod = c.object();
    let Some(owner) = controller_of(&pod.metadata).filter(|o| o.kind == "ReplicaSet") else {
        return;
    };
    let ns = pod.namespace().unwrap_or_default();
    let rs_key = key(&ns, &owner.name);
    match c {
        Change::Applied { old: None, new } => {
            exp.creation_observed(&rs_key);
            if new.metadata.deletion_timestamp.is_some() {
                exp.deletion_observed(&rs_key, &key(&ns, &pod.name_any()));
            }
        }
        Change::Applied { old: Some(o), new } => {
            if new.metadata.deletion_timestamp.is_some() && o.metadata.deletion_timestamp.is_none()
            {
                exp.deletion_observed(&rs_key, &key(&ns, &pod.name_any()));
            }
        }
        Change::Deleted(_) => exp.deletion_observed(&rs_key, &key(&ns, &pod.name_any())),
    }
}

/// The ReplicaSets a pod change concerns: its controller, or for an orphan
/// every ReplicaSet of the namespace selecting it (to adopt it).
fn owners_of(pod: &Pod, replicasets: &Store<ReplicaSet>) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    match controller_of(&pod.metadata) {
        Some(o) if o.kind == "ReplicaSet" => vec![ObjectRef::new(&o.name).within(&ns)],
        Some(_) => Vec::new(),
        None => replicasets
            .state()
            .iter()
            .filter(|rs| {
                rs.namespace().as_deref() == Some(ns.as_str())
                    && selector(rs).is_some_and(|s| s.matches(pod.labels()))
            })
            .map(|rs| ObjectRef::from_obj(rs.as_ref()))
            .collect(),
    }
}

/// Runs the controller.
pub async fn run(
    client: kube::Client,
    rs_store: Store<ReplicaSet>,
    rs_rx: UnboundedReceiver<Change<ReplicaSet>>,
    pod_store: Store<Pod>,
    pod_rx: UnboundedReceiver<Change<Pod>>,
    workers: u16,
) {
    let exp = Arc::new(Expectations::default());
    let ctx = Arc::new(Ctx {
        recorder: recorder::for_component(client.clone(), "replicaset-controller"),
        client,
        pods: pod_store,
        replicasets: rs_store.clone(),
        expectations: exp.clone(),
    });
    let pods = tokio_stream_from(pod_rx).map(move |c| {
        observe(&exp, &c);
        Ok((**c.object()).clone())
    });
    let store_for_map = rs_store.clone();
    Controller::for_stream(objects(rs_rx), rs_store)
        .watches_stream(pods, move |pod: Pod| owners_of(&pod, &store_for_map))
        .with_config(ControllerConfig::default().concurrency(workers))
        .run(
            reconcile_rs,
            |_, e, _| {
                debug!(error = %e, "replicaset sync failed; retrying");
                Action::requeue(Duration::from_secs(2))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile_rs(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let rs_key = key(&ns, &name);
    let uid = rs.uid().unwrap_or_default();
    let sel = selector(&rs);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let all: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    // Claim pods (`ClaimPods`): adopt matching orphans, release owned pods
    // that no longer match.
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    for p in &all {
        let matches = sel.as_ref().is_some_and(|s| s.matches(p.labels()));
        match controller_of(&p.metadata) {
            Some(o) if o.uid == uid => {
                if matches {
                    owned.push(p.clone());
                } else if rs.metadata.deletion_timestamp.is_none() {
                    let refs: Vec<_> = p
                        .owner_references()
                        .iter()
                        .filter(|o| o.uid != uid)
                        .cloned()
                        .collect();
                    let patch = json!({"metadata": {"ownerReferences": refs, "uid": p.uid()}});
                    let _ = pods_api
                        .patch(
                            &p.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await;
                }
            }
            None if matches && is_active(p) && rs.metadata.deletion_timestamp.is_none() => {
                let mut refs = p.owner_references().to_vec();
                refs.push(controller_ref(rs.as_ref()));
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": p.uid()}});
                match pods_api
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
    let active: Vec<&Pod> = owned
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| is_active(p))
        .collect();
    // Pods of the owner's other ReplicaSets count for the spread rank.
    let siblings: Vec<String> = match controller_of(&rs.metadata) {
        Some(o) => ctx
            .replicasets
            .state()
            .iter()
            .filter(|r| {
                r.namespace().as_deref() == Some(ns.as_str())
                    && controller_of(&r.metadata).is_some_and(|ro| ro.uid == o.uid)
            })
            .filter_map(|r| r.uid())
            .collect(),
        None => vec![uid.clone()],
    };
    let related: Vec<&Pod> = all
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| {
            is_active(p) && controller_of(&p.metadata).is_some_and(|o| siblings.contains(&o.uid))
        })
        .collect();
    let mut failure = None;
    if ctx.expectations.satisfied(&rs_key) && rs.metadata.deletion_timestamp.is_none() {
        let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        match manage(replicas, &active, &related) {
            Manage::Create(n) => failure = create_pods(&ctx, &rs, &rs_key, n).await,
            Manage::Delete(names) => failure = delete_pods(&ctx, &rs, &rs_key, names).await,
            Manage::Nothing => {}
        }
    }
    let now = jiff::Timestamp::now();
    let new_status = status(
        &rs,
        &active,
        now,
        failure.as_ref().map(|(r, m)| (*r, m.clone())),
    );
    if rs.status.as_ref() != Some(&new_status) {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": new_status});
        if let Err(source) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            && !is_status(&source, 404)
        {
            return Err(Error::Api {
                verb: "update status of",
                what: rs_key,
                source,
            });
        }
    }
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    if min_ready > 0 && new_status.ready_replicas != new_status.available_replicas {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    if failure.is_some() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    Ok(Action::await_change())
}

async fn create_pods(
    ctx: &Ctx,
    rs: &ReplicaSet,
    rs_key: &str,
    n: usize,
) -> Option<(&'static str, String)> {
    ctx.expectations.expect_creations(rs_key, n as i64);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let template = pod_from_template(rs);
    let mut left = n;
    for batch in slow_start_batches(n) {
        let pp = PostParams::default();
        let results =
            futures::future::join_all((0..batch).map(|_| api.create(&pp, &template))).await;
        left -= batch;
        let mut failed = None;
        for r in results {
            match r {
                Ok(p) => ctx.recorder.event(
                    rs,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.name_any()),
                ),
                Err(e) => {
                    ctx.expectations.creation_observed(rs_key);
                    let msg = format!("Error creating: {}", api_message(&e));
                    ctx.recorder
                        .event(rs, EventType::Warning, "FailedCreate", msg.clone());
                    failed = Some(("FailedCreate", msg));
                }
            }
        }
        if failed.is_some() {
            // The batches not tried will not be observed either.
            for _ in 0..left {
                ctx.expectations.creation_observed(rs_key);
            }
            return failed;
        }
    }
    None
}

async fn delete_pods(
    ctx: &Ctx,
    rs: &ReplicaSet,
    rs_key: &str,
    names: Vec<String>,
) -> Option<(&'static str, String)> {
    let ns = rs.namespace().unwrap_or_default();
    ctx.expectations
        .expect_deletions(rs_key, names.iter().map(|n| key(&ns, n)));
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut failed = None;
    let results = futures::future::join_all(names.iter().map(|n| {
        let dp = DeleteParams {
            preconditions: None::<Preconditions>,
            ..Default::default()
        };
        let api = api.clone();
        async move { (n, api.delete(n, &dp).await) }
    }))
    .await;
    for (n, r) in results {
        match r {
            Ok(_) => ctx.recorder.event(
                rs,
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {n}"),
            ),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                ctx.expectations.deletion_observed(rs_key, &key(&ns, n))
            }
            Err(e) => {
                ctx.expectations.deletion_observed(rs_key, &key(&ns, n));
                let msg = format!("Error deleting: {}", api_message(&e));
                warn!(pod = %n, error = %e, "deleting pod failed");
                ctx.recorder
                    .event(rs, EventType::Warning, "FailedDelete", msg.clone());
                failed = Some(("FailedDelete", msg));
            }
        }
    }
    failed
}

/// The Status message of an API error, or the error itself.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}
