//! The recorder: builds core/v1 Events as client-go's `recorderImpl` does
//! (named `<object>.<hex unix nanos>`, in the object's namespace or
//! `default` for a cluster-scoped one, with `source`, `reportingComponent`
//! and `reportingInstance`), queues them without ever blocking the caller,
//! and writes them from a background task after the [`Correlator`] has
//! folded repeats into counts, combined similar ones and dropped spam.

use std::sync::Mutex;
use std::time::Instant;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::warn;

use super::correlator::{Correlator, Write};

/// Events waiting to be written; more are dropped, as client-go's
/// broadcaster drops them (`maxQueuedEvents`).
const QUEUE: usize = 1000;

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// The Event's `type`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Who writes the events: `source.component` and `reportingComponent`,
/// `source.host` (none when empty) and `reportingInstance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    pub component: String,
    pub host: String,
    pub instance: String,
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Record {
    pub object: ObjectReference,
    pub type_: EventType,
    pub reason: String,
    pub message: String,
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

/// The Event first written for a record made at `now`.
#[must_use]
pub fn new_event(r: &Record, reporter: &Reporter, now: Timestamp) -> Event {
    let namespace = r
        .object
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let name = r.object.name.as_deref().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace),
            ..Default::default()
        },
        involved_object: r.object.clone(),
        reason: Some(r.reason.clone()),
        message: Some(r.message.clone()),
        type_: Some(r.type_.as_str().into()),
        source: Some(EventSource {
            component: Some(reporter.component.clone()),
            host: (!reporter.host.is_empty()).then(|| reporter.host.clone()),
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some(reporter.component.clone()),
        reporting_instance: Some(reporter.instance.clone()),
        ..Default::default()
    }
}

/// Records events for one component. Cheap to clone; every clone feeds the
/// same writer task.
#[derive(Clone)]
pub struct Recorder {
    reporter: Reporter,
    queue: mpsc::Sender<Event>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("reporter", &self.reporter)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts the writer task, which writes up to `writers` events at once
    /// (one writes them strictly in order). Needs a tokio runtime.
    #[must_use]
    pub fn new(client: Client, reporter: Reporter, writers: usize) -> Recorder {
        let (queue, events) = mpsc::channel(QUEUE);
        tokio::spawn(write_all(client, events, writers.max(1)));
        Recorder { reporter, queue }
    }

    /// Records an event about `obj`.
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

    /// Records an event about a referenced object. Never waits: when too
    /// many are queued the event is dropped, as events are best effort.
    pub fn record(&self, r: Record) {
        let event = new_event(&r, &self.reporter, Timestamp::now());
        if self.queue.try_send(event).is_err() {
            warn!(
                object = r.object.name.as_deref().unwrap_or_default(),
                reason = %r.reason,
                "too many events waiting: one dropped"
            );
        }
    }
}

/// Correlates the queued events in order and writes what that leaves.
async fn write_all(client: Client, events: mpsc::Receiver<Event>, writers: usize) {
    let correlator = Mutex::new(Correlator::default());
    let (client, correlator) = (&client, &correlator);
    ReceiverStream::new(events)
        .filter_map(|event| {
            let write = correlator
                .lock()
                .expect("correlator lock")
                .correlate(event, Instant::now());
            futures::future::ready((!matches!(write, Write::Drop)).then_some(write))
        })
        .for_each_concurrent(writers, |write| write_one(client, correlator, write))
        .await;
}

async fn write_one(client: &Client, correlator: &Mutex<Correlator>, write: Write) {
    let (event, patched) = match write {
        Write::Drop => return,
        Write::Create(event) => (event, None),
        Write::Patch { name, patch, event } => (event, Some((name, patch))),
    };
    let api: Api<Event> = Api::namespaced(
        client.clone(),
        event.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let reason = event.reason.clone().unwrap_or_default();
    if let Some((name, patch)) = patched {
        match api
            .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => return,
            // Gone (deleted, or expired): written anew below.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(err) => {
                warn!(%err, %reason, "could not update an event");
                return;
            }
        }
    }
    match api.create(&PostParams::default(), &event).await {
        Ok(created) => correlator
            .lock()
            .expect("correlator lock")
            .written(&event, created.metadata.name.as_deref().unwrap_or_default()),
        Err(err) => warn!(%err, %reason, "could not record an event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::api::core::v1::Pod;

    fn reporter(host: &str, instance: &str) -> Reporter {
        Reporter {
            component: "replicaset-controller".into(),
            host: host.into(),
            instance: instance.into(),
        }
    }

    #[test]
    fn an_event_is_named_after_its_object_and_carries_its_reporter() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                resource_version: Some("7".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let record = Record {
            object: reference(&pod),
            type_: EventType::Warning,
            reason: "FailedCreate".into(),
            message: "quota".into(),
        };
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let e = new_event(
            &record,
            &reporter("cp-1", "replicaset-controller-cp-1"),
            now,
        );
        assert_eq!(
            e.metadata.name.as_deref(),
            Some(format!("web.{:x}", now.as_nanosecond()).as_str())
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("shop"));
        let object = &e.involved_object;
        assert_eq!(object.api_version.as_deref(), Some("v1"));
        assert_eq!(object.kind.as_deref(), Some("Pod"));
        assert_eq!(object.uid.as_deref(), Some("u1"));
        assert_eq!(object.resource_version.as_deref(), Some("7"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reason.as_deref(), Some("FailedCreate"));
        assert_eq!(e.message.as_deref(), Some("quota"));
        assert_eq!(e.count, Some(1));
        assert_eq!(e.first_timestamp, Some(Time(now)));
        assert_eq!(e.last_timestamp, Some(Time(now)));
        let source = e.source.unwrap();
        assert_eq!(source.component.as_deref(), Some("replicaset-controller"));
        assert_eq!(source.host.as_deref(), Some("cp-1"));
        assert_eq!(
            e.reporting_component.as_deref(),
            Some("replicaset-controller")
        );
        assert_eq!(
            e.reporting_instance.as_deref(),
            Some("replicaset-controller-cp-1")
        );
    }

    #[test]
    fn a_cluster_scoped_object_has_its_events_in_default_and_no_host_is_none() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let record = Record {
            object: reference(&node),
            type_: EventType::Normal,
            reason: "RegisteredNode".into(),
            message: "registered".into(),
        };
        let e = new_event(
            &record,
            &reporter("", "replicaset-controller"),
            Timestamp::now(),
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(e.involved_object.namespace, None);
        assert_eq!(e.involved_object.kind.as_deref(), Some("Node"));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.source.unwrap().host, None);
    }
}
