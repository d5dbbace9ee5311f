//! Carrying out a sync's plan ([`PodActions`]): kills, removals of
//! containers and sandboxes, a new sandbox when one is needed, then the
//! containers to start ([`start`](super::start)).

use k8s_openapi::api::core::v1::Pod;

use super::sandbox::create_sandbox;
use super::start::start_planned;
use super::stop::{kill_container, stop_all};
use super::{WorkerState, pod_ip};
use crate::kubelet::actions::PodActions;
use crate::kubelet::pod_config::cri_config;
use crate::kubelet::pod_spec;
use crate::kubelet::runtime_view::observed::PodRuntime;
use crate::kubelet::{Context, KubeletError};

/// Carries out `plan` for `pod`.
pub(super) async fn execute(
    ctx: &Context,
    pod: &Pod,
    runtime: &PodRuntime,
    plan: &PodActions,
    state: &mut WorkerState,
) -> Result<(), KubeletError> {
    let grace = pod_spec::grace_seconds(pod);
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
    let sandbox_config = cri_config::sandbox_config(
        pod,
        plan.sandbox_attempt
            .max(runtime.sandbox().map_or(0, |s| s.attempt)),
        &ctx.log_dir(pod),
        &ctx.settings,
    );
    start_planned(
        ctx,
        pod,
        runtime,
        plan,
        &sandbox_id,
        &pod_ip,
        &sandbox_config,
        state,
    )
    .await
}
