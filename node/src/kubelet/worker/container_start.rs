//! Creating and starting one container: its image, environment, volume
//! mounts, `/etc/hosts` and termination message file, the CRI create and
//! start calls, their events, and its postStart hook.

use std::time::Duration;

use baton_apimachinery::events::EventType;
use k8s_openapi::api::core::v1::{Container as SpecContainer, Pod};

use super::container_env::resolve_env;
use super::hooks::run_hook;
use super::image::ensure_image;
use super::stop::kill_container;
use super::{WorkerState, pod_name, uid_of};
use crate::cri::api as cri;
use crate::kubelet::pod_config::cri_config::{self, ContainerInputs};
use crate::kubelet::pod_config::{hosts, volumes};
use crate::kubelet::pod_spec::{self, Role};
use crate::kubelet::{Context, KubeletError};

/// A container could not be created or started: its `Failed` event, and
/// the waiting reason its status shows until the next attempt (`None`: the
/// status shows what the runtime reports).
pub(super) fn container_failed(
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
pub(super) async fn start_container(
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
    let config = cri_config::container_config(pod, c, &inputs);
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
            pod_spec::grace_seconds(pod),
            "FailedPostStartHook",
        )
        .await?;
    }
    Ok(())
}
