//! The node-wide relist (the kubelet's PLEG): once a second, two CRI calls
//! list every sandbox and container of the node; a pod whose sandboxes or
//! containers changed (one appeared, went away, or changed state) has its
//! worker woken at once. A worker reuses what it last read of its pod
//! unless the relist has seen the pod otherwise since (its periodic sync
//! only if a relist since saw it the same), so a node of quiet pods costs
//! the runtime two calls a second, not several per pod, and a starting pod
//! is not read again for each of its own status writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cri::api as cri;
use crate::cri::labels;
use crate::cri::{Cri, CriError};
use crate::kubelet::wakers::Wakers;

/// How often the runtime is relisted (the kubelet's PLEG period).
pub const PERIOD: Duration = Duration::from_secs(1);

/// What a pod has in the runtime, comparable over time: `(kind/id, state)`
/// of its sandboxes and containers, sorted. IDs are never reused and
/// states only move forward, so two equal fingerprints mean nothing
/// happened in between.
pub type Fingerprint = Vec<(String, i32)>;

/// The fingerprints of every pod in `sandboxes` and `containers`, by UID.
#[must_use]
pub fn fingerprints(
    sandboxes: &[cri::PodSandbox],
    containers: &[cri::Container],
) -> HashMap<String, Fingerprint> {
    let mut pods: HashMap<String, Fingerprint> = HashMap::new();
    let sandboxes = sandboxes
        .iter()
        .map(|s| (&s.labels, format!("sandbox/{}", s.id), s.state));
    let containers = containers
        .iter()
        .map(|c| (&c.labels, format!("container/{}", c.id), c.state));
    for (labels, key, state) in sandboxes.chain(containers) {
        if let Some(uid) = labels.get(labels::POD_UID) {
            pods.entry(uid.clone()).or_default().push((key, state));
        }
    }
    for fingerprint in pods.values_mut() {
        fingerprint.sort();
    }
    pods
}

/// The latest relist.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// When its list calls were made (`None`: no relist yet).
    pub started: Option<Instant>,
    pub pods: HashMap<String, Fingerprint>,
}

impl Snapshot {
    /// Whether pod `uid` is known to be as `fingerprint` describes: a
    /// relist made after `since` saw exactly that.
    #[must_use]
    pub fn unchanged(&self, uid: &str, fingerprint: &Fingerprint, since: Instant) -> bool {
        self.made_after(since) && self.saw(uid, fingerprint)
    }

    /// Whether a relist made after `since` saw pod `uid` otherwise than
    /// `fingerprint` describes.
    #[must_use]
    pub fn contradicts(&self, uid: &str, fingerprint: &Fingerprint, since: Instant) -> bool {
        self.made_after(since) && !self.saw(uid, fingerprint)
    }

    fn made_after(&self, since: Instant) -> bool {
        self.started.is_some_and(|started| started > since)
    }

    /// Whether this relist saw pod `uid` as `fingerprint` (a pod it did not
    /// see has an empty one).
    fn saw(&self, uid: &str, fingerprint: &Fingerprint) -> bool {
        self.pods
            .get(uid)
            .map_or(fingerprint.is_empty(), |seen| seen == fingerprint)
    }
}

/// UIDs whose fingerprint differs between `old` and `new` (appeared,
/// changed or gone).
#[must_use]
pub fn changed(
    old: &HashMap<String, Fingerprint>,
    new: &HashMap<String, Fingerprint>,
) -> Vec<String> {
    let appeared_or_changed = new
        .iter()
        .filter(|(uid, fingerprint)| old.get(*uid) != Some(fingerprint))
        .map(|(uid, _)| uid.clone());
    let gone = old.keys().filter(|uid| !new.contains_key(*uid)).cloned();
    appeared_or_changed.chain(gone).collect()
}

/// Relists every [`PERIOD`] until the process ends, keeping the latest
/// in `snapshot` and waking the workers of pods that changed.
pub async fn run(cri: Cri, snapshot: Arc<Mutex<Snapshot>>, wakers: Arc<Wakers>) {
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = relist_once(&cri, &snapshot, &wakers).await {
            tracing::warn!(%err, "relisting the runtime");
        }
    }
}

