//! One pod's sync: read what the runtime has of it, decide
//! ([`actions::compute`]), act through CRI (sandbox, images, containers,
//! kills with preStop hooks and grace periods), keep its probes running,
//! and write its status. Deleted pods are terminated gracefully and then
//! removed from the API with grace 0, as the kubelet does.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_apimachinery::events::EventType;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container as SpecContainer, LifecycleHandler, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::Notify;

use super::actions::{self, PodActions};
use super::metrics::PodStartup;
use super::observed::{Container, PodRuntime, State};
use super::probes;
use super::sources::Kind as SourceKind;
use super::spec::{self, ContainerInputs, Role};
use super::status::{self, Extra};
use super::{Context, KubeletError, env, hosts, relist, termination, volumes};
use crate::cri::api as cri;
use crate::cri::labels;

/// The minimum time a container gets to stop (the kubelet's).
const MIN_GRACE: Duration = Duration::from_secs(2);
/// How often configMap, secret, downwardAPI and projected volumes are
/// rewritten without a change seen (a change of the pod or of a mounted
/// ConfigMap or Secret rewrites them at once).
const VOLUME_REFRESH: Duration = Duration::from_secs(60);
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
    observed: Option<Observed>,
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

/// A read of a pod's runtime state.
#[derive(Debug)]
struct Observed {
    /// When the read began.
    at: Instant,
    fingerprint: relist::Fingerprint,
    runtime: PodRuntime,
}

