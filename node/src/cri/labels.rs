//! The labels and annotations the kubelet puts on CRI sandboxes and
//! containers — the same keys as Kubernetes' kubelet
//! (`pkg/kubelet/kuberuntime/labels.go`), so `crictl` shows familiar
//! metadata and a restarted baton-node recognises its pods from the
//! runtime alone.

use std::collections::HashMap;

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Marks the kubelet's own objects (`io.kubernetes.container.name` of a
/// sandbox is `POD`, as with the real kubelet).
pub const SANDBOX_CONTAINER_NAME: &str = "POD";
pub const KUBERNETES_MANAGED: &str = "io.kubernetes.managed-by";

pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const CONTAINER_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
pub const TERMINATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";
pub const POD_TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Whether the container is an init container (baton's own key: the real
/// kubelet looks this up in the pod spec, which may be gone after a crash).
pub const CONTAINER_INIT: &str = "io.baton.container.init";
/// The sandbox's attempt number (a new sandbox after the old one died).
pub const SANDBOX_ATTEMPT: &str = "io.baton.pod.sandboxAttempt";

/// Who the pod-level labels say a sandbox or container belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

impl PodRef {
    /// Reads the pod labels; `None` when the object is not the kubelet's.
    #[must_use]
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            uid: labels.get(POD_UID)?.clone(),
            namespace: labels.get(POD_NAMESPACE)?.clone(),
            name: labels.get(POD_NAME)?.clone(),
        })
    }

    /// The pod labels of a sandbox or container.
    #[must_use]
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (POD_UID.to_owned(), self.uid.clone()),
            (POD_NAMESPACE.to_owned(), self.namespace.clone()),
            (POD_NAME.to_owned(), self.name.clone()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_labels_round_trip() {
        let pod = PodRef {
            uid: "u-1".into(),
            namespace: "ns".into(),
            name: "p".into(),
        };
        assert_eq!(PodRef::from_labels(&pod.labels()), Some(pod));
        assert_eq!(PodRef::from_labels(&HashMap::new()), None);
    }
}
