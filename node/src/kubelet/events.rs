//! Events about pods, written as core/v1 Events the way the kubelet's
//! recorder writes them (`source.component: kubelet`, `source.host` and
//! `reportingInstance` the node, involved object with the container's
//! `fieldPath`), so `kubectl describe pod` and `kubectl get events` show
//! them.
//!
//! The shared client-go recorder ([`baton_apimachinery::events`]) writes
//! them in order from one background task: an event never holds up the pod
//! it is about; repeats are counted on the first event, too many similar
//! ones combined, and too many of one object dropped.

use baton_apimachinery::events::{self, EventType, Record, Reporter};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::Client;

use super::pod_spec;

/// The component the kubelet's events come from.
pub const COMPONENT: &str = "kubelet";

/// Writes Events for one node.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: events::Recorder,
}

impl Recorder {
    /// Starts the writer task (one writer: events keep their order).
    #[must_use]
    pub fn new(client: Client, node: String) -> Self {
        let reporter = Reporter {
            component: COMPONENT.into(),
            host: node.clone(),
            instance: node,
        };
        Self {
            inner: events::Recorder::new(client, reporter, 1),
        }
    }

    /// Records an event about `pod` (and its container `container`, if
    /// any). Failures are logged, never returned: events are best effort.
    pub fn record(
        &self,
        pod: &Pod,
        container: Option<&str>,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        self.inner.record(Record {
            object: involved_object(pod, container),
            type_,
            reason: reason.to_owned(),
            message: message.to_owned(),
        });
    }
}

/// The pod, and with a container its `fieldPath`
/// (`spec.initContainers{setup}`).
fn involved_object(pod: &Pod, container: Option<&str>) -> ObjectReference {
    let mut object = events::reference(pod);
    object.field_path = container.map(|name| {
        pod_spec::find_container(pod, name)
            .map_or(pod_spec::Role::App, |(_, role)| role)
            .field_path(name)
    });
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn the_involved_object_is_the_pod_and_its_container() {
        let container = |name: &str| Container {
            name: name.into(),
            ..Default::default()
        };
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                resource_version: Some("3".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![container("app")],
                init_containers: Some(vec![container("setup")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let object = involved_object(&pod, None);
        assert_eq!(object.api_version.as_deref(), Some("v1"));
        assert_eq!(object.kind.as_deref(), Some("Pod"));
        assert_eq!(object.name.as_deref(), Some("web"));
        assert_eq!(object.namespace.as_deref(), Some("shop"));
        assert_eq!(object.uid.as_deref(), Some("u1"));
        assert_eq!(object.resource_version.as_deref(), Some("3"));
        assert_eq!(object.field_path, None);
        assert_eq!(
            involved_object(&pod, Some("app")).field_path.as_deref(),
            Some("spec.containers{app}")
        );
        assert_eq!(
            involved_object(&pod, Some("setup")).field_path.as_deref(),
            Some("spec.initContainers{setup}")
        );
    }
}
