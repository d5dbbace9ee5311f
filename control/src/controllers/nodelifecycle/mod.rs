//! The node lifecycle controller: node Leases (and Ready heartbeats) as
//! liveness; a node silent for longer than the grace period gets
//! `Ready=Unknown` ("Kubelet stopped posting node status."), its pods are
//! marked not ready, and it is tainted `node.kubernetes.io/unreachable`
//! (NoSchedule and NoExecute; `not-ready` when Ready=False); pods that do
//! not tolerate a NoExecute taint long enough are evicted (deleted), and
//! their owners recreate them elsewhere.

pub mod eviction;
pub mod health;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info};

use self::health::Observed;
use crate::client::informer::{objects, tokio_stream_from};
use crate::client::recorder::{self, EventType, Recorder};
use crate::client::time::now;
use crate::client::{Change, is_status};

/// Timing of the controller.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `--node-monitor-grace-period` (40 s).
    pub grace: Duration,
    /// `--node-monitor-period` (5 s).
    pub period: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{verb} {what}: {source}")]
pub struct Error {
    verb: &'static str,
    what: String,
    #[source]
    source: kube::Error,
}

struct Ctx {
    client: kube::Client,
    leases: Store<Lease>,
    pods: Store<Pod>,
    health: Mutex<HashMap<String, Observed>>,
    timing: Timing,
    recorder: Recorder,
}

/// Runs the controller.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: kube::Client,
    nodes: Store<Node>,
    node_rx: UnboundedReceiver<Change<Node>>,
    leases: Store<Lease>,
    lease_rx: UnboundedReceiver<Change<Lease>>,
    pods: Store<Pod>,
    pod_rx: UnboundedReceiver<Change<Pod>>,
    timing: Timing,
) {
    let ctx = Arc::new(Ctx {
        recorder: recorder::for_component(client.clone(), "node-controller"),
        client,
        leases,
        pods,
        health: Mutex::default(),
        timing,
    });
    // A pod newly bound to a tainted node must be looked at too.
    let bound = tokio_stream_from(pod_rx).filter_map(|c| {
        futures::future::ready(match c {
            Change::Applied { old, new }
                if old.as_ref().is_none_or(|o| {
                    o.spec.as_ref().and_then(|s| s.node_name.clone()).is_none()
                }) =>
            {
                Some(Ok((*new).clone()))
            }
            _ => None,
        })
    });
    Controller::for_stream(objects(node_rx), nodes)
        .watches_stream(objects(lease_rx), |l: Lease| {
            Some(ObjectRef::new(&l.name_any()))
        })
        .watches_stream(bound, |p: Pod| {
            p.spec.and_then(|s| s.node_name).map(|n| ObjectRef::new(&n))
        })
        .with_config(ControllerConfig::default().concurrency(4))
        .run(
            reconcile,
            |_, e, ctx| {
                debug!(error = %e, "node sync failed; retrying");
                Action::requeue(ctx.timing.period.min(Duration::from_secs(2)))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = node.name_any();
    let lease = ctx
        .leases
        .get(&ObjectRef::new(&name).within("kube-node-lease"));
    let renew = lease
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let beat = health::ready_condition(&node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let t = Instant::now();
    let obs = {
        let mut h = ctx.health.lock().expect("health");
        let o = health::observe(h.get(&name), renew, beat, t);
        h.insert(name.clone(), o.clone());
        o
    };
    let api: Api<Node> = Api::all(ctx.client.clone());
    let mut node = (*node).clone();
    let wall = jiff::Timestamp::now();
    if health::silent(&obs, t, ctx.timing.grace)
        && let Some(conds) = health::conditions_when_silent(&node, wall)
    {
        info!(node = %name, "node stopped posting status; marking Ready=Unknown");
        let changed: Vec<_> = conds
            .iter()
            .filter(|c| c.status == "Unknown")
            .cloned()
            .collect();
        let patch = json!({"status": {"conditions": changed}});
        node = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map_err(|source| Error {
                verb: "update status of node",
                what: name.clone(),
                source,
            })?;
        ctx.recorder.event(
            &node,
            EventType::Normal,
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        );
        mark_pods_not_ready(&ctx, &name).await;
    }
    if let Some(taints) = health::taints_for(&node, wall) {
        let patch = json!({"spec": {"taints": taints}});
        node = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| Error {
                verb: "update taints of node",
                what: name.clone(),
                source,
            })?;
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut next = ctx.timing.period;
    if taints.iter().any(|t| t.effect == "NoExecute") {
        for pod in ctx.pods.state().iter().filter(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                && p.metadata.deletion_timestamp.is_none()
        }) {
            match eviction::eviction_delay(pod, &taints, wall) {
                Some(0) => evict(&ctx, pod).await,
                Some(s) => next = next.min(Duration::from_secs(s as u64)),
                None => {}
            }
        }
    }
    // Check again when the grace period could run out.
    let left = ctx.timing.grace.saturating_sub(t.duration_since(obs.probe));
    if !left.is_zero() {
        next = next.min(left + Duration::from_millis(100));
    }
    Ok(Action::requeue(next.max(Duration::from_millis(200))))
}

async fn mark_pods_not_ready(ctx: &Ctx, node: &str) {
    for pod in ctx
        .pods
        .state()
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
    {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        if ready.is_none_or(|c| c.status == "False") {
            continue;
        }
        let api: Api<Pod> =
            Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now()}]}});
        let _ = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await;
    }
}

async fn evict(ctx: &Ctx, pod: &Pod) {
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    info!(pod = %format!("{ns}/{}", pod.name_any()), "evicting pod from tainted node");
    ctx.recorder.event(
        pod,
        EventType::Normal,
        "TaintManagerEviction",
        format!("Marking for deletion Pod {ns}/{}", pod.name_any()),
    );
    match api.delete(&pod.name_any(), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {}
        Err(e) => debug!(error = %e, "evicting failed"),
    }
}
