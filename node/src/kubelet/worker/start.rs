//! Starting the containers a plan names, in its order: an init container
//! that cannot start yet (back-off, a failure) holds back the ones after
//! it, a container restarting after a crash waits out its
//! CrashLoopBackOff, and an ephemeral container starts only while its
//! target runs, in that container's process namespace.

use std::time::Instant;

use baton_apimachinery::events::EventType;
use k8s_openapi::api::core::v1::Pod;

use super::container_start::{container_failed, start_container};
use super::{WorkerState, pod_name, uid_of};
use crate::cri::api as cri;
use crate::kubelet::actions::PodActions;
use crate::kubelet::pod_spec::{self, Role};
use crate::kubelet::runtime_view::observed::{PodRuntime, State};
use crate::kubelet::{Context, KubeletError};

/// Starts the containers of `plan` in the sandbox `sandbox_id`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn start_planned(
    ctx: &Context,
    pod: &Pod,
    runtime: &PodRuntime,
    plan: &PodActions,
    sandbox_id: &str,
    pod_ip: &str,
    sandbox_config: &cri::PodSandboxConfig,
    state: &mut WorkerState,
) -> Result<(), KubeletError> {
    state.waiting.clear();
    for start in &plan.start {
        let Some((c, role)) = pod_spec::find_container(pod, &start.name) else {
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
            sandbox_id,
            pod_ip,
            sandbox_config,
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
