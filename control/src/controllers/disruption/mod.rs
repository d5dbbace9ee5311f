//! The disruption controller (pkg/controller/disruption): keeps each
//! PodDisruptionBudget's status — the pods it expects (their controllers'
//! scale when a percentage or `maxUnavailable` needs it: Deployments
//! through their ReplicaSets, ReplicaSets), how many must stay healthy, how
//! many are, the disruptions allowed and the evictions still awaited —
//! with the `DisruptionAllowed` condition, allowing nothing when it cannot
//! tell. Runs as a kube-runtime `Controller` over the shared budget, Pod,
//! ReplicaSet and Deployment informers; the arithmetic is in [`plan`].

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::debug;

use super::podutil::controller_of;
use crate::client::Change;
use crate::client::informer::{objects, tokio_stream_from};
use crate::client::recorder::{self, EventType, Recorder};
use crate::validation::selector::from_label_selector;

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
    deployments: Store<Deployment>,
    recorder: Recorder,
}

/// The informers the controller reads.
pub struct Inputs {
    pub budgets: Store<PodDisruptionBudget>,
    pub budget_rx: UnboundedReceiver<Change<PodDisruptionBudget>>,
    pub pods: Store<Pod>,
    pub pod_rx: UnboundedReceiver<Change<Pod>>,
    /// A second subscription to pods, for the stale `DisruptionTarget`
    /// conditions.
    pub stale_rx: UnboundedReceiver<Change<Pod>>,
    pub replicasets: Store<ReplicaSet>,
    pub deployments: Store<Deployment>,
}

/// `getPodsForPdb`: the pods of the budget's namespace its selector
/// matches (none without a selector, all with an empty one).
fn selected(pdb: &PodDisruptionBudget, pods: &Store<Pod>) -> Vec<Arc<Pod>> {
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return Vec::new();
    };
    let Ok(sel) = from_label_selector(sel) else {
        return Vec::new();
    };
    let ns = pdb.namespace();
    pods.state()
        .into_iter()
        .filter(|p| p.namespace() == ns && sel.matches(p.labels()))
        .collect()
}

/// The budgets a pod change concerns (`getPdbForPod`, every match).
fn budgets_of(
    pod: &Pod,
    budgets: &Store<PodDisruptionBudget>,
) -> Vec<ObjectRef<PodDisruptionBudget>> {
    budgets
        .state()
        .iter()
        .filter(|b| b.namespace() == pod.namespace())
        .filter(|b| {
            b.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| from_label_selector(s).ok())
                .is_some_and(|s| !s.is_empty() && s.matches(pod.labels()))
        })
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

fn is_apps(r: &OwnerReference, kind: &str) -> bool {
    r.kind == kind
        && (r.api_version.starts_with("apps/") || r.api_version.starts_with("extensions/"))
}

/// The finders (`getPodReplicaSet`, `getPodDeployment`): a pod's
/// ReplicaSet's scale, or its Deployment's when a Deployment controls the
/// ReplicaSet.
fn find_controller(ctx: &Ctx, r: &OwnerReference, ns: &str) -> Option<(String, i32)> {
    if !is_apps(r, "ReplicaSet") {
        return None;
    }
    let rs = ctx.replicasets.get(&ObjectRef::new(&r.name).within(ns))?;
    if rs.uid().as_deref() != Some(r.uid.as_str()) {
        return None;
    }
    match controller_of(&rs.metadata) {
        Some(d) if is_apps(d, "Deployment") => {
            let dep = ctx.deployments.get(&ObjectRef::new(&d.name).within(ns))?;
            if dep.uid().as_deref() != Some(d.uid.as_str()) {
                return None;
            }
            let replicas = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            Some((d.uid.clone(), replicas))
        }
        _ => {
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            Some((r.uid.clone(), replicas))
        }
    }
}

