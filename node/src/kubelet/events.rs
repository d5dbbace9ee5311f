//! Events about pods, written as core/v1 Events the way the kubelet's
//! recorder writes them (`source.component: kubelet`, `source.host`,
//! involved object with the container's `fieldPath`), so
//! `kubectl describe pod` and `kubectl get events` show them.
//!
//! As client-go's broadcaster, one task writes them in order in the
//! background: an event never holds up the pod it is about. Repeats are
//! counted on the first event, too many similar ones combined, and too
//! many of one object dropped ([`super::event_correlator`]).

use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use super::event_correlator::{Correlator, Write};
use super::spec;

/// Events waiting to be written; more are dropped, as client-go's
/// broadcaster drops them (`maxQueuedEvents`).
const QUEUE: usize = 1000;

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// Writes Events for one node.
#[derive(Clone)]
pub struct Recorder {
    node: String,
    queue: mpsc::Sender<Event>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    #[must_use]
    pub fn new(client: Client, node: String) -> Self {
        let (queue, events) = mpsc::channel(QUEUE);
        tokio::spawn(write_all(client, events));
        Self { node, queue }
    }

    /// Records an event about `pod` (and its container `container`, if
    /// any). Failures are logged, never returned: events are best effort.
    pub async fn record(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: Kind,
        reason: &str,
        message: &str,
    ) {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let now = Timestamp::now();
        let field_path = container.map(|name| {
            spec::find_container(pod, name)
                .map_or(spec::Role::App, |(_, role)| role)
                .field_path(name)
        });
        let event = Event {
            metadata: ObjectMeta {
                // `<pod>.<hex nanoseconds>` like client-go's recorder.
                name: Some(format!("{pod_name}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod_name.clone()),
                namespace: Some(namespace.clone()),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                field_path,
            },
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            type_: Some(
                match kind {
                    Kind::Normal => "Normal",
                    Kind::Warning => "Warning",
                }
                .into(),
            ),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        if self.queue.try_send(event).is_err() {
            tracing::warn!(pod = %pod_name, %reason, "too many events waiting: one dropped");
        }
    }
}

/// Writes the queued events one after the other, correlated.
async fn write_all(client: Client, mut events: mpsc::Receiver<Event>) {
    let mut correlator = Correlator::default();
    while let Some(event) = events.recv().await {
        let write = correlator.correlate(event, Instant::now());
        let (event, patched) = match write {
            Write::Drop => continue,
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
                Ok(_) => continue,
                // Gone (deleted, or expired): written anew below.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(err) => {
                    tracing::warn!(%err, %reason, "could not update an event");
                    continue;
                }
            }
        }
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                correlator.written(&event, created.metadata.name.as_deref().unwrap_or_default());
            }
            Err(err) => tracing::warn!(%err, %reason, "could not record an event"),
        }
    }
}
