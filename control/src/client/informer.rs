//! Shared informers: one kube-runtime `watcher` per resource feeding a
//! reflector `Store`, whose changes are fanned out to every consumer that
//! subscribed (a controller's trigger stream, the scheduler's cache…), the
//! way client-go's shared informers serve many controllers from one watch.
//!
//! kube-runtime's own shared streams (`Writer::subscribe`) do not report
//! deletions, which the ReplicaSet expectations, the garbage collector and
//! the scheduler's cache need; so the fan-out is done here, on top of the
//! watcher and the reflector `Writer`.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::warn;

/// A change seen by an informer.
#[derive(Debug)]
pub enum Change<K> {
    /// Added (`old` None) or updated.
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    /// Deleted; the last state known.
    Deleted(Arc<K>),
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied { old, new } => Change::Applied {
                old: old.clone(),
                new: new.clone(),
            },
            Change::Deleted(o) => Change::Deleted(o.clone()),
        }
    }
}

impl<K> Change<K> {
    /// The object the change is about (the new state, or the deleted one).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Applied { new, .. } => new,
            Change::Deleted(o) => o,
        }
    }
}

type Subscribers<K> = Arc<Mutex<Vec<UnboundedSender<Change<K>>>>>;

/// One watched resource: its store and its subscribers.
pub struct Informer<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    writer: Option<reflector::store::Writer<K>>,
    subscribers: Subscribers<K>,
    api: Api<K>,
    config: watcher::Config,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over `api` (its scope: all namespaces or one) with the
    /// watch options of `config`. Nothing runs until [`Informer::spawn`].
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        let writer = reflector::store::Writer::<K>::default();
        Informer {
            store: writer.as_reader(),
            writer: Some(writer),
            subscribers: Arc::default(),
            api,
            config,
        }
    }

    /// The cache of the watched objects.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Every later change, starting with the initial list.
    pub fn subscribe(&self) -> UnboundedReceiver<Change<K>> {
        let (tx, rx) = unbounded_channel();
        self.subscribers.lock().expect("subscribers").push(tx);
        rx
    }

    /// Starts the watch (a task that lives as long as the runtime).
    pub fn spawn(&mut self) {
        let Some(writer) = self.writer.take() else {
            return;
        };
        let stream = watcher(self.api.clone(), self.config.clone());
        let subscribers = self.subscribers.clone();
        tokio::spawn(run(stream, writer, subscribers));
    }
}

fn watcher<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher::watcher(api, config).default_backoff()
}

/// Applies each watch event to the store and tells the subscribers what
/// changed. On a (re)list, objects that vanished meanwhile are reported
/// deleted, like client-go's DeltaFIFO `Replace`.
async fn run<K, S>(stream: S, mut writer: reflector::store::Writer<K>, subscribers: Subscribers<K>)
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let reader = writer.as_reader();
    let mut listed: Vec<K> = Vec::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                warn!(error = %e, kind = %K::kind(&()), "watch failed; retrying");
                continue;
            }
        };
        let mut changes = Vec::new();
        match &ev {
            Event::Apply(o) => {
                let old = reader.get(&ObjectRef::from_obj(o));
                changes.push(Change::Applied {
                    old,
                    new: Arc::new(o.clone()),
                });
            }
            Event::Delete(o) => changes.push(Change::Deleted(Arc::new(o.clone()))),
            Event::Init => listed.clear(),
            Event::InitApply(o) => listed.push(o.clone()),
            Event::InitDone => {
                let mut before: HashMap<ObjectRef<K>, Arc<K>> = reader
                    .state()
                    .into_iter()
                    .map(|o| (ObjectRef::from_obj(&*o), o))
                    .collect();
                for o in listed.drain(..) {
                    let old = before.remove(&ObjectRef::from_obj(&o));
                    changes.push(Change::Applied {
                        old,
                        new: Arc::new(o),
                    });
                }
                changes.extend(before.into_values().map(Change::Deleted));
            }
        }
        writer.apply_watcher_event(&ev);
        if changes.is_empty() {
            continue;
        }
        let mut subs = subscribers.lock().expect("subscribers");
        subs.retain(|tx| changes.iter().all(|c| tx.send(c.clone()).is_ok()));
    }
}

/// Waits until `store` holds its first full list; false when its writer
/// is gone. Several tasks may wait on one store at once: kube-runtime's
/// `Store::wait_until_ready` wakes only the task that polled it last (its
/// readiness is a oneshot channel with one waker), so each wait here polls
/// again at short intervals instead of relying on being woken.
pub async fn synced<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    loop {
        let wait = store.wait_until_ready();
        match tokio::time::timeout(std::time::Duration::from_millis(100), wait).await {
            Ok(ready) => return ready.is_ok(),
            Err(_) => continue,
        }
    }
}

/// A subscription as the trigger stream kube-runtime's `Controller`
/// (`for_stream`, `watches_stream`) takes.
pub fn objects<K: Clone + Send + Sync + 'static>(
    rx: UnboundedReceiver<Change<K>>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    tokio_stream_from(rx).map(|c| Ok((**c.object()).clone()))
}

/// The receiver as a stream.
pub fn tokio_stream_from<T: Send + 'static>(
    mut rx: UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Informers of different kinds, started together (`&mut dyn Start`).
pub trait Start {
    /// Starts the informer's watch; a second call does nothing.
    fn start(&mut self);
}

impl<K> Start for Informer<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    fn start(&mut self) {
        self.spawn();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ObjectMeta;

    fn pod(name: &str, rv: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn relist_reports_updates_and_vanished_objects() {
        let writer = reflector::store::Writer::<Pod>::default();
        let reader = writer.as_reader();
        let subs: Subscribers<Pod> = Arc::default();
        let (tx, mut rx) = unbounded_channel();
        subs.lock().unwrap().push(tx);
        let events = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(pod("a", "1"))),
            Ok(Event::InitApply(pod("b", "1"))),
            Ok(Event::InitDone),
            Ok(Event::Apply(pod("a", "2"))),
            // Relist after a broken watch: b vanished.
            Ok(Event::Init),
            Ok(Event::InitApply(pod("a", "3"))),
            Ok(Event::InitDone),
        ];
        run(futures::stream::iter(events), writer, subs).await;
        let mut seen = Vec::new();
        while let Ok(c) = rx.try_recv() {
            seen.push(match c {
                Change::Applied { old, new } => format!(
                    "apply {} {}<-{}",
                    new.metadata.name.as_deref().unwrap(),
                    new.metadata.resource_version.as_deref().unwrap(),
                    old.and_then(|o| o.metadata.resource_version.clone())
                        .unwrap_or_default()
                ),
                Change::Deleted(o) => format!("delete {}", o.metadata.name.as_deref().unwrap()),
            });
        }
        assert_eq!(
            seen,
            vec![
                "apply a 1<-",
                "apply b 1<-",
                "apply a 2<-1",
                "apply a 3<-2",
                "delete b"
            ]
        );
        assert_eq!(reader.state().len(), 1);
    }
}
