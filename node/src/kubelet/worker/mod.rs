//! A pod's worker: what it keeps between syncs of its pod
//! ([`WorkerState`]), what wakes it ([`Wake`]), when it syncs again
//! ([`next_sync`]), and one sync ([`sync`]): read what the runtime has of
//! the pod, decide ([`actions::compute`]), act through CRI, keep its
//! volumes and probes current, and write its status. Each step is a module
//! of its own:
//!
//! - [`runtime_read`]: reusing the last read of the pod's runtime state or
//!   reading it again;
//! - [`execute`]: carrying out the plan (kills, removals, the sandbox),
//!   with [`sandbox`] creating sandboxes and [`start`] starting containers
//!   in order (init containers, sidecars, ephemeral containers, back-off);
//! - [`container_start`]: one container's creation and start, with
//!   [`image`] pulls, its [`container_env`] environment and [`hooks`];
//! - [`stop`]: stopping containers with preStop hooks and grace periods;
//!   [`termination`]: ending a pod, and removing a deleted one from the API;
//! - [`volume_refresh`], [`probe_wiring`] and [`status_write`]: keeping
//!   volumes, probes and the pod's status current.

mod container_env;
mod container_start;
mod execute;
mod hooks;
mod image;
mod probe_wiring;
mod runtime_read;
mod sandbox;
mod start;
mod status_write;
mod stop;
mod termination;
mod volume_refresh;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_apimachinery::events::EventType;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;

pub use self::probe_wiring::probe_failed;
pub use self::termination::terminate;
use super::actions::{self, PodActions};
use super::metrics::PodStartup;
use super::pod_config::volumes;
use super::pod_spec;
use super::probes;
use super::status;
use super::{Context, KubeletError};

/// How soon a pod is synced again, without a change, when its last sync
/// left something undone: a container waiting (back-off, an image or a
/// configuration error), an action taken whose outcome is to be checked,
/// or a failed sync.
pub const RETRY: Duration = Duration::from_secs(1);
/// How often a settled pod (nothing to do, nothing waiting) is synced
/// without a change. Changes wake its worker at once — of the pod in the
/// API, of its sandboxes and containers (the relist), of a probe result —
/// so this only catches what no event reports (the kubelet's
/// `syncFrequency`, a minute there).
pub const RESYNC: Duration = Duration::from_secs(10);

/// What a worker keeps between syncs of its pod.
#[derive(Debug)]
pub struct WorkerState {
    pub notify: Arc<Notify>,
    pub failures_tx: tokio::sync::mpsc::UnboundedSender<probes::Failure>,
    pub failures_rx: tokio::sync::mpsc::UnboundedReceiver<probes::Failure>,
    waiting: HashMap<String, (String, String)>,
    last_volume_refresh: Option<Instant>,
    /// The pod's labels and annotations its volumes were last written for.
    volumes_written_for: Option<volumes::PodMetadata>,
    volume_paths: HashMap<String, PathBuf>,
    /// Containers whose probes this worker started.
    probed: HashSet<String>,
    last_status: Option<k8s_openapi::api::core::v1::PodStatus>,
    /// The pod's resourceVersion after that write.
    last_written_version: Option<String>,
    /// What this worker last read of the pod from CRI.
    observed: Option<runtime_read::Observed>,
    /// The pod's startup, for the startup metrics (set at the first sync).
    startup: Option<PodStartup>,
    /// Set once the pod has been terminated and removed.
    pub finished: bool,
    /// What woke the worker for this sync.
    pub wake: Wake,
    /// How long after this sync the next one comes when nothing wakes the
    /// worker earlier ([`next_sync`]).
    pub next_sync: Duration,
}

impl WorkerState {
    #[must_use]
    pub fn new() -> Self {
        let (failures_tx, failures_rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            notify: Arc::new(Notify::new()),
            failures_tx,
            failures_rx,
            waiting: HashMap::new(),
            last_volume_refresh: None,
            volumes_written_for: None,
            volume_paths: HashMap::new(),
            probed: HashSet::new(),
            last_status: None,
            last_written_version: None,
            observed: None,
            startup: None,
            finished: false,
            wake: Wake::PodChanged,
            next_sync: RETRY,
        }
    }

    /// What a change of the pod in the API is to the worker: its own
    /// status write coming back (the watch shows the version that write
    /// made), or a change by someone else.
    #[must_use]
    pub fn wake_for(&self, pod: Option<&Pod>) -> Wake {
        match (pod, &self.last_written_version) {
            (Some(pod), Some(written))
                if pod.metadata.resource_version.as_ref() == Some(written) =>
            {
                Wake::Event
            }
            _ => Wake::PodChanged,
        }
    }
}

/// What wakes a pod's worker, which decides whether its sync reads the
/// pod's runtime state from CRI again or reuses its last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The worker's first sync, or a change of the pod in the API by
    /// someone else: the runtime is read afresh.
    PodChanged,
    /// The kubelet's own status write coming back through the watch, the
    /// relist seeing the pod's sandboxes or containers change, or a probe
    /// result: the last read is reused unless a relist made since saw the
    /// pod otherwise. Whatever changes in the runtime after a read, the
    /// relist that sees it wakes the worker again, as the kubelet's PLEG
    /// does; upstream's workers never read the runtime themselves.
    Event,
    /// The periodic resync: the last read is reused only if a relist made
    /// since saw the pod the same.
    Resync,
}

