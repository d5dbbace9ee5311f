//! Events about pods, written as core/v1 Events the way the kubelet's
//! recorder writes them (`source.component: kubelet`, `source.host`,
//! involved object with the container's `fieldPath`), so
//! `kubectl describe pod` and `kubectl get events` show them.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, PostParams};

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// Writes Events for one node.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    node: String,
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
        Self { client, node }
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
            let init = pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|i| i.iter().any(|c| c.name == name));
            if init {
                format!("spec.initContainers{{{name}}}")
            } else {
                format!("spec.containers{{{name}}}")
            }
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
        // Written in the background, as the kubelet's recorder does: an
        // event never holds up the pod it is about.
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let reason = reason.to_owned();
        tokio::spawn(async move {
            if let Err(err) = api.create(&PostParams::default(), &event).await {
                tracing::warn!(%err, pod = %pod_name, %reason, "could not record an event");
            }
        });
    }
}
