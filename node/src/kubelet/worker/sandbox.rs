//! Creating a pod's sandbox: its volumes and log directory first, then
//! CRI `RunPodSandbox`, and the address the sandbox got.

use std::time::Instant;

use baton_apimachinery::events::EventType;
use k8s_openapi::api::core::v1::Pod;

use super::{WorkerState, pod_ip, pod_name};
use crate::kubelet::pod_config::{cri_config, volumes};
use crate::kubelet::{Context, KubeletError};

/// Creates the sandbox of attempt `attempt`; returns its ID and the pod's
/// address.
pub(super) async fn create_sandbox(
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
    let config = cri_config::sandbox_config(pod, attempt, &log_dir, &ctx.settings);
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
