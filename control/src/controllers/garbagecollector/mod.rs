//! The garbage collector: watches every deletable resource (found by
//! discovery), keeps the ownerReference graph, and deletes dependents whose
//! owners are gone (Background), deletes blocking dependents before their
//! owner and then removes its `foregroundDeletion` finalizer (Foreground),
//! or strips the owner from its dependents and removes its `orphan`
//! finalizer (Orphan) — what makes `kubectl delete deployment` remove its
//! ReplicaSets and pods.

pub mod graph;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::discovery::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, info, warn};

use self::graph::{Decision, Graph, Item, Work, decide};
use super::resource_discovery::Deletable;
use crate::client::is_status;

struct Gc {
    client: kube::Client,
    resources: Vec<Deletable>,
    graph: Mutex<Graph>,
    queue: Mutex<(Vec<Work>, HashSet<Work>)>,
    notify: Notify,
}

fn item_of(resource: usize, o: &DynamicObject) -> Item {
    Item {
        uid: o.uid().unwrap_or_default(),
        resource,
        namespace: o.namespace(),
        name: o.name_any(),
        owners: o.owner_references().to_vec(),
        deleting: o.metadata.deletion_timestamp.is_some(),
        finalizers: o.finalizers().to_vec(),
    }
}

/// Runs the collector over `resources`.
pub async fn run(client: kube::Client, resources: Vec<Deletable>, workers: usize) {
    let gc = Arc::new(Gc {
        client: client.clone(),
        resources,
        graph: Mutex::default(),
        queue: Mutex::default(),
        notify: Notify::new(),
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Event<DynamicObject>)>();
    for (i, r) in gc.resources.iter().enumerate() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &r.resource);
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut s =
                std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
            while let Some(ev) = s.next().await {
                match ev {
                    Ok(ev) => {
                        if tx.send((i, ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => debug!(error = %e, "garbage collector watch failed; retrying"),
                }
            }
        });
    }
    drop(tx);
    // Graph builder: applies events, queues work; workers start once every
    // resource has been listed.
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel::<()>();
    let builder = {
        let gc = gc.clone();
        let mut synced_tx = Some(synced_tx);
        tokio::spawn(async move {
            let mut synced: HashSet<usize> = HashSet::new();
            let mut listing: Vec<Vec<Item>> = vec![Vec::new(); gc.resources.len()];
            let total = gc.resources.len();
            let mut started = false;
            while let Some((i, ev)) = rx.recv().await {
                let work = {
                    let mut g = gc.graph.lock().expect("graph");
                    match ev {
                        Event::Apply(o) => g.upsert(item_of(i, &o)),
                        Event::Delete(o) => g.remove(&o.uid().unwrap_or_default()),
                        Event::Init => {
                            listing[i].clear();
                            Vec::new()
                        }
                        Event::InitApply(o) => {
                            listing[i].push(item_of(i, &o));
                            Vec::new()
                        }
                        Event::InitDone => {
                            synced.insert(i);
                            listing[i].drain(..).flat_map(|it| g.upsert(it)).collect()
                        }
                    }
                };
                gc.push(work);
                if !started && synced.len() == total {
                    started = true;
                    info!(
                        objects = gc.graph.lock().expect("graph").len(),
                        resources = total,
                        "garbage collector synced"
                    );
                    if let Some(t) = synced_tx.take() {
                        let _ = t.send(());
                    }
                    // Objects whose owners never appeared.
                    let all: Vec<Work> = {
                        let g = gc.graph.lock().expect("graph");
                        orphans(&g)
                    };
                    gc.push(all);
                }
            }
        })
    };
    if synced_rx.await.is_err() {
        return;
    }
    for _ in 0..workers.max(1) {
        let gc = gc.clone();
        tokio::spawn(async move {
            loop {
                let next = {
                    let mut q = gc.queue.lock().expect("queue");
                    let w = q.0.pop();
                    if let Some(w) = &w {
                        q.1.remove(w);
                    }
                    w
                };
                match next {
                    Some(w) => {
                        if let Err(e) = gc.process(&w).await {
                            debug!(error = %e, work = ?w, "garbage collection failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            gc.push(vec![w]);
                        }
                    }
                    None => {
                        let n = gc.notify.notified();
                        if gc.queue.lock().expect("queue").0.is_empty() {
                            n.await;
                        }
                    }
                }
            }
        });
    }
    let _ = builder.await;
}

/// Every object with owners, to check once after the initial sync.
fn orphans(g: &Graph) -> Vec<Work> {
    g.all_with_owners()
        .into_iter()
        .map(Work::AttemptToDelete)
        .collect()
}

impl Gc {
    fn push(&self, work: Vec<Work>) {
        if work.is_empty() {
            return;
        }
        let mut q = self.queue.lock().expect("queue");
        for w in work {
            if q.1.insert(w.clone()) {
                q.0.insert(0, w);
            }
        }
        drop(q);
        self.notify.notify_waiters();
    }

    fn api(&self, item: &Item) -> Api<DynamicObject> {
        let ar = &self.resources[item.resource].resource;
        match &item.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        }
    }

    /// Whether an owner is really gone (a live GET, not the cache).
    async fn owner_absent(
        &self,
        item: &Item,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Result<bool, kube::Error> {
        let Some(res) = self
            .resources
            .iter()
            .find(|d| d.resource.api_version == r.api_version && d.resource.kind == r.kind)
        else {
            // A kind this server does not serve: treat as absent, as
            // upstream does for unresolvable owners.
            return Ok(true);
        };
        let ar: &ApiResource = &res.resource;
        let api: Api<DynamicObject> = match (&item.namespace, res.namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, ar),
            _ => Api::all_with(self.client.clone(), ar),
        };
        match api.get_opt(&r.name).await? {
            None => Ok(true),
            Some(o) => Ok(o.uid().as_deref() != Some(r.uid.as_str())),
        }
    }

    async fn process(&self, w: &Work) -> Result<(), kube::Error> {
        match w {
            Work::AttemptToDelete(uid) => self.attempt_to_delete(uid).await,
            Work::Orphan(uid) => self.orphan(uid).await,
        }
    }

    async fn attempt_to_delete(&self, uid: &str) -> Result<(), kube::Error> {
        let Some(item) = self.graph.lock().expect("graph").get(uid).cloned() else {
            return Ok(());
        };
        let mut absent = HashSet::new();
        if !item.deleting_dependents() {
            for r in &item.owners {
                let known = self.graph.lock().expect("graph").get(&r.uid).is_some();
                if !known && self.owner_absent(&item, r).await? {
                    absent.insert(r.uid.clone());
                }
            }
        }
        let decision = decide(&self.graph.lock().expect("graph"), &item, &absent);
        let api = self.api(&item);
        match decision {
            Decision::Nothing => Ok(()),
            Decision::RemoveRefs(gone) => {
                let refs: Vec<_> = item
                    .owners
                    .iter()
                    .filter(|r| !gone.contains(&r.uid))
                    .cloned()
                    .collect();
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": item.uid}});
                ok_if_gone(
                    api.patch(&item.name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ()),
                )
            }
            Decision::Delete(policy) => {
                info!(object = %format!("{}/{}", item.namespace.as_deref().unwrap_or(""), item.name), kind = %self.resources[item.resource].resource.kind, policy, "deleting object whose owners are gone");
                let dp = DeleteParams {
                    propagation_policy: Some(match policy {
                        "Foreground" => PropagationPolicy::Foreground,
                        "Orphan" => PropagationPolicy::Orphan,
                        _ => PropagationPolicy::Background,
                    }),
                    preconditions: Some(Preconditions {
                        uid: Some(item.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                ok_if_gone(
                    api.delete(&item.name, &dp)
                        .await
                        .map(|_| ())
                        .or_else(|e| if is_status(&e, 409) { Ok(()) } else { Err(e) }),
                )
            }
            Decision::RemoveFinalizer(f) => self.remove_finalizer(&item, f).await,
            Decision::DeleteDependents(deps) => {
                self.push(deps.into_iter().map(Work::AttemptToDelete).collect());
                Ok(())
            }
        }
    }

    async fn remove_finalizer(&self, item: &Item, f: &str) -> Result<(), kube::Error> {
        let api = self.api(item);
        let Some(cur) = api.get_opt(&item.name).await? else {
            return Ok(());
        };
        let fins: Vec<String> = cur
            .finalizers()
            .iter()
            .filter(|x| *x != f)
            .cloned()
            .collect();
        if fins.len() == cur.finalizers().len() {
            return Ok(());
        }
        let patch =
            json!({"metadata": {"finalizers": fins, "resourceVersion": cur.resource_version()}});
        ok_if_gone(
            api.patch(&item.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ()),
        )
    }

    async fn orphan(&self, uid: &str) -> Result<(), kube::Error> {
        let (item, deps) = {
            let g = self.graph.lock().expect("graph");
            let Some(item) = g.get(uid).cloned() else {
                return Ok(());
            };
            (item, g.dependents(uid))
        };
        for d in deps {
            let refs: Vec<_> = d.owners.iter().filter(|r| r.uid != uid).cloned().collect();
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": d.uid}});
            ok_if_gone(
                self.api(&d)
                    .patch(&d.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ()),
            )?;
        }
        self.remove_finalizer(&item, graph::ORPHAN).await
    }
}

fn ok_if_gone(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => {
            warn!(error = %e, "garbage collector write failed");
            Err(e)
        }
        ok => ok,
    }
}
