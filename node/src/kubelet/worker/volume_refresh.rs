//! Rewriting a running pod's configMap, secret, downwardAPI and projected
//! volumes when what they show may have changed.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use super::{WorkerState, pod_name, uid_of};
use crate::kubelet::Context;
use crate::kubelet::pod_config::volumes;
use crate::kubelet::runtime_view::observed::PodRuntime;

/// How often configMap, secret, downwardAPI and projected volumes are
/// rewritten without a change seen (a change of the pod or of a mounted
/// ConfigMap or Secret rewrites them at once).
pub(super) const VOLUME_REFRESH: Duration = Duration::from_secs(60);

/// Rewrites the volumes of `pod` when a mounted ConfigMap or Secret, or the
/// pod's labels or annotations, changed, or the periodic rewrite is due.
pub(super) async fn refresh_volumes(
    ctx: &Context,
    pod: &Pod,
    runtime: &PodRuntime,
    state: &mut WorkerState,
) {
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
