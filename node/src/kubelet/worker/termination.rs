//! Ending a pod: everything of it stopped and removed (sandboxes,
//! containers, probes, volumes, logs, back-off records), and for a pod
//! deleted in the API, its final status written and the pod removed with
//! grace 0, as the kubelet does.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};

use super::status_write::write_status;
use super::stop::stop_all;
use super::{WorkerState, pod_ip, uid_of};
use crate::kubelet::pod_spec;
use crate::kubelet::runtime_view::observed::PodRuntime;
use crate::kubelet::runtime_view::read;
use crate::kubelet::{Context, KubeletError};

/// A pod deleted in the API: stops everything of it within its grace
/// period, writes its final status and removes it from the API.
pub(super) async fn finish_deleted(
    ctx: &Context,
    pod: &Pod,
    runtime: &PodRuntime,
    state: &mut WorkerState,
) -> Result<(), KubeletError> {
    let uid = uid_of(pod);
    terminate(ctx, pod, runtime, state, Some(pod_spec::grace_seconds(pod))).await?;
    write_status(
        ctx,
        pod,
        &read::observe(&ctx.cri, &ctx.runtime_cache, &uid).await?,
        state,
    )
    .await?;
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