async fn relist_once(
    cri: &Cri,
    snapshot: &Mutex<Snapshot>,
    wakers: &Wakers,
) -> Result<(), CriError> {
    let started = Instant::now();
    let sandboxes = cri.list_pod_sandboxes(None).await?;
    let containers = cri.list_containers(None).await?;
    let pods = fingerprints(&sandboxes, &containers);
    let changed = {
        let mut snapshot = snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = changed(&snapshot.pods, &pods);
        *snapshot = Snapshot {
            started: Some(started),
            pods,
        };
        changed
    };
    let wakers = wakers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for uid in changed {
        if let Some(waker) = wakers.get(&uid) {
            waker.notify_one();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(uid: &str, id: &str, state: cri::PodSandboxState) -> cri::PodSandbox {
        cri::PodSandbox {
            id: id.into(),
            state: state as i32,
            labels: HashMap::from([(labels::POD_UID.to_owned(), uid.to_owned())]),
            ..Default::default()
        }
    }

    fn container(uid: &str, id: &str, state: cri::ContainerState) -> cri::Container {
        cri::Container {
            id: id.into(),
            state: state as i32,
            labels: HashMap::from([(labels::POD_UID.to_owned(), uid.to_owned())]),
            ..Default::default()
        }
    }

    #[test]
    fn a_state_change_an_addition_and_a_removal_are_changes() {
        let ready = cri::PodSandboxState::SandboxReady;
        let running = cri::ContainerState::ContainerRunning;
        let exited = cri::ContainerState::ContainerExited;
        let before = fingerprints(
            &[
                sandbox("a", "s1", ready),
                sandbox("b", "s2", ready),
                sandbox("c", "s3", ready),
            ],
            &[container("a", "c1", running), container("b", "c2", running)],
        );
        let after = fingerprints(
            &[
                sandbox("a", "s1", ready),
                sandbox("b", "s2", ready),
                sandbox("d", "s4", ready),
            ],
            &[container("a", "c1", running), container("b", "c2", exited)],
        );
        let mut changed = changed(&before, &after);
        changed.sort();
        assert_eq!(changed, ["b", "c", "d"]);
    }

    #[test]
    fn a_pod_is_unchanged_only_by_a_later_relist_that_saw_the_same() {
        let running = cri::ContainerState::ContainerRunning;
        let pods = fingerprints(&[], &[container("a", "c1", running)]);
        let seen = pods["a"].clone();
        let read_at = Instant::now();
        let later = Snapshot {
            started: Some(read_at + Duration::from_millis(1)),
            pods: pods.clone(),
        };
        assert!(later.unchanged("a", &seen, read_at));
        assert!(!later.unchanged("a", &Fingerprint::new(), read_at));
        let earlier = Snapshot {
            started: Some(read_at),
            pods,
        };
        assert!(
            !earlier.unchanged("a", &seen, read_at),
            "not newer than the read"
        );
        assert!(!Snapshot::default().unchanged("a", &seen, read_at));
        // A pod the runtime has nothing of is unchanged while it still has
        // nothing.
        assert!(later.unchanged("z", &Fingerprint::new(), read_at));
    }

    #[test]
    fn only_a_later_relist_that_saw_otherwise_contradicts_a_read() {
        let running = cri::ContainerState::ContainerRunning;
        let exited = cri::ContainerState::ContainerExited;
        let read_at = Instant::now();
        let seen = fingerprints(&[], &[container("a", "c1", running)])["a"].clone();
        let relist = |started, state| Snapshot {
            started: Some(started),
            pods: fingerprints(&[], &[container("a", "c1", state)]),
        };
        let later = read_at + Duration::from_millis(1);
        assert!(relist(later, exited).contradicts("a", &seen, read_at));
        assert!(!relist(later, running).contradicts("a", &seen, read_at));
        // A relist from before the read (the worker's own start of the
        // container is newer than what it saw) contradicts nothing, nor
        // does no relist at all.
        assert!(!relist(read_at, exited).contradicts("a", &seen, read_at));
        assert!(!Snapshot::default().contradicts("a", &seen, read_at));
        // The pod gone from a later relist contradicts a read that saw it.
        assert!(relist(later, running).contradicts("z", &seen, read_at));
    }
}
