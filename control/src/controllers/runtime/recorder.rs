//! Events as client-go's recorder writes them (core/v1 Event, which is what
//! `kubectl describe` and `kubectl get events` show): named
//! `<object>.<hex unix nanos>`, with `source.component`, `reportingComponent`,
//! and repeats of the same (object, type, reason, message) folded into one
//! Event whose `count` and `lastTimestamp` are bumped (the EventCorrelator).
//! Writes happen on a background task through a bounded queue that drops
//! when full, so a burst of events never slows the caller.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::debug;

use super::time::now;

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Record {
    pub object: ObjectReference,
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

/// Records events for one component (e.g. `default-scheduler`,
/// `replicaset-controller`). Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Record>,
}

/// The reference of an object, as in `involvedObject`.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: None,
    }
}

impl Recorder {
    /// Starts the writer task for `component`.
    pub fn new(client: kube::Client, component: &str) -> Recorder {
        let (tx, rx) = mpsc::channel(1000);
        tokio::spawn(write_events(client, component.to_string(), rx));
        Recorder { tx }
    }

    /// Records an event about `obj` (dropped if the queue is full).
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.record(Record {
            object: reference(obj),
            type_,
            reason: reason.into(),
            message: message.into(),
        });
    }

    /// Records an event about a referenced object.
    pub fn record(&self, r: Record) {
        if self.tx.try_send(r).is_err() {
            debug!("event queue full; event dropped");
        }
    }
}

type Key = (String, String, String, &'static str, String, String);

fn key(r: &Record) -> Key {
    (
        r.object.namespace.clone().unwrap_or_default(),
        r.object.kind.clone().unwrap_or_default(),
        r.object
            .uid
            .clone()
            .unwrap_or_else(|| r.object.name.clone().unwrap_or_default()),
        r.type_.as_str(),
        r.reason.clone(),
        r.message.clone(),
    )
}

/// The Event object first written for a record.
pub fn new_event(r: &Record, component: &str, host: &str) -> Event {
    let ns = r
        .object
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let t = now();
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                r.object.name.clone().unwrap_or_default(),
                nanos
            )),
            namespace: Some(ns),
            ..Default::default()
        },
        involved_object: r.object.clone(),
        reason: Some(r.reason.clone()),
        message: Some(r.message.clone()),
        type_: Some(r.type_.as_str().into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: (!host.is_empty()).then(|| host.into()),
        }),
        first_timestamp: Some(t.clone()),
        last_timestamp: Some(t),
        count: Some(1),
        reporting_component: Some(component.into()),
        reporting_instance: Some(if host.is_empty() {
            component.into()
        } else {
            format!("{component}-{host}")
        }),
        ..Default::default()
    }
}

/// Events written at once (the API server sees at most this many event
/// writes in flight from one component).
const WRITERS: usize = 4;

type Seen = std::sync::Mutex<HashMap<Key, (String, String, i32, Instant)>>;

async fn write_events(client: kube::Client, component: String, rx: mpsc::Receiver<Record>) {
    // Events already written: key → (namespace, name, count, when).
    let seen: Seen = std::sync::Mutex::new(HashMap::new());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let (seen, host, component, client) = (&seen, &host, &component, &client);
    super::informer::tokio_stream_from_bounded(rx)
        .for_each_concurrent(WRITERS, |r| async move {
            write_one(client, component, host, seen, r).await
        })
        .await;
}

async fn write_one(client: &kube::Client, component: &str, host: &str, seen: &Seen, r: Record) {
    let k = key(&r);
    let repeat = {
        let mut m = seen.lock().expect("seen");
        if m.len() > 4096 {
            m.retain(|_, v| v.3.elapsed() < Duration::from_secs(600));
        }
        match m.get_mut(&k) {
            Some((ns, name, count, when)) if when.elapsed() < Duration::from_secs(600) => {
                *count += 1;
                *when = Instant::now();
                Some((ns.clone(), name.clone(), *count))
            }
            _ => None,
        }
    };
    if let Some((ns, name, count)) = repeat {
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        let patch = serde_json::json!({"count": count, "lastTimestamp": now()});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return,
            Err(e) => debug!(error = %e, "patching event failed; writing a new one"),
        }
    }
    let ev = new_event(&r, component, host);
    let ns = ev.namespace().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &ev).await {
        Ok(created) => {
            seen.lock()
                .expect("seen")
                .insert(k, (ns, created.name_any(), 1, Instant::now()));
        }
        Err(e) => debug!(error = %e, reason = %r.reason, "writing event failed"),
    }
}