/// Runs the controller: the budgets' statuses and the reset of stale
/// `DisruptionTarget` conditions.
pub async fn run(client: kube::Client, inputs: Inputs, workers: u16) {
    let stale = Controller::for_stream(objects(inputs.stale_rx), inputs.pods.clone())
        .with_config(ControllerConfig::default().concurrency(workers))
        .run(
            reset_stale_disruption,
            |_, e, _| {
                debug!(error = %e, "stale pod disruption sync failed; retrying");
                Action::requeue(Duration::from_secs(1))
            },
            Arc::new(client.clone()),
        )
        .for_each(|_| futures::future::ready(()));
    tokio::spawn(stale);
    let ctx = Arc::new(Ctx {
        recorder: recorder::for_component(client.clone(), "controllermanager"),
        client,
        pods: inputs.pods,
        replicasets: inputs.replicasets,
        deployments: inputs.deployments,
    });
    let pods = tokio_stream_from(inputs.pod_rx).map(|c| Ok((**c.object()).clone()));
    let budgets = inputs.budgets.clone();
    Controller::for_stream(objects(inputs.budget_rx), inputs.budgets)
        .watches_stream(pods, move |pod: Pod| budgets_of(&pod, &budgets))
        .with_config(ControllerConfig::default().concurrency(workers))
        .run(
            reconcile,
            |_, e, _| {
                debug!(error = %e, "disruption sync failed; retrying");
                Action::requeue(Duration::from_secs(1))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn write_status(
    ctx: &Ctx,
    pdb: &PodDisruptionBudget,
    status: PodDisruptionBudgetStatus,
) -> Result<(), Error> {
    let api: Api<PodDisruptionBudget> =
        Api::namespaced(ctx.client.clone(), &pdb.namespace().unwrap_or_default());
    let mut next = pdb.clone();
    next.status = Some(status);
    api.replace_status(&pdb.name_any(), &PostParams::default(), &next)
        .await
        .map(|_| ())
        .map_err(|source| Error::Api {
            verb: "update status of",
            what: pdb.name_any(),
            source,
        })
}

/// `syncStalePodDisruption`: a pod marked `DisruptionTarget` that is still
/// there two minutes later was not disrupted; its condition turns False.
async fn reset_stale_disruption(pod: Arc<Pod>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let Some(left) = plan::stale_disruption_in(&pod, Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    if !left.is_zero() {
        let ms = left.as_millis().max(0) as u64;
        return Ok(Action::requeue(Duration::from_millis(ms)));
    }
    let api: Api<Pod> = Api::namespaced((*client).clone(), &pod.namespace().unwrap_or_default());
    let patch = json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "False",
        "lastTransitionTime": crate::client::time::now()}]}});
    match api
        .patch_status(
            &pod.name_any(),
            &PatchParams::apply("DisruptionController"),
            &Patch::Strategic(patch),
        )
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if crate::client::is_status(&e, 404) => Ok(Action::await_change()),
        Err(source) => Err(Error::Api {
            verb: "reset the DisruptionTarget condition of",
            what: pod.name_any(),
            source,
        }),
    }
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let pods = selected(&pdb, &ctx.pods);
    if pods.is_empty() {
        ctx.recorder.event(
            pdb.as_ref(),
            EventType::Normal,
            "NoPods",
            "No matching pods found",
        );
    }
    let spec = pdb.spec.clone().unwrap_or_default();
    let expected =
        plan::expected_pod_count(&spec, &pods, &mut |r, ns| find_controller(&ctx, r, ns));
    let expected = match expected {
        Ok(e) => e,
        Err(msg) => {
            ctx.recorder.event(
                pdb.as_ref(),
                EventType::Warning,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {msg}"),
            );
            write_status(&ctx, &pdb, plan::fail_safe(&pdb, &msg, now)).await?;
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
    };
    if !expected.unmanaged.is_empty() {
        let sel = spec
            .selector
            .as_ref()
            .map(crate::validation::selector::go_label_selector)
            .unwrap_or_else(|| "nil".into());
        ctx.recorder.event(
            pdb.as_ref(),
            EventType::Warning,
            "UnmanagedPods",
            format!(
                "Pods selected by this PodDisruptionBudget (selector: {sel}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
            ),
        );
    }
    let disrupted = plan::disrupted_pods(&pods, &pdb, now);
    for name in &disrupted.not_deleted {
        if let Some(p) = pods.iter().find(|p| p.name_any() == *name) {
            ctx.recorder.event(
                p.as_ref(),
                EventType::Warning,
                "NotDeleted",
                format!(
                    "Pod was expected by PDB {}/{} to be deleted but it wasn't",
                    pdb.namespace().unwrap_or_default(),
                    pdb.name_any()
                ),
            );
        }
    }
    let healthy = plan::count_healthy(&pods, &disrupted.pods, now);
    if let Some(status) = plan::next_status(&pdb, healthy, &expected, disrupted.pods, now) {
        write_status(&ctx, &pdb, status).await?;
    }
    Ok(match disrupted.recheck {
        Some(at) => {
            let ms = (at.as_millisecond() - now.as_millisecond()).max(0) as u64;
            Action::requeue(Duration::from_millis(ms))
        }
        None => Action::await_change(),
    })
}