impl Default for WorkerState {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads the runtime state of pod `uid` from CRI: its sandboxes and
/// containers, and the status of those whose state changed since the last
/// read ([`RuntimeCache`](super::runtime_cache::RuntimeCache)).
pub async fn observe(ctx: &Context, uid: &str) -> Result<PodRuntime, KubeletError> {
    Ok(observe_pod(ctx, uid).await?.0)
}

/// [`observe`], with the pod's fingerprint as the relist computes it from
/// the same lists.
async fn observe_pod(
    ctx: &Context,
    uid: &str,
) -> Result<(PodRuntime, relist::Fingerprint), KubeletError> {
    let selector = HashMap::from([(labels::POD_UID.to_owned(), uid.to_owned())]);
    let sandboxes = ctx
        .cri
        .list_pod_sandboxes(Some(cri::PodSandboxFilter {
            label_selector: selector.clone(),
            ..Default::default()
        }))
        .await?;
    let cache = || {
        ctx.runtime_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let mut ips = HashMap::new();
    for s in &sandboxes {
        if s.state != cri::PodSandboxState::SandboxReady as i32 {
            continue;
        }
        let known = cache().sandbox_ip(&s.id);
        let ip = match known {
            Some(ip) => ip,
            None => match ctx.cri.pod_sandbox_status(&s.id).await {
                Ok(status) => {
                    let Some(net) = status.network else { continue };
                    cache().remember_sandbox_ip(uid, &s.id, &net.ip);
                    net.ip
                }
                Err(_) => continue,
            },
        };
        ips.insert(s.id.clone(), ip);
    }
    let listed = ctx
        .cri
        .list_containers(Some(cri::ContainerFilter {
            label_selector: selector,
            ..Default::default()
        }))
        .await?;
    let mut containers = Vec::with_capacity(listed.len());
    for c in &listed {
        let known = cache().container_status(c);
        let status = match known {
            Some(status) => status,
            None => match ctx.cri.container_status(&c.id).await {
                Ok(mut status) => {
                    termination::add_message(&mut status);
                    cache().remember_container_status(uid, &status);
                    status
                }
                Err(err) if err.is_not_found() => continue,
                Err(err) => return Err(err.into()),
            },
        };
        containers.push((status, c.pod_sandbox_id.clone()));
    }
    cache().retain_listed(
        uid,
        &ips.keys().map(String::as_str).collect(),
        &listed.iter().map(|c| c.id.as_str()).collect(),
    );
    let fingerprint = relist::fingerprints(&sandboxes, &listed)
        .remove(uid)
        .unwrap_or_default();
    let mut grouped = PodRuntime::group(&sandboxes, &ips, &containers);
    Ok((grouped.remove(uid).unwrap_or_default(), fingerprint))
}

/// The runtime state of the pod as its worker last read it, when what woke
/// the worker allows it ([`Wake`]); read from CRI otherwise.
async fn current_runtime(
    ctx: &Context,
    uid: &str,
    state: &mut WorkerState,
) -> Result<PodRuntime, KubeletError> {
    if let Some(seen) = &state.observed {
        let relist = ctx
            .relist
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let reuse = match state.wake {
            Wake::PodChanged => false,
            Wake::Event => !relist.contradicts(uid, &seen.fingerprint, seen.at),
            Wake::Resync => relist.unchanged(uid, &seen.fingerprint, seen.at),
        };
        if reuse {
            return Ok(seen.runtime.clone());
        }
    }
    read_runtime(ctx, uid, state).await
}

/// Reads the pod's runtime state from CRI and remembers it.
async fn read_runtime(
    ctx: &Context,
    uid: &str,
    state: &mut WorkerState,
) -> Result<PodRuntime, KubeletError> {
    let at = Instant::now();
    let (runtime, fingerprint) = observe_pod(ctx, uid).await?;
    state.observed = Some(Observed {
        at,
        fingerprint,
        runtime: runtime.clone(),
    });
    Ok(runtime)
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
        probe_failed(ctx, pod, &f);
    }
    let runtime = current_runtime(ctx, &uid, state).await?;
    if pod.metadata.deletion_timestamp.is_some() {
        terminate(ctx, pod, &runtime, state, Some(spec::grace_seconds(pod))).await?;
        write_status(ctx, pod, &observe(ctx, &uid).await?, state).await?;
        let api: Api<Pod> = Api::namespaced(
            ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(err) => return Err(KubeletError::api("delete pod")(err)),
        }
        state.finished = true;
        return Ok(());
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
    execute(ctx, pod, &runtime, &plan, state).await?;
    let runtime = if plan == PodActions::default() {
        runtime
    } else {
        read_runtime(ctx, &uid, state).await?
    };
    let refreshing = !status::is_terminal(phase) && volumes::refreshed(pod);
    if refreshing {
        refresh_volumes(ctx, pod, &runtime, state).await;
    }
    keep_probes(ctx, pod, &runtime, state);
    write_status(ctx, pod, &runtime, state).await?;
    let settled = plan == PodActions::default() && state.waiting.is_empty();
    let refresh_due = state
        .last_volume_refresh
        .filter(|_| refreshing)
        .map(|at| VOLUME_REFRESH.saturating_sub(at.elapsed()));
    let deadline_due = deadline_left.filter(|_| !status::is_terminal(phase));
    state.next_sync = next_sync(settled, [refresh_due, deadline_due]);
    Ok(())
}

/// A failed probe run: the pod's `Unhealthy` event.
pub fn probe_failed(ctx: &Context, pod: &Pod, f: &probes::Failure) {
    ctx.recorder.record(
        pod,
        Some(&f.container),
        EventType::Warning,
        "Unhealthy",
        &format!("{} probe failed: {}", f.kind.as_str(), f.message),
    );
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

async fn execute(
    ctx: &Context,
    pod: &Pod,
    runtime: &PodRuntime,
    plan: &PodActions,
    state: &mut WorkerState,
) -> Result<(), KubeletError> {
    let grace = spec::grace_seconds(pod);
    let ip = pod_ip(ctx, pod, runtime.sandbox().and_then(|s| s.ip.as_deref()));
    for k in &plan.kill {
        kill_container(ctx, pod, &k.id, &k.name, &ip, grace, &k.message).await?;
        ctx.forget_probes(&k.id);
    }
    if plan.kill_pod {
        stop_all(ctx, pod, runtime, Some(grace), &ip).await?;
    }
    for id in &plan.remove_containers {
        match ctx.cri.remove_container(id).await {
            Err(err) if !err.is_not_found() => return Err(err.into()),
            _ => {}
        }
    }
    for id in &plan.remove_sandboxes {
        for c in runtime.containers.iter().filter(|c| &c.sandbox_id == id) {
            let _ = ctx.cri.remove_container(&c.id).await;
        }
        ctx.cri.stop_pod_sandbox(id).await?;
        ctx.cri.remove_pod_sandbox(id).await?;
    }
    let mut sandbox = runtime
        .sandbox()
        .filter(|s| s.ready)
        .map(|s| (s.id.clone(), pod_ip(ctx, pod, s.ip.as_deref())));
    if plan.create_sandbox {
        sandbox = Some(create_sandbox(ctx, pod, plan.sandbox_attempt, state).await?);
    }
    let Some((sandbox_id, pod_ip)) = sandbox else {
        return Ok(());
    };
    let sandbox_config = spec::sandbox_config(
        pod,
        plan.sandbox_attempt
            .max(runtime.sandbox().map_or(0, |s| s.attempt)),
        &ctx.log_dir(pod),
        &ctx.settings,
    );
    state.waiting.clear();
    for start in &plan.start {
        let Some((c, role)) = spec::find_container(pod, &start.name) else {
            continue;
        };
        // An ephemeral container joins its target's processes, so the
        // target must be running (`getTargetID`).
        let target_id = match &role {
            Role::Ephemeral {
                target: Some(target),
            } => match runtime.latest(target).filter(|t| t.state == State::Running) {
                Some(t) => Some(t.id.clone()),
                None => {
                    let err = KubeletError::TargetNotRunning {
                        name: target.clone(),
                    };
                    container_failed(
                        ctx,
                        pod,
                        &c,
                        state,
                        Some("CreateContainerConfigError"),
                        &err,
                    );
                    continue;
                }
            },
            _ => None,
        };
        if let Some(ran_for) = start.restart_after {
            let delay = ctx
                .backoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .try_start(&uid_of(pod), &c.name, Some(ran_for), Instant::now());
            if let Some(delay) = delay {
                let message = format!(
                    "back-off {}s restarting failed container={} pod={}_{}({})",
                    delay.as_secs().max(1),
                    c.name,
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    uid_of(pod)
                );
                state
                    .waiting
                    .insert(c.name.clone(), ("CrashLoopBackOff".into(), message));
                ctx.recorder.record(
                    pod,
                    Some(&c.name),
                    EventType::Warning,
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {} in pod {}",
                        c.name,
                        pod.metadata.name.as_deref().unwrap_or_default()
                    ),
                );
                if role == Role::Init {
                    break;
                }
                continue;
            }
        } else {
            // A first start also opens the backoff record.
            let _ = ctx
                .backoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .try_start(&uid_of(pod), &c.name, None, Instant::now());
        }
        if let Err(err) = start_container(
            ctx,
            pod,
            &c,
            &role,
            target_id,
            start.attempt,
            &sandbox_id,
            &pod_ip,
            &sandbox_config,
            state,
        )
        .await
        {
            tracing::warn!(pod = %pod_name(pod), container = %c.name, %err, "could not start container");
            if role == Role::Init {
                break;
            }
        }
    }
    Ok(())
}

/// [`spec::pod_ip`] with this node's address; empty when there is none yet.
fn pod_ip(ctx: &Context, pod: &Pod, sandbox_ip: Option<&str>) -> String {
    spec::pod_ip(pod, sandbox_ip, &ctx.host_ip).unwrap_or_default()
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

async fn create_sandbox(
    ctx: &Context,
    pod: &Pod,
    attempt: u32,
    state: &mut WorkerState,
) -> Result<(String, String), KubeletError> {
    let paths = match ctx.volumes.setup(pod, "", &ctx.host_ip).await {
        Ok(paths) => paths,
        Err(err) => {
            ctx.recorder.record(
                pod,
                None,
                EventType::Warning,
                "FailedMount",
                &format!("MountVolume.SetUp failed: {err}"),
            );
            return Err(err.into());
        }
    };
    state.volume_paths = paths;
    state.last_volume_refresh = Some(Instant::now());
    state.volumes_written_for = Some(volumes::PodMetadata::of(pod));
    let log_dir = ctx.log_dir(pod);
    std::fs::create_dir_all(&log_dir).map_err(|source| KubeletError::Io {
        action: "creating",
        path: log_dir.clone(),
        source,
    })?;
    let config = spec::sandbox_config(pod, attempt, &log_dir, &ctx.settings);
    let id = match ctx.cri.run_pod_sandbox(config).await {
        Ok(id) => id,
        Err(err) => {
            ctx.recorder.record(
                pod,
                None,
                EventType::Warning,
                "FailedCreatePodSandBox",
                &format!("Failed to create pod sandbox: {err}"),
            );
            return Err(err.into());
        }
    };
    let ip = ctx.cri.pod_sandbox_status(&id).await?.network.map(|n| n.ip);
    let ip = pod_ip(ctx, pod, ip.as_deref());
    ctx.metrics.pod_started();
    tracing::info!(pod = %pod_name(pod), sandbox = %id, %ip, "sandbox running");
    Ok((id, ip))
}

/// A container could not be created or started: its `Failed` event, and
/// the waiting reason its status shows until the next attempt (`None`: the
/// status shows what the runtime reports).
fn container_failed(
    ctx: &Context,
    pod: &Pod,
    c: &SpecContainer,
    state: &mut WorkerState,
    waiting_reason: Option<&str>,
    err: &KubeletError,
) {
    if let Some(reason) = waiting_reason {
        state
            .waiting
            .insert(c.name.clone(), (reason.to_owned(), err.to_string()));
    }
    ctx.recorder.record(
        pod,
        Some(&c.name),
        EventType::Warning,
        "Failed",
        &format!("Error: {err}"),
    );
}

#[allow(clippy::too_many_arguments)]
async fn start_container(
    ctx: &Context,
    pod: &Pod,
    c: &SpecContainer,
    role: &Role,
    target_id: Option<String>,
    attempt: u32,
    sandbox_id: &str,
    pod_ip: &str,
    sandbox_config: &cri::PodSandboxConfig,
    state: &mut WorkerState,
) -> Result<(), KubeletError> {
    let image = c.image.clone().unwrap_or_default();
    match ensure_image(ctx, pod, c, &image, sandbox_config).await {
        Ok(Some((start, end))) => {
            if let Some(startup) = &mut state.startup {
                startup.pulled(start, end);
            }
        }
        Ok(None) => {}
        Err(err) => {
            state
                .waiting
                .insert(c.name.clone(), ("ErrImagePull".into(), err.to_string()));
            return Err(err);
        }
    }
    let env = match resolve_env(ctx, pod, c, pod_ip).await {
        Ok(env) => env,
        Err(err) => {
            container_failed(ctx, pod, c, state, Some("CreateContainerConfigError"), &err);
            return Err(err);
        }
    };
    if state.volume_paths.is_empty()
        && pod
            .spec
            .as_ref()
            .is_some_and(|s| s.volumes.as_ref().is_some_and(|v| !v.is_empty()))
    {
        state.volume_paths = ctx.volumes.setup(pod, pod_ip, &ctx.host_ip).await?;
    }
    let mut mounts = volumes::mounts(c, &state.volume_paths)?;
    let pod_dir = ctx.volumes.pod_dir(&uid_of(pod));
    // The kubelet-managed /etc/hosts.
    mounts.extend(
        hosts::mount(pod, c, &pod_dir, pod_ip, &ctx.settings.cluster_domain).map_err(|source| {
            KubeletError::Io {
                action: "writing the hosts file in",
                path: pod_dir.clone(),
                source,
            }
        })?,
    );
    // The termination message file, as the kubelet provides it.
    let term_dir = pod_dir.join("containers").join(&c.name);
    std::fs::create_dir_all(&term_dir).map_err(|source| KubeletError::Io {
        action: "creating",
        path: term_dir.clone(),
        source,
    })?;
    let term_file = term_dir.join(format!("{attempt}"));
    std::fs::write(&term_file, b"").map_err(|source| KubeletError::Io {
        action: "creating",
        path: term_file.clone(),
        source,
    })?;
    mounts.push(cri::Mount {
        container_path: c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into()),
        host_path: term_file.display().to_string(),
        ..Default::default()
    });
    let inputs = ContainerInputs {
        attempt,
        init: matches!(role, Role::Init | Role::Sidecar),
        target_id,
        envs: env,
        mounts,
        image: image.clone(),
    };
    let config = spec::container_config(pod, c, &inputs);
    let id = match ctx
        .cri
        .create_container(sandbox_id, config, sandbox_config.clone())
        .await
    {
        Ok(id) => id,
        Err(err) => {
            let err = err.into();
            container_failed(ctx, pod, c, state, Some("CreateContainerError"), &err);
            return Err(err);
        }
    };
    ctx.recorder.record(
        pod,
        Some(&c.name),
        EventType::Normal,
        "Created",
        &format!("Created container {}", c.name),
    );
    if let Err(err) = ctx.cri.start_container(&id).await {
        let err = err.into();
        container_failed(ctx, pod, c, state, None, &err);
        return Err(err);
    }
    ctx.metrics.container_started(role);
    tracing::info!(pod = %pod_name(pod), container = %c.name, %id, "container started");
    ctx.recorder.record(
        pod,
        Some(&c.name),
        EventType::Normal,
        "Started",
        &format!("Started container {}", c.name),
    );
    if let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref())
        && let Err(message) = run_hook(ctx, &id, pod_ip, c, handler, Duration::from_secs(30)).await
    {
        ctx.recorder.record(
            pod,
            Some(&c.name),
            EventType::Warning,
            "FailedPostStartHook",
            &message,
        );
        kill_container(
            ctx,
            pod,
            &id,
            &c.name,
            pod_ip,
            spec::grace_seconds(pod),
            "FailedPostStartHook",
        )
        .await?;
    }
    Ok(())
}

/// Makes `image` present as the pull policy asks; returns when a pull ran
/// from and to.
async fn ensure_image(
    ctx: &Context,
    pod: &Pod,
    c: &SpecContainer,
    image: &str,
    sandbox_config: &cri::PodSandboxConfig,
) -> Result<Option<(Instant, Instant)>, KubeletError> {
    let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
        if image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or(image).contains(':') {
            "Always".into()
        } else {
            "IfNotPresent".into()
        }
    });
    let present = ctx.cri.image_status(image).await?.is_some();
    match policy.as_str() {
        "Never" if !present => {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            ctx.recorder.record(
                pod,
                Some(&c.name),
                EventType::Warning,
                "ErrImageNeverPull",
                &message,
            );
            return Err(KubeletError::Image {
                image: image.to_owned(),
                message,
            });
        }
        "IfNotPresent" | "Never" if present => {
            ctx.recorder.record(
                pod,
                Some(&c.name),
                EventType::Normal,
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
            );
            return Ok(None);
        }
        _ => {}
    }
    ctx.recorder.record(
        pod,
        Some(&c.name),
        EventType::Normal,
        "Pulling",
        &format!("Pulling image \"{image}\""),
    );
    let started = Instant::now();
    match ctx
        .cri
        .pull_image(image, None, Some(sandbox_config.clone()))
        .await
    {
        Ok(_) => {
            let finished = Instant::now();
            ctx.recorder.record(
                pod,
                Some(&c.name),
                EventType::Normal,
                "Pulled",
                &format!(
                    "Successfully pulled image \"{image}\" in {:.3}s",
                    (finished - started).as_secs_f64()
                ),
            );
            Ok(Some((started, finished)))
        }
        Err(err) => {
            ctx.recorder.record(
                pod,
                Some(&c.name),
                EventType::Warning,
                "Failed",
                &format!("Failed to pull image \"{image}\": {err}"),
            );
            Err(err.into())
        }
    }
}

