//! The ConfigMaps and Secrets this node's pods mount or read into their
//! environment, kept current by one watch per object
//! (`fieldSelector=metadata.name=<name>` in its namespace), as the
//! kubelet's watch-based manager keeps them
//! (`ConfigMapAndSecretChangeDetectionStrategy: Watch`): a volume refresh
//! or a container's start reads them from memory instead of asking the API
//! server, and a change wakes the workers of the pods that use the object
//! at once.
//!
//! A watch starts with the first pod that uses the object and stops when
//! the last one is torn down ([`Sources::release`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;

use crate::kubelet::wakers::Wakers;

/// How long a lookup waits for the first list of a newly watched object.
const FIRST_LIST: Duration = Duration::from_secs(10);

/// What a source holds: its keys and their bytes (`data` and
/// `binaryData` of a ConfigMap; `data` and `stringData` of a Secret).
pub type SourceData = BTreeMap<String, Vec<u8>>;

/// The two kinds of sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        }
    }
}

/// A watched object: `(kind, namespace, name)`.
type Key = (Kind, String, String);

/// The object as its watch last listed or saw it: `None` until the first
/// list; then `Some(None)` when it does not exist.
type Latest = Option<Option<Arc<SourceData>>>;

/// A lookup failed.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {namespace}/{name}: no answer from its watch within {FIRST_LIST:?}")]
pub struct NotListed {
    kind: &'static str,
    namespace: String,
    name: String,
}

struct Entry {
    latest: watch::Receiver<Latest>,
    /// UIDs of the pods that use it.
    users: HashSet<String>,
    task: tokio::task::AbortHandle,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// Pods whose sources changed since their volumes were last written.
    changed: HashSet<String>,
}