impl Wake {
    /// Whether something changed rather than the period ran out.
    #[must_use]
    pub fn changed(self) -> bool {
        self != Wake::Resync
    }
}

impl Default for WorkerState {
    fn default() -> Self {
        Self::new()
    }
}

/// Syncs `pod` once.
pub async fn sync(ctx: &Context, pod: &Pod, state: &mut WorkerState) -> Result<(), KubeletError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    state
        .startup
        .get_or_insert_with(|| PodStartup::new(pod))
        .observed(&ctx.metrics, pod);
    // Probe failures the worker has not reported yet.
    while let Ok(f) = state.failures_rx.try_recv() {
        probe_wiring::probe_failed(ctx, pod, &f);
    }
    let runtime = runtime_read::current_runtime(ctx, &uid, state).await?;
    if pod.metadata.deletion_timestamp.is_some() {
        return termination::finish_deleted(ctx, pod, &runtime, state).await;
    }

    let now = Timestamp::now();
    let known = state.last_status.as_ref().or(pod.status.as_ref());
    let phase = status::phase(pod, known, &runtime, now);
    let deadline_left = status::active_deadline_left(pod, known, now);
    if status::deadline_reached(pod, known, now) {
        // The kubelet's active deadline handler: the pod fails, and its
        // containers are stopped as for any finished pod.
        ctx.recorder.record(
            pod,
            None,
            EventType::Normal,
            status::DEADLINE_EXCEEDED,
            status::DEADLINE_EXCEEDED_MESSAGE,
        );
    }
    let probed = ctx.probe_results(&runtime);
    let plan = actions::compute(pod, &runtime, status::is_terminal(phase), &probed);
    if plan != PodActions::default() {
        // The runtime is about to change: a sync that fails half-way must
        // not reuse the read from before it.
        state.observed = None;
    }
    execute::execute(ctx, pod, &runtime, &plan, state).await?;
    let runtime = if plan == PodActions::default() {
        runtime
    } else {
        runtime_read::read_runtime(ctx, &uid, state).await?
    };
    let refreshing = !status::is_terminal(phase) && volumes::refreshed(pod);
    if refreshing {
        volume_refresh::refresh_volumes(ctx, pod, &runtime, state).await;
    }
    probe_wiring::keep_probes(ctx, pod, &runtime, state);
    status_write::write_status(ctx, pod, &runtime, state).await?;
    let settled = plan == PodActions::default() && state.waiting.is_empty();
    let refresh_due = state
        .last_volume_refresh
        .filter(|_| refreshing)
        .map(|at| volume_refresh::VOLUME_REFRESH.saturating_sub(at.elapsed()));
    let deadline_due = deadline_left.filter(|_| !status::is_terminal(phase));
    state.next_sync = next_sync(settled, [refresh_due, deadline_due]);
    Ok(())
}

/// When a pod is synced again if nothing wakes its worker: soon when its
/// last sync left something undone ([`RETRY`]), otherwise at the periodic
/// [`RESYNC`]; earlier when something falls due (its volumes' refresh,
/// its active deadline), though not sooner than a [`RETRY`].
#[must_use]
pub fn next_sync(settled: bool, due: impl IntoIterator<Item = Option<Duration>>) -> Duration {
    let periodic = if settled { RESYNC } else { RETRY };
    due.into_iter()
        .flatten()
        .fold(periodic, |next, due| next.min(due.max(RETRY)))
}

/// [`pod_spec::pod_ip`] with this node's address; empty when there is none yet.
fn pod_ip(ctx: &Context, pod: &Pod, sandbox_ip: Option<&str>) -> String {
    pod_spec::pod_ip(pod, sandbox_ip, &ctx.host_ip).unwrap_or_default()
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn a_settled_pod_waits_for_the_resync_or_what_falls_due() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(next_sync(true, [None, None]), RESYNC);
        assert_eq!(next_sync(false, [None, None]), RETRY);
        // Volumes due in 3 s, or a deadline in 2 s, bring the settled
        // pod's sync forward…
        assert_eq!(next_sync(true, [secs(3), None]), Duration::from_secs(3));
        assert_eq!(next_sync(true, [secs(3), secs(2)]), Duration::from_secs(2));
        // …but never closer than a retry, nor later than one when
        // something is left undone.
        assert_eq!(next_sync(true, [Some(Duration::ZERO), None]), RETRY);
        assert_eq!(next_sync(false, [secs(3), secs(2)]), RETRY);
    }

    #[test]
    fn only_the_version_of_its_own_status_write_is_an_echo_to_the_worker() {
        let pod = |version: &str| Pod {
            metadata: ObjectMeta {
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut state = WorkerState::new();
        assert_eq!(state.wake_for(Some(&pod("7"))), Wake::PodChanged);
        state.last_written_version = Some("7".into());
        assert_eq!(state.wake_for(Some(&pod("7"))), Wake::Event);
        // Someone else's write after the kubelet's.
        assert_eq!(state.wake_for(Some(&pod("9"))), Wake::PodChanged);
        assert_eq!(state.wake_for(None), Wake::PodChanged);
        assert!(Wake::Event.changed() && Wake::PodChanged.changed());
        assert!(!Wake::Resync.changed());
    }
}