/// The environment of container `c`, its ConfigMap and Secret
/// references read from their watches ([`super::sources::Sources`]), as
/// the kubelet's watch-based manager serves them to
/// `makeEnvironmentVariables`.
async fn resolve_env(
    ctx: &Context,
    pod: &Pod,
    c: &SpecContainer,
    pod_ip: &str,
) -> Result<Vec<(String, String)>, KubeletError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let uid = uid_of(pod);
    let (cm_names, secret_names) = env::referenced(pod);
    let mut sources = env::Sources {
        master_service: ctx.master_service.clone(),
        ..env::Sources::of_node(pod_ip, &ctx.host_ip)
    };
    let watched = &ctx.volumes.sources;
    for (kind, names, found) in [
        (SourceKind::ConfigMap, cm_names, &mut sources.config_maps),
        (SourceKind::Secret, secret_names, &mut sources.secrets),
    ] {
        for name in names {
            let contents = watched
                .get(&uid, kind, namespace, &name)
                .await
                .map_err(KubeletError::Source)?;
            if let Some(contents) = contents {
                found.insert(name, contents);
            }
        }
    }
    env::resolve(pod, c, &sources).map_err(KubeletError::Env)
}

/// The probe that runs a hook's `httpGet`, its named port resolved against
/// the container's ports as the kubelet's handler runner does.
fn http_hook_probe(
    http: &k8s_openapi::api::core::v1::HTTPGetAction,
    spec: &SpecContainer,
) -> k8s_openapi::api::core::v1::Probe {
    let probe = k8s_openapi::api::core::v1::Probe {
        http_get: Some(http.clone()),
        ..Default::default()
    };
    probes::with_named_ports(&probe, spec)
}