/// The watched sources of the node's pods.
#[derive(Clone)]
pub struct Sources {
    client: Client,
    wakers: Arc<Wakers>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

impl Sources {
    /// Sources read through `client`; a change wakes the pod workers in
    /// `wakers`.
    #[must_use]
    pub fn new(client: Client, wakers: Arc<Wakers>) -> Self {
        Self {
            client,
            wakers,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current contents of a source pod `uid` uses (`None`: the
    /// object does not exist), from its watch, started here if it is the
    /// first pod to use it.
    pub async fn get(
        &self,
        uid: &str,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SourceData>>, NotListed> {
        let key = (kind, namespace.to_owned(), name.to_owned());
        let mut latest = {
            let mut state = self.state();
            let entry = match state.entries.entry(key.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(self.watch(key)),
            };
            entry.users.insert(uid.to_owned());
            entry.latest.clone()
        };
        let listed = tokio::time::timeout(FIRST_LIST, latest.wait_for(Option::is_some)).await;
        match listed {
            Ok(Ok(value)) => Ok(value.clone().flatten()),
            _ => Err(NotListed {
                kind: kind.as_str(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
        }
    }

    /// Whether a source of pod `uid` changed since the last call (which
    /// clears it).
    pub fn take_changed(&self, uid: &str) -> bool {
        self.state().changed.remove(uid)
    }

    /// Pod `uid` uses nothing any more: watches no pod needs stop.
    pub fn release(&self, uid: &str) {
        let mut state = self.state();
        state.changed.remove(uid);
        state.entries.retain(|_, entry| {
            entry.users.remove(uid);
            if entry.users.is_empty() {
                entry.task.abort();
            }
            !entry.users.is_empty()
        });
    }

    /// Starts the watch of `key`.
    fn watch(&self, key: Key) -> Entry {
        let (tx, rx) = watch::channel(None);
        let (kind, namespace, name) = key.clone();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let client = self.client.clone();
        let sources = self.clone();
        let task = tokio::spawn(async move {
            let events = match kind {
                Kind::ConfigMap => {
                    contents(Api::namespaced(client, &namespace), config, config_map_data)
                }
                Kind::Secret => contents(Api::namespaced(client, &namespace), config, secret_data),
            };
            let mut listing = Listing::default();
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        if let Some(now) = listing.observe(event) {
                            sources.publish(&key, &tx, now);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(kind = kind.as_str(), %namespace, %name, %err, "watching a ConfigMap or Secret pods use");
                    }
                }
            }
        });
        Entry {
            latest: rx,
            users: HashSet::new(),
            task: task.abort_handle(),
        }
    }

    /// Records what the watch of `key` now shows; when it differs from
    /// before, marks the pods that use it changed and wakes them.
    fn publish(&self, key: &Key, tx: &watch::Sender<Latest>, now: Option<Arc<SourceData>>) {
        let first = tx.borrow().is_none();
        let differs = tx.send_if_modified(|latest| {
            let modified = latest.as_ref() != Some(&now);
            *latest = Some(now);
            modified
        });
        if first || !differs {
            return;
        }
        let users: Vec<String> = {
            let mut state = self.state();
            let users: Vec<String> = state
                .entries
                .get(key)
                .map(|e| e.users.iter().cloned().collect())
                .unwrap_or_default();
            state.changed.extend(users.iter().cloned());
            users
        };
        let wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        for uid in users {
            if let Some(waker) = wakers.get(&uid) {
                waker.notify_one();
            }
        }
    }
}

/// One object's watch events folded into what it is now: a value once
/// the first list is complete, and on every change after it.
#[derive(Debug, Default)]
struct Listing<T> {
    /// The object seen in a list still in progress.
    pending: Option<T>,
}

impl<T> Listing<T> {
    /// The object after `event` (`Some(None)`: it does not exist), or
    /// `None` while a list is in progress.
    fn observe(&mut self, event: watcher::Event<T>) -> Option<Option<T>> {
        match event {
            watcher::Event::Init => {
                self.pending = None;
                None
            }
            watcher::Event::InitApply(object) => {
                self.pending = Some(object);
                None
            }
            watcher::Event::InitDone => Some(self.pending.take()),
            watcher::Event::Apply(object) => Some(Some(object)),
            watcher::Event::Delete(_) => Some(None),
        }
    }
}

/// The watch events of `api`'s objects under `config`, each object
/// turned into its contents by `data`.
fn contents<K>(
    api: Api<K>,
    config: watcher::Config,
    data: fn(&K) -> SourceData,
) -> BoxStream<'static, watcher::Result<watcher::Event<Arc<SourceData>>>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let data = move |object: K| Arc::new(data(&object));
    watcher(api, config)
        .default_backoff()
        .map(move |event| {
            event.map(|event| match event {
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitApply(object) => watcher::Event::InitApply(data(object)),
                watcher::Event::InitDone => watcher::Event::InitDone,
                watcher::Event::Apply(object) => watcher::Event::Apply(data(object)),
                watcher::Event::Delete(object) => watcher::Event::Delete(data(object)),
            })
        })
        .boxed()
}

/// A ConfigMap's keys: `data` as UTF-8 bytes and `binaryData`.
#[must_use]
pub fn config_map_data(cm: &ConfigMap) -> SourceData {
    let mut data: SourceData = cm
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.clone().unwrap_or_default() {
        data.insert(k, v.0);
    }
    data
}

/// A Secret's keys: `data` and `stringData`.
#[must_use]
pub fn secret_data(s: &Secret) -> SourceData {
    let mut data: SourceData = s
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in s.string_data.clone().unwrap_or_default() {
        data.insert(k, v.into_bytes());
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_shows_the_object_after_each_list_and_change() {
        let mut listing = Listing::default();
        assert_eq!(listing.observe(watcher::Event::Init), None);
        assert_eq!(listing.observe(watcher::Event::InitApply(1)), None);
        assert_eq!(listing.observe(watcher::Event::InitDone), Some(Some(1)));
        assert_eq!(listing.observe(watcher::Event::Apply(2)), Some(Some(2)));
        assert_eq!(listing.observe(watcher::Event::Delete(2)), Some(None));
        // A relist (after a lost watch) that finds nothing: gone.
        assert_eq!(listing.observe(watcher::Event::Init), None);
        assert_eq!(listing.observe(watcher::Event::InitDone), Some(None));
    }

    #[test]
    fn configmap_and_secret_keys_are_bytes() {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "data": {"a": "1"}, "binaryData": {"b": "Ag=="},
        }))
        .unwrap();
        assert_eq!(
            config_map_data(&cm),
            SourceData::from([("a".into(), b"1".to_vec()), ("b".into(), vec![2])])
        );
        let s: Secret = serde_json::from_value(serde_json::json!({
            "data": {"k": "eA=="}, "stringData": {"s": "y"},
        }))
        .unwrap();
        assert_eq!(
            secret_data(&s),
            SourceData::from([("k".into(), b"x".to_vec()), ("s".into(), b"y".to_vec())])
        );
    }
}
