//! Stopping containers: one at a time with its `Killing` event, preStop
//! hook and grace period, or all of a pod's, sidecars last.

use std::time::{Duration, Instant};

use baton_apimachinery::events::EventType;
use k8s_openapi::api::core::v1::Pod;

use super::hooks::run_hook;
use crate::kubelet::pod_spec::{self, Role};
use crate::kubelet::runtime_view::observed::{Container, PodRuntime, State};
use crate::kubelet::{Context, KubeletError};

/// The minimum time a container gets to stop (the kubelet's).
const MIN_GRACE: Duration = Duration::from_secs(2);

/// Stops one container: `Killing` event, its preStop hook, then CRI stop
/// with what is left of the grace period (at least 2 s).
pub(super) async fn kill_container(
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
    if let Some((spec, _)) = pod_spec::find_container(pod, name)
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
pub(super) async fn stop_all(
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
    let sidecars: Vec<String> = pod_spec::containers(pod)
        .filter(|(_, role)| *role == Role::Sidecar)
        .map(|(c, _)| c.name.clone())
        .collect();
    let started = Instant::now();
    let grace_of = |c: &Container| {
        grace
            .or(c.grace_period)
            .unwrap_or(pod_spec::DEFAULT_GRACE_SECONDS)
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