/// Runs a lifecycle hook of the container `spec`; `Err` carries the event
/// message.
async fn run_hook(
    ctx: &Context,
    container_id: &str,
    pod_ip: &str,
    spec: &SpecContainer,
    handler: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        return match ctx.cri.exec_sync(container_id, cmd.clone(), timeout).await {
            Ok(out) if out.exit_code == 0 => Ok(()),
            Ok(out) => Err(format!(
                "Exec lifecycle hook ({cmd:?}) for Container in Pod failed - error: command exited with {}, message: {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(err) => Err(format!(
                "Exec lifecycle hook ({cmd:?}) failed - error: {err}"
            )),
        };
    }
    if let Some(http) = &handler.http_get {
        let probe = http_hook_probe(http, spec);
        return match probes::run_once(&ctx.cri, container_id, pod_ip, &probe, timeout).await {
            probes::Outcome::Success => Ok(()),
            probes::Outcome::Failure(m) => Err(format!(
                "HTTP lifecycle hook ({}) failed - error: {m}",
                http.path.as_deref().unwrap_or("/")
            )),
        };
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(
            Duration::from_secs(u64::try_from(sleep.seconds.max(0)).unwrap_or(0)).min(timeout),
        )
        .await;
    }
    Ok(())
}

/// Stops one container: `Killing` event, its preStop hook, then CRI stop
/// with what is left of the grace period (at least 2 s).
async fn kill_container(
    ctx: &Context,
    pod: &Pod,
    id: &str,
    name: &str,
    pod_ip: &str,
    grace: i64,
    message: &str,
) -> Result<(), KubeletError> {
    let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
    let started = Instant::now();
    ctx.recorder.record(
        pod,
        Some(name),
        EventType::Normal,
        "Killing",
        &if message.is_empty() {
            format!("Stopping container {name}")
        } else {
            message.to_owned()
        },
    );
    if let Some((spec, _)) = spec::find_container(pod, name)
        && let Some(handler) = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        && !grace.is_zero()
        && let Err(m) = run_hook(ctx, id, pod_ip, &spec, handler, grace).await
    {
        ctx.recorder
            .record(pod, Some(name), EventType::Warning, "FailedPreStopHook", &m);
    }
    let left = grace.saturating_sub(started.elapsed()).max(MIN_GRACE);
    match ctx.cri.stop_container(id, left).await {
        Err(err) if !err.is_not_found() => Err(err.into()),
        _ => Ok(()),
    }
}

