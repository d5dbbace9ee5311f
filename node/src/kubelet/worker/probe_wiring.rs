//! The probes of a pod's running containers: started for the containers
//! that have them, triggered when the pod changes while a container is
//! not ready, stopped for containers gone, and failed runs reported as
//! the pod's `Unhealthy` events.

use std::collections::HashSet;
use std::sync::Arc;

use baton_apimachinery::events::EventType;
use k8s_openapi::api::core::v1::Pod;

use super::{WorkerState, pod_ip};
use crate::kubelet::Context;
use crate::kubelet::pod_spec::{self, Role};
use crate::kubelet::probes;
use crate::kubelet::runtime_view::observed::{PodRuntime, State};

/// A failed probe run: the pod's `Unhealthy` event.
pub fn probe_failed(ctx: &Context, pod: &Pod, f: &probes::Failure) {
    ctx.recorder.record(
        pod,
        Some(&f.container),
        EventType::Warning,
        "Unhealthy",
        &format!("{} probe failed: {}", f.kind.as_str(), f.message),
    );
}

/// Keeps the probes of the running containers of `pod` as their specs ask.
pub(super) fn keep_probes(ctx: &Context, pod: &Pod, runtime: &PodRuntime, state: &mut WorkerState) {
    let ip = pod_ip(ctx, pod, runtime.sandbox().and_then(|s| s.ip.as_deref()));
    let mut keep = HashSet::new();
    for c in runtime
        .containers
        .iter()
        .filter(|c| c.state == State::Running)
    {
        if runtime.latest(&c.name).map(|l| &l.id) != Some(&c.id) {
            continue;
        }
        // App containers and sidecars are probed; init containers run to
        // completion, and ephemeral containers are never ready.
        let Some((spec_c, Role::App | Role::Sidecar)) = pod_spec::find_container(pod, &c.name)
        else {
            continue;
        };
        keep.insert(c.id.clone());
        for (kind, probe) in [
            (probes::Kind::Startup, &spec_c.startup_probe),
            (probes::Kind::Liveness, &spec_c.liveness_probe),
            (probes::Kind::Readiness, &spec_c.readiness_probe),
        ] {
            if let Some(probe) = probe {
                let probe = probes::with_named_ports(probe, &spec_c);
                let started = ctx.prober.ensure(
                    &ctx.cri,
                    &c.id,
                    &c.name,
                    &ip,
                    kind,
                    &probe,
                    Arc::clone(&state.notify),
                    state.failures_tx.clone(),
                );
                // A running container not yet ready is probed again when
                // its pod changes, not only every period, as the kubelet's
                // UpdatePodStatus triggers its readiness worker on each
                // pod sync: Ready follows the container's first listen
                // closely. The periodic resync (our PLEG relist) does not
                // trigger, so a pod that stays unready is probed at its
                // period.
                if kind == probes::Kind::Readiness
                    && state.wake.changed()
                    && !started
                    && !ctx.is_ready(&c.id)
                {
                    ctx.prober.trigger(&c.id, kind);
                }
            }
        }
        if spec_c.readiness_probe.is_none() {
            // No readiness probe: ready once running (and started).
            ctx.prober
                .results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .ready
                .insert(c.id.clone(), true);
        }
        state.probed.insert(c.id.clone());
    }
    let gone: HashSet<String> = state.probed.difference(&keep).cloned().collect();
    if !gone.is_empty() {
        ctx.prober.retain(&keep, &gone);
        state.probed.retain(|id| keep.contains(id));
    }
}
