//! The node's pods: a reflector over the pods bound to this node
//! (`fieldSelector=spec.nodeName=<node>`), one worker task per pod UID
//! syncing it on every change and when its sync asks to be repeated
//! ([`worker::next_sync`]), and the cleanup of what
//! the runtime has of pods the API no longer has (deleted while baton-node
//! was down, or force-deleted).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;

use super::runtime_view::observed::PodRuntime;
use super::runtime_view::{read, relist};
use super::worker::{self, Wake, WorkerState};
use super::{Context, KubeletError};
use crate::cri::api as cri;
use crate::cri::labels::{self, PodRef};

/// How often the runtime is searched for pods the API no longer has.
pub const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Runs until the watch stream ends (it retries on errors itself).
pub async fn run(ctx: Arc<Context>) -> Result<(), KubeletError> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let (store, writer) = reflector::store();
    let changes = tokio::sync::Notify::new();
    let changes = Arc::new(changes);
    let stream = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .touched_objects();
    let notify = Arc::clone(&changes);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(pod) => {
                    tracing::debug!(pod = ?pod.metadata.name, "pod changed");
                    notify.notify_one();
                }
                Err(err) => tracing::warn!(%err, "pod watch"),
            }
        }
    });
    store
        .wait_until_ready()
        .await
        .map_err(|_| KubeletError::WatchClosed)?;
    tracing::info!(node = %ctx.node_name, "watching this node's pods");
    tokio::spawn(relist::run(
        ctx.cri.clone(),
        Arc::clone(&ctx.relist),
        Arc::clone(&ctx.relist_wakers),
    ));
    let mut workers: HashMap<String, watch::Sender<Option<Arc<Pod>>>> = HashMap::new();
    let mut cleaning: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let tick = tokio::select! {
            () = changes.notified() => false,
            _ = housekeeping.tick() => true,
        };
        dispatch(&ctx, &store, &mut workers, &done_tx).await;
        while let Ok(uid) = done_rx.try_recv() {
            workers.remove(&uid);
            cleaning.remove(&uid);
            ctx.runtime_cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .forget_pod(&uid);
        }
        // Orphans are looked for on the housekeeping period, not on every
        // pod event: a burst of status updates would otherwise list every
        // sandbox of the node once per event.
        if tick
            && let Err(err) = clean_orphans(&ctx, &store, &workers, &mut cleaning, &done_tx).await
        {
            tracing::warn!(%err, "cleaning up pods the API no longer has");
        }
    }
}

async fn dispatch(
    ctx: &Arc<Context>,
    store: &Store<Pod>,
    workers: &mut HashMap<String, watch::Sender<Option<Arc<Pod>>>>,
    done: &tokio::sync::mpsc::UnboundedSender<String>,
) {
    let pods = store.state();
    // A pod gone from the API (removed by someone else, e.g. a forced
    // delete): its worker stops, and the orphan cleanup stops its
    // containers with the grace period they were created with.
    let present: HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    for (uid, tx) in workers.iter() {
        if !present.contains(uid.as_str()) {
            let _ = tx.send(None);
        }
    }
    for pod in pods {
        let Some(uid) = pod.metadata.uid.clone() else {
            continue;
        };
        match workers.get(&uid) {
            Some(tx) => {
                // Only a change of this pod wakes its worker (as the
                // kubelet's UpdatePod per pod): waking every worker on any
                // pod's event multiplies the CRI calls by the pod count.
                tx.send_if_modified(|current| {
                    let changed = current.as_ref().is_none_or(|c| {
                        c.metadata.resource_version != pod.metadata.resource_version
                    });
                    if changed {
                        *current = Some(Arc::clone(&pod));
                    }
                    changed
                });
            }
            None => {
                let (tx, rx) = watch::channel(Some(Arc::clone(&pod)));
                workers.insert(uid.clone(), tx);
                tokio::spawn(pod_worker(Arc::clone(ctx), uid, rx, done.clone()));
            }
        }
    }
}