/// Stops every running container (app, init and ephemeral containers
/// together, then the sidecars in reverse order) and the sandboxes of a
/// pod; `grace` `None` uses what the containers recorded.
async fn stop_all(
    ctx: &Context,
    pod: &Pod,
    runtime: &PodRuntime,
    grace: Option<i64>,
    pod_ip: &str,
) -> Result<(), KubeletError> {
    let running: Vec<&Container> = runtime
        .containers
        .iter()
        .filter(|c| c.state == State::Running)
        .collect();
    // Sidecars stop after everything else, one by one in reverse order, so
    // a proxy or log shipper outlives what it serves (the kubelet's order).
    let sidecars: Vec<String> = spec::containers(pod)
        .filter(|(_, role)| *role == Role::Sidecar)
        .map(|(c, _)| c.name.clone())
        .collect();
    let started = Instant::now();
    let grace_of = |c: &Container| {
        grace
            .or(c.grace_period)
            .unwrap_or(spec::DEFAULT_GRACE_SECONDS)
    };
    let kills = running
        .iter()
        .filter(|c| !sidecars.contains(&c.name))
        .map(|c| kill_container(ctx, pod, &c.id, &c.name, pod_ip, grace_of(c), ""));
    for result in futures::future::join_all(kills).await {
        result?;
    }
    for name in sidecars.iter().rev() {
        for c in running.iter().filter(|c| &c.name == name) {
            // What is left of the pod's grace period.
            let spent = i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX);
            let left = grace_of(c).saturating_sub(spent);
            kill_container(ctx, pod, &c.id, &c.name, pod_ip, left, "").await?;
        }
    }
    for s in runtime.sandboxes.iter().filter(|s| s.ready) {
        ctx.cri.stop_pod_sandbox(&s.id).await?;
    }
    Ok(())
}

