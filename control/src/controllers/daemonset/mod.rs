//! The DaemonSet controller: one pod per eligible node ([`eligibility`]),
//! each pinned to its node by required node affinity so the scheduler
//! binds it; template history as ControllerRevisions ([`history`]);
//! RollingUpdate (maxUnavailable or maxSurge) and OnDelete; failed pods
//! deleted and recreated with a per-node [`backoff`]; the status `kubectl
//! rollout status` reads. The decisions are in [`plan`] (pure); this module
//! observes, runs the writes and records events.

pub mod backoff;
pub mod eligibility;
pub mod history;
pub mod plan;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::debug;

use self::backoff::Backoff;
use self::eligibility::{HASH_LABEL, pin_to_node, pod_template};
use self::history::Current;
use super::expectations::Expectations;
use super::podutil::{controller_of, controller_ref, is_active};
use super::replicaset::api_message;
use super::replicaset::reconcile::slow_start_batches;
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
    #[error("revision {name} of daemon set {ds} collides with another template")]
    Collision { ds: String, name: String },
}

/// The informers the controller reads.
pub struct Inputs {
    pub daemonsets: Store<DaemonSet>,
    pub daemonset_rx: UnboundedReceiver<Change<DaemonSet>>,
    pub pods: Store<Pod>,
    pub pod_rx: UnboundedReceiver<Change<Pod>>,
    pub nodes: Store<Node>,
    pub node_rx: UnboundedReceiver<Change<Node>>,
    pub revisions: Store<ControllerRevision>,
    pub revision_rx: UnboundedReceiver<Change<ControllerRevision>>,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Arc<Expectations>,
    backoff: Backoff,
    recorder: Recorder,
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn selector(ds: &DaemonSet) -> Option<Selector> {
    ds.spec
        .as_ref()
        .and_then(|s| from_label_selector(&s.selector).ok())
        .filter(|s| !s.is_empty())
}

/// Records what the informer saw against the expectations.
fn observe(exp: &Expectations, c: &Change<Pod>) {
    let pod = c.object();
    let Some(owner) = controller_of(&pod.metadata).filter(|o| o.kind == "DaemonSet") else {
        return;
    };
    let ns = pod.namespace().unwrap_or_default();
    let ds_key = key(&ns, &owner.name);
    let pod_key = key(&ns, &pod.name_any());
    match c {
        Change::Applied { old: None, new } => {
            exp.creation_observed(&ds_key);
            if new.metadata.deletion_timestamp.is_some() {
                exp.deletion_observed(&ds_key, &pod_key);
            }
        }
        Change::Applied { old: Some(o), new } => {
            if new.metadata.deletion_timestamp.is_some() && o.metadata.deletion_timestamp.is_none()
            {
                exp.deletion_observed(&ds_key, &pod_key);
            }
        }
        Change::Deleted(_) => exp.deletion_observed(&ds_key, &pod_key),
    }
}

/// The DaemonSets a pod change concerns: its controller, or for an orphan
/// every DaemonSet of the namespace selecting it (to adopt it).
fn owners_of(pod: &Pod, daemonsets: &Store<DaemonSet>) -> Vec<ObjectRef<DaemonSet>> {
    let ns = pod.namespace().unwrap_or_default();
    match controller_of(&pod.metadata) {
        Some(o) if o.kind == "DaemonSet" => vec![ObjectRef::new(&o.name).within(&ns)],
        Some(_) => Vec::new(),
        None => daemonsets
            .state()
            .iter()
            .filter(|ds| {
                ds.namespace().as_deref() == Some(ns.as_str())
                    && selector(ds).is_some_and(|s| s.matches(pod.labels()))
            })
            .map(|ds| ObjectRef::from_obj(ds.as_ref()))
            .collect(),
    }
}

/// Whether a node change can change where daemon pods run: added,
/// deleted, or its labels, taints or name changed.
fn node_placement_changed(c: &Change<Node>) -> bool {
    match c {
        Change::Applied { old: Some(o), new } => {
            o.metadata.labels != new.metadata.labels
                || o.spec.as_ref().map(|s| &s.taints) != new.spec.as_ref().map(|s| &s.taints)
        }
        _ => true,
    }
}

/// Runs the controller.
pub async fn run(client: kube::Client, inputs: Inputs, workers: u16) {
    let exp = Arc::new(Expectations::default());
    let ctx = Arc::new(Ctx {
        recorder: recorder::for_component(client.clone(), "daemonset-controller"),
        client,
        pods: inputs.pods,
        nodes: inputs.nodes,
        revisions: inputs.revisions,
        expectations: exp.clone(),
        backoff: Backoff::default(),
    });
    let pods = tokio_stream_from(inputs.pod_rx).map(move |c| {
        observe(&exp, &c);
        Ok((**c.object()).clone())
    });
    let nodes = tokio_stream_from(inputs.node_rx).filter_map(|c| {
        futures::future::ready(node_placement_changed(&c).then(|| Ok((**c.object()).clone())))
    });
    let store = inputs.daemonsets.clone();
    let for_pods = store.clone();
    let for_nodes = store.clone();
    Controller::for_stream(objects(inputs.daemonset_rx), store)
        .watches_stream(pods, move |pod: Pod| owners_of(&pod, &for_pods))
        .watches_stream(nodes, move |_: Node| {
            for_nodes
                .state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(objects(inputs.revision_rx), |cr: ControllerRevision| {
            let ns = cr.namespace().unwrap_or_default();
            controller_of(&cr.metadata)
                .filter(|o| o.kind == "DaemonSet")
                .map(|o| ObjectRef::new(&o.name).within(&ns))
        })
        .with_config(ControllerConfig::default().concurrency(workers))
        .run(
            reconcile,
            |_, e, _| {
                debug!(error = %e, "daemon set sync failed; retrying");
                Action::requeue(Duration::from_secs(2))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// What a sync wants afterwards.
#[derive(Default)]
struct After {
    requeue: Option<Duration>,
}

impl After {
    fn at_most(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let ds_key = key(&ns, &name);
    let uid = ds.uid().unwrap_or_default();
    let owned_by_ds = |meta: &ObjectMeta| controller_of(meta).is_some_and(|o| o.uid == uid);
    let revisions: Vec<ControllerRevision> = ctx
        .revisions
        .state()
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(ns.as_str()) && owned_by_ds(&r.metadata))
        .map(|r| (**r).clone())
        .collect();
    let (current, old) = history::current(&ds, &revisions);
    let hash = sync_current_revision(&ctx, &ds, &revisions, current).await?;
    let nodes: Vec<Arc<Node>> = ctx.nodes.state();
    let nodes: Vec<&Node> = nodes.iter().map(|n| n.as_ref()).collect();
    let pods = claim_pods(&ctx, &ds).await;
    let pod_refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let by_node = plan::pods_by_node(&pod_refs);
    let now = jiff::Timestamp::now();
    let mut after = After::default();
    let acted = ctx.expectations.satisfied(&ds_key) && ds.metadata.deletion_timestamp.is_none();
    if acted {
        let m = plan::manage(&ds, &nodes, &by_node, &hash, now);
        let mut delete = m.delete;
        for (node, pod) in m.failed {
            let backoff_key = format!(
                "{uid}/{}/{node}",
                ds.metadata.generation.unwrap_or_default()
            );
            let at = Instant::now();
            if let Some(wait) = ctx.backoff.remaining(&backoff_key, at) {
                after.at_most(wait);
                continue;
            }
            ctx.backoff.next(&backoff_key, at);
            ctx.recorder.event(
                ds.as_ref(),
                EventType::Warning,
                "FailedDaemonPod",
                format!("Found failed daemon pod {ns}/{pod} on node {node}, will try to kill it"),
            );
            delete.push(pod);
        }
        let rolling_update = ds
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            .unwrap_or("RollingUpdate")
            == "RollingUpdate";
        let (create, delete) = if !m.create.is_empty() || !delete.is_empty() {
            (m.create, delete)
        } else if rolling_update {
            let r = plan::rolling(&ds, &nodes, &by_node, &hash, now);
            (r.create, r.delete)
        } else {
            (Vec::new(), Vec::new())
        };
        if !sync_nodes(&ctx, &ds, &hash, create, delete).await {
            after.at_most(Duration::from_secs(5));
        }
        let limit = ds
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let revisions_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
        for r in history::to_trim(&old, limit, &pod_refs) {
            match revisions_api.delete(&r, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(source) => {
                    return Err(Error::Api {
                        verb: "delete",
                        what: r,
                        source,
                    });
                }
            }
        }
    }
    let new_status = plan::status(&ds, &nodes, &by_node, &hash, now, acted);
    if ds.status.as_ref() != Some(&new_status) {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": new_status});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(source) => {
                return Err(Error::Api {
                    verb: "update status of",
                    what: ds_key,
                    source,
                });
            }
        }
    }
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    if min_ready > 0 && Some(new_status.number_ready) != new_status.number_available {
        after.at_most(Duration::from_secs(min_ready as u64));
    }
    Ok(match after.requeue {
        Some(d) => Action::requeue(d.max(Duration::from_millis(200))),
        None => Action::await_change(),
    })
}

/// `constructHistory`'s writes: creates or renumbers the current
/// revision and answers the template hash the pods are labelled with. A
/// revision of the same name holding another template bumps the
/// collision count (`snapshot`).
async fn sync_current_revision(
    ctx: &Ctx,
    ds: &DaemonSet,
    revisions: &[ControllerRevision],
    current: Current,
) -> Result<String, Error> {
    let ns = ds.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    match current {
        Current::Existing(name, renumber) => {
            let cr = revisions
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                .cloned()
                .unwrap_or_default();
            if let Some(revision) = renumber {
                let patch = json!({"revision": revision});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|source| Error::Api {
                        verb: "update",
                        what: name.clone(),
                        source,
                    })?;
            }
            Ok(cr
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HASH_LABEL))
                .cloned()
                .unwrap_or_else(|| history::hash(ds)))
        }
        Current::Create(revision) => {
            let hash = history::hash(ds);
            let cr = history::snapshot(ds, &hash, revision);
            let name = cr.name_any();
            match api.create(&PostParams::default(), &cr).await {
                Ok(_) => Ok(hash),
                Err(e) if is_status(&e, 409) => {
                    let existing = api.get(&name).await.map_err(|source| Error::Api {
                        verb: "get",
                        what: name.clone(),
                        source,
                    })?;
                    let ours = controller_of(&existing.metadata)
                        .is_some_and(|o| Some(&o.uid) == ds.metadata.uid.as_ref());
                    if ours && history::matches(ds, &existing) {
                        return Ok(hash);
                    }
                    let count = ds
                        .status
                        .as_ref()
                        .and_then(|s| s.collision_count)
                        .unwrap_or(0)
                        + 1;
                    let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
                    let patch = json!({"status": {"collisionCount": count}});
                    ds_api
                        .patch_status(
                            &ds.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await
                        .map_err(|source| Error::Api {
                            verb: "update status of",
                            what: ds.name_any(),
                            source,
                        })?;
                    Err(Error::Collision {
                        ds: ds.name_any(),
                        name,
                    })
                }
                Err(source) => Err(Error::Api {
                    verb: "create",
                    what: name,
                    source,
                }),
            }
        }
    }
}

/// `ClaimPods`: the DaemonSet's pods; matching orphans are adopted, owned
/// pods that stopped matching are released.
async fn claim_pods(ctx: &Ctx, ds: &DaemonSet) -> Vec<Arc<Pod>> {
    let ns = ds.namespace().unwrap_or_default();
    let uid = ds.uid().unwrap_or_default();
    let sel = selector(ds);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let alive = ds.metadata.deletion_timestamp.is_none();
    let mut owned = Vec::new();
    for p in ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
    {
        let matches = sel.as_ref().is_some_and(|s| s.matches(p.labels()));
        let refs = match controller_of(&p.metadata) {
            Some(o) if o.uid == uid && matches => {
                owned.push(p);
                continue;
            }
            Some(o) if o.uid == uid && alive => p
                .owner_references()
                .iter()
                .filter(|o| o.uid != uid)
                .cloned()
                .collect::<Vec<_>>(),
            None if matches && alive && is_active(&p) => {
                let mut refs = p.owner_references().to_vec();
                refs.push(controller_ref(ds));
                refs
            }
            _ => continue,
        };
        let adopting = matches;
        let patch = json!({"metadata": {"ownerReferences": refs, "uid": p.uid()}});
        match api
            .patch(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(adopted) if adopting => owned.push(Arc::new(adopted)),
            Ok(_) => {}
            Err(e) => debug!(pod = %p.name_any(), error = %e, "claiming pod failed"),
        }
    }
    owned
}

/// `syncNodes`: creates a pod pinned to each node (in slow-start
/// batches) and deletes the named pods, with expectations set first.
/// Answers whether every write succeeded.
async fn sync_nodes(
    ctx: &Ctx,
    ds: &DaemonSet,
    hash: &str,
    create: Vec<String>,
    delete: Vec<String>,
) -> bool {
    if create.is_empty() && delete.is_empty() {
        return true;
    }
    let ns = ds.namespace().unwrap_or_default();
    let ds_key = key(&ns, &ds.name_any());
    ctx.expectations.expect(
        &ds_key,
        create.len() as i64,
        delete.iter().map(|n| key(&ns, n)),
    );
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut ok = true;
    let deletions = futures::future::join_all(delete.iter().map(|n| {
        let api = api.clone();
        async move { (n, api.delete(n, &DeleteParams::default()).await) }
    }))
    .await;
    for (n, r) in deletions {
        match r {
            Ok(_) => ctx.recorder.event(
                ds,
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {n}"),
            ),
            Err(e) if is_status(&e, 404) => {
                ctx.expectations.deletion_observed(&ds_key, &key(&ns, n))
            }
            Err(e) => {
                ok = false;
                ctx.expectations.deletion_observed(&ds_key, &key(&ns, n));
                ctx.recorder.event(
                    ds,
                    EventType::Warning,
                    "FailedDelete",
                    format!("Error deleting: {}", api_message(&e)),
                );
            }
        }
    }
    let template = pod_template(ds, hash);
    let meta = template.metadata.clone().unwrap_or_default();
    let new_pod = |node: &str| {
        let mut spec = template.spec.clone().unwrap_or_default();
        pin_to_node(&mut spec, node);
        Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", ds.name_any())),
                namespace: Some(ns.clone()),
                labels: meta.labels.clone(),
                annotations: meta.annotations.clone(),
                finalizers: meta.finalizers.clone(),
                owner_references: Some(vec![controller_ref(ds)]),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    };
    let pp = PostParams::default();
    let mut nodes = create.iter();
    let mut left = create.len();
    for batch in slow_start_batches(create.len()) {
        let pods: Vec<Pod> = nodes.by_ref().take(batch).map(|n| new_pod(n)).collect();
        let results = futures::future::join_all(pods.iter().map(|p| api.create(&pp, p))).await;
        left -= batch;
        let mut failed = false;
        for r in results {
            match r {
                Ok(p) => ctx.recorder.event(
                    ds,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.name_any()),
                ),
                Err(e) => {
                    failed = true;
                    ctx.expectations.creation_observed(&ds_key);
                    ctx.recorder.event(
                        ds,
                        EventType::Warning,
                        "FailedCreate",
                        format!("Error creating: {}", api_message(&e)),
                    );
                }
            }
        }
        if failed {
            // The batches not tried will not be observed either.
            for _ in 0..left {
                ctx.expectations.creation_observed(&ds_key);
            }
            return false;
        }
    }
    ok
}
