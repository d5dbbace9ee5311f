//! Periodic compaction of etcd history, as kube-apiserver does it: every
//! interval, compact up to the revision seen one interval earlier, so at
//! least one interval of history is always kept for watches to resume from.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tracing::{debug, info};

use super::etcd::Etcd;

/// Runs compaction forever (spawn it). `compacted` is updated with the last
/// compacted revision.
pub async fn run(etcd: Etcd, interval: Duration, compacted: Arc<AtomicI64>) {
    if interval.is_zero() {
        return;
    }
    let mut previous = 0i64;
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let current = match etcd.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "compaction: etcd unreachable");
                continue;
            }
        };
        if previous > 0 && previous > compacted.load(Ordering::Relaxed) {
            match etcd.compact(previous).await {
                Ok(()) => {
                    compacted.store(previous, Ordering::Relaxed);
                    info!(revision = previous, "compacted etcd history");
                }
                Err(e) => debug!(error = %e, revision = previous, "compaction failed"),
            }
        }
        previous = current;
    }
}