/// Stops and removes everything of a pod and its volumes.
pub async fn terminate(
    ctx: &Context,
    pod: &Pod,
    runtime: &PodRuntime,
    state: &mut WorkerState,
    grace: Option<i64>,
) -> Result<(), KubeletError> {
    let ip = pod_ip(ctx, pod, runtime.sandbox().and_then(|s| s.ip.as_deref()));
    stop_all(ctx, pod, runtime, grace, &ip).await?;
    let ids: HashSet<String> = runtime.containers.iter().map(|c| c.id.clone()).collect();
    ctx.prober.retain(&HashSet::new(), &ids);
    state.probed.clear();
    for c in &runtime.containers {
        match ctx.cri.remove_container(&c.id).await {
            Err(err) if !err.is_not_found() => return Err(err.into()),
            _ => {}
        }
    }
    for s in &runtime.sandboxes {
        ctx.cri.stop_pod_sandbox(&s.id).await?;
        ctx.cri.remove_pod_sandbox(&s.id).await?;
    }
    let uid = uid_of(pod);
    ctx.volumes.teardown(&uid)?;
    let log_dir = ctx.log_dir(pod);
    let _ = std::fs::remove_dir_all(&log_dir);
    ctx.backoff
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .forget_pod(&uid);
    Ok(())
}

