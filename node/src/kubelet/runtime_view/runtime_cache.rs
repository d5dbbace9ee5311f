//! What CRI said about a pod's sandboxes and containers, kept while it
//! cannot have changed: a ready sandbox's IP is fixed for the sandbox's
//! life, and a container's status (times, exit code, reason, image) is
//! fixed while its state is. A pod's sync lists its sandboxes and
//! containers (two calls) and asks for the status of only what is new or
//! changed state, instead of one more call per sandbox and per container
//! every second.

use std::collections::{HashMap, HashSet};

use crate::cri::api as cri;

/// Sandbox IPs and container statuses by ID, each with its pod's UID.
#[derive(Debug, Default)]
pub struct RuntimeCache {
    sandbox_ips: HashMap<String, (String, String)>,
    containers: HashMap<String, (String, cri::ContainerStatus)>,
}

impl RuntimeCache {
    /// The IP of ready sandbox `id`, if known.
    #[must_use]
    pub fn sandbox_ip(&self, id: &str) -> Option<String> {
        self.sandbox_ips.get(id).map(|(_, ip)| ip.clone())
    }

    pub fn remember_sandbox_ip(&mut self, uid: &str, id: &str, ip: &str) {
        self.sandbox_ips
            .insert(id.to_owned(), (uid.to_owned(), ip.to_owned()));
    }

    /// The status of `listed`, if it was read in the state the list shows.
    #[must_use]
    pub fn container_status(&self, listed: &cri::Container) -> Option<cri::ContainerStatus> {
        self.containers
            .get(&listed.id)
            .filter(|(_, status)| status.state == listed.state)
            .map(|(_, status)| status.clone())
    }

    pub fn remember_container_status(&mut self, uid: &str, status: &cri::ContainerStatus) {
        self.containers
            .insert(status.id.clone(), (uid.to_owned(), status.clone()));
    }

    /// Forgets everything of pod `uid` (its worker has finished).
    pub fn forget_pod(&mut self, uid: &str) {
        self.retain_listed(uid, &HashSet::new(), &HashSet::new());
    }

    /// Forgets what pod `uid` no longer has: sandboxes not in
    /// `ready_sandboxes`, containers not in `containers`.
    pub fn retain_listed(
        &mut self,
        uid: &str,
        ready_sandboxes: &HashSet<&str>,
        containers: &HashSet<&str>,
    ) {
        self.sandbox_ips
            .retain(|id, (owner, _)| owner != uid || ready_sandboxes.contains(id.as_str()));
        self.containers
            .retain(|id, (owner, _)| owner != uid || containers.contains(id.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, state: cri::ContainerState) -> cri::Container {
        cri::Container {
            id: id.into(),
            state: state as i32,
            ..Default::default()
        }
    }

    fn status(id: &str, state: cri::ContainerState) -> cri::ContainerStatus {
        cri::ContainerStatus {
            id: id.into(),
            state: state as i32,
            started_at: 42,
            ..Default::default()
        }
    }

    #[test]
    fn a_status_is_reused_only_while_the_state_is_the_same() {
        let mut cache = RuntimeCache::default();
        let running = cri::ContainerState::ContainerRunning;
        let exited = cri::ContainerState::ContainerExited;
        assert_eq!(cache.container_status(&listed("c1", running)), None);
        cache.remember_container_status("pod-a", &status("c1", running));
        assert_eq!(
            cache.container_status(&listed("c1", running)),
            Some(status("c1", running))
        );
        assert_eq!(
            cache.container_status(&listed("c1", exited)),
            None,
            "an exit must be read again"
        );
    }

    #[test]
    fn what_a_pod_no_longer_lists_is_forgotten_and_other_pods_are_kept() {
        let mut cache = RuntimeCache::default();
        let running = cri::ContainerState::ContainerRunning;
        cache.remember_sandbox_ip("pod-a", "s1", "10.244.1.5");
        cache.remember_sandbox_ip("pod-b", "s2", "10.244.1.6");
        cache.remember_container_status("pod-a", &status("c1", running));
        cache.remember_container_status("pod-b", &status("c2", running));

        cache.forget_pod("pod-a");
        assert_eq!(cache.sandbox_ip("s1"), None);
        assert_eq!(cache.container_status(&listed("c1", running)), None);
        assert_eq!(cache.sandbox_ip("s2").as_deref(), Some("10.244.1.6"));
        assert!(cache.container_status(&listed("c2", running)).is_some());

        cache.retain_listed("pod-b", &HashSet::from(["s2"]), &HashSet::from(["c2"]));
        assert_eq!(cache.sandbox_ip("s2").as_deref(), Some("10.244.1.6"));
        assert!(cache.container_status(&listed("c2", running)).is_some());
    }
}
