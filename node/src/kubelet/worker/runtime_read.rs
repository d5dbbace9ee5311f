//! Whether a sync reuses the worker's last read of its pod's runtime
//! state or reads it from CRI again, as decided by what woke the worker
//! ([`Wake`]) and what the relist saw since.

use std::time::Instant;

use super::{Wake, WorkerState};
use crate::kubelet::runtime_view::observed::PodRuntime;
use crate::kubelet::runtime_view::{read, relist};
use crate::kubelet::{Context, KubeletError};

/// A read of a pod's runtime state.
#[derive(Debug)]
pub(super) struct Observed {
    /// When the read began.
    at: Instant,
    fingerprint: relist::Fingerprint,
    runtime: PodRuntime,
}

/// The runtime state of the pod as its worker last read it, when what woke
/// the worker allows it ([`Wake`]); read from CRI otherwise.
pub(super) async fn current_runtime(
    ctx: &Context,
    uid: &str,
    state: &mut WorkerState,
) -> Result<PodRuntime, KubeletError> {
    if let Some(seen) = &state.observed {
        let relist = ctx
            .relist
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let reuse = match state.wake {
            Wake::PodChanged => false,
            Wake::Event => !relist.contradicts(uid, &seen.fingerprint, seen.at),
            Wake::Resync => relist.unchanged(uid, &seen.fingerprint, seen.at),
        };
        if reuse {
            return Ok(seen.runtime.clone());
        }
    }
    read_runtime(ctx, uid, state).await
}

/// Reads the pod's runtime state from CRI and remembers it.
pub(super) async fn read_runtime(
    ctx: &Context,
    uid: &str,
    state: &mut WorkerState,
) -> Result<PodRuntime, KubeletError> {
    let at = Instant::now();
    let (runtime, fingerprint) =
        read::observe_with_fingerprint(&ctx.cri, &ctx.runtime_cache, uid).await?;
    state.observed = Some(Observed {
        at,
        fingerprint,
        runtime: runtime.clone(),
    });
    Ok(runtime)
}