async fn refresh_volumes(ctx: &Context, pod: &Pod, runtime: &PodRuntime, state: &mut WorkerState) {
    let Some(sandbox) = runtime.sandbox().filter(|s| s.ready) else {
        return;
    };
    // A mounted ConfigMap or Secret changed, the pod's labels or
    // annotations changed (downwardAPI files), or the periodic rewrite is
    // due. The pod's own status writes change nothing its volumes show.
    let sources_changed = ctx.volumes.sources.take_changed(&uid_of(pod));
    let metadata = volumes::PodMetadata::of(pod);
    let pod_changed = state.volumes_written_for.as_ref() != Some(&metadata);
    let due = state
        .last_volume_refresh
        .is_none_or(|t| t.elapsed() >= VOLUME_REFRESH);
    if !(sources_changed || pod_changed || due) {
        return;
    }
    state.last_volume_refresh = Some(Instant::now());
    state.volumes_written_for = Some(metadata);
    match ctx
        .volumes
        .setup(pod, sandbox.ip.as_deref().unwrap_or_default(), &ctx.host_ip)
        .await
    {
        Ok(paths) => state.volume_paths = paths,
        Err(err) => tracing::warn!(pod = %pod_name(pod), %err, "refreshing volumes"),
    }
}

fn keep_probes(ctx: &Context, pod: &Pod, runtime: &PodRuntime, state: &mut WorkerState) {
    let ip = pod_ip(ctx, pod, runtime.sandbox().and_then(|s| s.ip.as_deref()));
    let mut keep = HashSet::new();
    for c in runtime
        .containers
        .iter()
        .filter(|c| c.state == State::Running)
    {
        if runtime.latest(&c.name).map(|l| &l.id) != Some(&c.id) {
            continue;
        }
        // App containers and sidecars are probed; init containers run to
        // completion, and ephemeral containers are never ready.
        let Some((spec_c, Role::App | Role::Sidecar)) = spec::find_container(pod, &c.name) else {
            continue;
        };
        keep.insert(c.id.clone());
        for (kind, probe) in [
            (probes::Kind::Startup, &spec_c.startup_probe),
            (probes::Kind::Liveness, &spec_c.liveness_probe),
            (probes::Kind::Readiness, &spec_c.readiness_probe),
        ] {
            if let Some(probe) = probe {
                let probe = probes::with_named_ports(probe, &spec_c);
                let started = ctx.prober.ensure(
                    &ctx.cri,
                    &c.id,
                    &c.name,
                    &ip,
                    kind,
                    &probe,
                    Arc::clone(&state.notify),
                    state.failures_tx.clone(),
                );
                // A running container not yet ready is probed again when
                // its pod changes, not only every period, as the kubelet's
                // UpdatePodStatus triggers its readiness worker on each
                // pod sync: Ready follows the container's first listen
                // closely. The periodic resync (our PLEG relist) does not
                // trigger, so a pod that stays unready is probed at its
                // period.
                if kind == probes::Kind::Readiness
                    && state.wake.changed()
                    && !started
                    && !ctx.is_ready(&c.id)
                {
                    ctx.prober.trigger(&c.id, kind);
                }
            }
        }
        if spec_c.readiness_probe.is_none() {
            // No readiness probe: ready once running (and started).
            ctx.prober
                .results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .ready
                .insert(c.id.clone(), true);
        }
        state.probed.insert(c.id.clone());
    }
    let gone: HashSet<String> = state.probed.difference(&keep).cloned().collect();
    if !gone.is_empty() {
        ctx.prober.retain(&keep, &gone);
        state.probed.retain(|id| keep.contains(id));
    }
}