async fn pod_worker(
    ctx: Arc<Context>,
    uid: String,
    mut rx: watch::Receiver<Option<Arc<Pod>>>,
    done: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut state = WorkerState::new();
    ctx.relist_wakers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(uid.clone(), Arc::clone(&state.notify));
    loop {
        let pod = rx.borrow_and_update().clone();
        let Some(pod) = pod else {
            break;
        };
        if let Err(err) = worker::sync(&ctx, &pod, &mut state).await {
            tracing::warn!(pod = ?pod.metadata.name, %err, "sync failed");
            state.next_sync = worker::RETRY;
        }
        if state.finished {
            break;
        }
        let notify = Arc::clone(&state.notify);
        let next_sync = tokio::time::Instant::now() + state.next_sync;
        let woken = loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        break None;
                    }
                    break Some(state.wake_for(rx.borrow().as_deref()));
                }
                () = notify.notified() => break Some(Wake::Event),
                // A failed probe run is reported as it happens, without a
                // sync: a probe that keeps failing changes nothing else.
                Some(failure) = state.failures_rx.recv() => {
                    worker::probe_failed(&ctx, &pod, &failure);
                }
                () = tokio::time::sleep_until(next_sync) => break Some(Wake::Resync),
            }
        };
        let Some(wake) = woken else { break };
        state.wake = wake;
    }
    ctx.relist_wakers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&uid);
    let _ = done.send(uid);
}

/// Stops and removes sandboxes and containers of pods that are not in the
/// API any more (by UID), with the grace period they were created with.
async fn clean_orphans(
    ctx: &Arc<Context>,
    store: &Store<Pod>,
    workers: &HashMap<String, watch::Sender<Option<Arc<Pod>>>>,
    cleaning: &mut HashSet<String>,
    done: &tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<(), KubeletError> {
    let known: HashSet<String> = store
        .state()
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    let sandboxes = ctx.cri.list_pod_sandboxes(None).await?;
    let mut orphans: HashMap<String, PodRef> = HashMap::new();
    for s in &sandboxes {
        if let Some(r) = PodRef::from_labels(&s.labels)
            && !known.contains(&r.uid)
            && !workers.contains_key(&r.uid)
            && !cleaning.contains(&r.uid)
        {
            orphans.insert(r.uid.clone(), r);
        }
    }
    for (uid, r) in orphans {
        cleaning.insert(uid.clone());
        let ctx = Arc::clone(ctx);
        let done = done.clone();
        tokio::spawn(async move {
            tracing::info!(pod = %format!("{}/{}", r.namespace, r.name), %uid, "removing a pod the API no longer has");
            let pod = Pod {
                metadata: kube::api::ObjectMeta {
                    name: Some(r.name.clone()),
                    namespace: Some(r.namespace.clone()),
                    uid: Some(uid.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            let result = async {
                let runtime: PodRuntime = read::observe(&ctx.cri, &ctx.runtime_cache, &uid).await?;
                worker::terminate(&ctx, &pod, &runtime, &mut WorkerState::new(), None).await
            }
            .await;
            if let Err(err) = result {
                tracing::warn!(%uid, %err, "cleanup failed; retrying later");
            }
            let _ = done.send(uid);
        });
    }
    // Volumes of pods with nothing left in the runtime.
    let live: HashSet<String> = sandboxes
        .iter()
        .filter_map(|s| s.labels.get(labels::POD_UID).cloned())
        .chain(known)
        .collect();
    for uid in ctx.volumes.pod_uids() {
        if !live.contains(&uid)
            && !workers.contains_key(&uid)
            && !cleaning.contains(&uid)
            && let Err(err) = ctx.volumes.teardown(&uid)
        {
            tracing::warn!(%uid, %err, "removing volumes");
        }
    }
    Ok(())
}

/// Sandbox IDs the runtime has (for CNI address reclaim at start-up).
pub async fn sandbox_ids(ctx: &Context) -> Result<HashSet<String>, KubeletError> {
    Ok(ctx
        .cri
        .list_pod_sandboxes(None)
        .await?
        .into_iter()
        .map(|s: cri::PodSandbox| s.id)
        .collect())
}
