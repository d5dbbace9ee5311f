//! A container's environment, with the ConfigMaps and Secrets it refers
//! to read from the node's watches of them.

use k8s_openapi::api::core::v1::{Container as SpecContainer, Pod};

use super::uid_of;
use crate::kubelet::pod_config::configmap_secret_watch::Kind as SourceKind;
use crate::kubelet::pod_config::env;
use crate::kubelet::{Context, KubeletError};

/// The environment of container `c`, its ConfigMap and Secret
/// references read from their watches ([`Sources`](crate::kubelet::pod_config::configmap_secret_watch::Sources)), as
/// the kubelet's watch-based manager serves them to
/// `makeEnvironmentVariables`.
pub(super) async fn resolve_env(
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
