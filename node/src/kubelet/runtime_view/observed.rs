//! What the runtime has of one pod: its sandboxes and containers, read
//! from CRI and reduced to what the kubelet's decisions need. Everything
//! is found again from CRI labels and annotations, so it survives a
//! restart of baton-node.

use std::collections::HashMap;

use crate::cri::api as cri;
use crate::cri::labels;

/// State of a container as CRI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Exited,
    Unknown,
}

impl State {
    fn from_cri(state: i32) -> Self {
        match cri::ContainerState::try_from(state) {
            Ok(cri::ContainerState::ContainerCreated) => Self::Created,
            Ok(cri::ContainerState::ContainerRunning) => Self::Running,
            Ok(cri::ContainerState::ContainerExited) => Self::Exited,
            _ => Self::Unknown,
        }
    }
}

/// One container of the pod (any attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    /// CRI metadata attempt: the container's restart count.
    pub attempt: u32,
    pub init: bool,
    pub state: State,
    /// Nanoseconds since the epoch (0 when unset).
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// The spec hash the container was created from.
    pub hash: String,
    pub image: String,
    pub image_ref: String,
    pub log_path: String,
    pub grace_period: Option<i64>,
}

impl Container {
    /// Builds it from `ContainerStatus` (which has times and exit codes).
    #[must_use]
    pub fn from_status(status: &cri::ContainerStatus, sandbox_id: &str) -> Self {
        let annotation = |key: &str| status.annotations.get(key).cloned().unwrap_or_default();
        let metadata = status.metadata.clone().unwrap_or_default();
        Self {
            id: status.id.clone(),
            sandbox_id: sandbox_id.to_owned(),
            name: status
                .labels
                .get(labels::CONTAINER_NAME)
                .cloned()
                .unwrap_or(metadata.name),
            attempt: metadata.attempt,
            init: annotation(labels::CONTAINER_INIT) == "true",
            state: State::from_cri(status.state),
            created_at: status.created_at,
            started_at: status.started_at,
            finished_at: status.finished_at,
            exit_code: status.exit_code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            hash: annotation(labels::CONTAINER_HASH),
            image: status.image.clone().map(|i| i.image).unwrap_or_default(),
            image_ref: status.image_ref.clone(),
            log_path: status.log_path.clone(),
            grace_period: annotation(labels::POD_TERMINATION_GRACE_PERIOD)
                .parse()
                .ok(),
        }
    }
}

/// One sandbox of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub id: String,
    pub ready: bool,
    pub attempt: u32,
    pub created_at: i64,
    pub ip: Option<String>,
}

/// Everything the runtime has of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRuntime {
    /// Newest first.
    pub sandboxes: Vec<Sandbox>,
    /// Newest first.
    pub containers: Vec<Container>,
}

impl PodRuntime {
    /// The newest sandbox, which the pod's containers run in.
    #[must_use]
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandboxes.first()
    }

    /// Containers named `name` in the current sandbox, newest first.
    pub fn attempts<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Container> + 'a {
        let sandbox = self.sandbox().map(|s| s.id.clone());
        let name = name.to_owned();
        self.containers
            .iter()
            .filter(move |c| c.name == name && Some(&c.sandbox_id) == sandbox.as_ref())
    }

    /// The newest container named `name` in any sandbox (restart counts
    /// and last states carry over a sandbox change).
    #[must_use]
    pub fn latest_any(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The newest container named `name` in the current sandbox.
    #[must_use]
    pub fn latest(&self, name: &str) -> Option<&Container> {
        self.attempts(name).next()
    }

    /// Whether anything of the pod still runs.
    #[must_use]
    pub fn anything_running(&self) -> bool {
        self.sandboxes.iter().any(|s| s.ready)
            || self.containers.iter().any(|c| c.state == State::Running)
    }

    /// Groups sandboxes and containers by pod UID label.
    #[must_use]
    pub fn group(
        sandboxes: &[cri::PodSandbox],
        sandbox_ips: &HashMap<String, String>,
        containers: &[(cri::ContainerStatus, String)],
    ) -> HashMap<String, Self> {
        let mut pods: HashMap<String, Self> = HashMap::new();
        for sandbox in sandboxes {
            let Some(uid) = sandbox.labels.get(labels::POD_UID) else {
                continue;
            };
            pods.entry(uid.clone())
                .or_default()
                .sandboxes
                .push(Sandbox {
                    id: sandbox.id.clone(),
                    ready: sandbox.state == cri::PodSandboxState::SandboxReady as i32,
                    attempt: sandbox.metadata.as_ref().map_or(0, |m| m.attempt),
                    created_at: sandbox.created_at,
                    ip: sandbox_ips.get(&sandbox.id).cloned(),
                });
        }
        for (status, sandbox_id) in containers {
            let Some(uid) = status.labels.get(labels::POD_UID) else {
                continue;
            };
            pods.entry(uid.clone())
                .or_default()
                .containers
                .push(Container::from_status(status, sandbox_id));
        }
        for pod in pods.values_mut() {
            pod.sandboxes
                .sort_by_key(|s| std::cmp::Reverse((s.created_at, s.attempt)));
            pod.containers
                .sort_by_key(|c| std::cmp::Reverse((c.created_at, c.attempt)));
        }
        pods
    }
}