async fn write_status(
    ctx: &Context,
    pod: &Pod,
    runtime: &PodRuntime,
    state: &mut WorkerState,
) -> Result<(), KubeletError> {
    let extra = {
        let r = ctx
            .prober
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Extra {
            host_ip: ctx.host_ip.clone(),
            ready: r.ready.clone(),
            started: r.started.clone(),
            waiting: state.waiting.clone(),
        }
    };
    let mut current = pod.clone();
    if let Some(last) = &state.last_status {
        // The cache may lag our own last write, but not others' writes.
        current.status = Some(status::with_others_conditions(last, pod.status.as_ref()));
    }
    let new = status::compute(&current, runtime, &extra, Timestamp::now());
    if let Some(old) = current.status.as_ref()
        && !status::differs(old, &new)
    {
        return Ok(());
    }
    let ready = |s: Option<&k8s_openapi::api::core::v1::PodStatus>| {
        s.and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True")
    };
    let became_ready =
        (ready(Some(&new)) != ready(current.status.as_ref())).then(|| ready(Some(&new)));
    let api: Api<Pod> = Api::namespaced(
        ctx.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    // The version the status was computed from is a precondition: a
    // status replaces the conditions list whole, so a write racing someone
    // else's (a readiness gate's condition) must not drop theirs. That is
    // the newer of the watch's copy and the kubelet's own last write, which
    // the watch may not have shown yet.
    let version = newer_version(
        pod.metadata.resource_version.as_deref(),
        state.last_written_version.as_deref(),
    );
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": version},
        "status": new,
    });
    match api
        .patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(written) => {
            state.last_written_version = written.metadata.resource_version;
            let phase = |s: Option<&k8s_openapi::api::core::v1::PodStatus>| {
                s.and_then(|s| s.phase.clone()).unwrap_or_default()
            };
            if phase(Some(&new)) == "Running"
                && matches!(phase(current.status.as_ref()).as_str(), "" | "Pending")
                && let Some(startup) = &mut state.startup
            {
                startup.running(&ctx.metrics);
            }
            if let Some(ready) = became_ready {
                tracing::info!(pod = %pod_name(pod), ready, "pod status written");
            }
            state.last_status = Some(new);
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        // Written meanwhile by someone else: computed again once the watch
        // shows it (the failed sync is retried, and the change wakes it).
        Err(err) => Err(KubeletError::api("update pod status")(err)),
    }
}

/// The newer of two resourceVersions of one object (this API server's are
/// etcd revisions); the one that is there when the other is not a number.
fn newer_version<'a>(watched: Option<&'a str>, written: Option<&'a str>) -> Option<&'a str> {
    match (watched, written) {
        (Some(w), Some(o)) => match (w.parse::<u64>(), o.parse::<u64>()) {
            (Ok(a), Ok(b)) if b > a => Some(o),
            _ => Some(w),
        },
        (w, o) => w.or(o),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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

    #[test]
    fn the_status_is_written_against_the_newest_known_version() {
        assert_eq!(newer_version(Some("12"), Some("15")), Some("15"));
        assert_eq!(newer_version(Some("20"), Some("15")), Some("20"));
        assert_eq!(newer_version(Some("20"), None), Some("20"));
        assert_eq!(newer_version(None, Some("15")), Some("15"));
        assert_eq!(newer_version(Some("x"), Some("15")), Some("x"));
    }

    #[test]
    fn a_hooks_named_http_port_is_the_containers_port_of_that_name() {
        let spec = SpecContainer {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        let hook = |port: IntOrString| HTTPGetAction {
            path: Some("/shutdown".into()),
            port,
            ..Default::default()
        };
        let probe = http_hook_probe(&hook(IntOrString::String("http".into())), &spec);
        let http = probe.http_get.unwrap();
        assert_eq!(http.port, IntOrString::Int(8080));
        assert_eq!(http.path.as_deref(), Some("/shutdown"));
        let probe = http_hook_probe(&hook(IntOrString::Int(9090)), &spec);
        assert_eq!(probe.http_get.unwrap().port, IntOrString::Int(9090));
    }
}
