//! Lifecycle hooks (postStart, preStop): `exec` through CRI `ExecSync`,
//! `httpGet` as a probe run once, `sleep`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container as SpecContainer, LifecycleHandler};

use crate::kubelet::Context;
use crate::kubelet::probes;

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
pub(super) async fn run_hook(
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::*;

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
