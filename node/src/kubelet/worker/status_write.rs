//! Writing a pod's status: computed from its spec, what the runtime has
//! and the probe results ([`status::compute`]), and written only when it
//! differs, against the newest version of the pod the worker knows.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};

use super::{WorkerState, pod_name};
use crate::kubelet::runtime_view::observed::PodRuntime;
use crate::kubelet::status::{self, Extra};
use crate::kubelet::{Context, KubeletError};

/// Writes the status of `pod` when it changed.
pub(super) async fn write_status(
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
    use super::*;

    #[test]
    fn the_status_is_written_against_the_newest_known_version() {
        assert_eq!(newer_version(Some("12"), Some("15")), Some("15"));
        assert_eq!(newer_version(Some("20"), Some("15")), Some("20"));
        assert_eq!(newer_version(Some("20"), None), Some("20"));
        assert_eq!(newer_version(None, Some("15")), Some("15"));
        assert_eq!(newer_version(Some("x"), Some("15")), Some("x"));
    }
}
