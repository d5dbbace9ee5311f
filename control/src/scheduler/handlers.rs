//! Informer event handlers: keep the cache and the queue in step with the
//! cluster (`eventhandlers.go`): pending pods of this scheduler go to the
//! queue once they have no scheduling gates, bound pods to the cache; node and volume changes and pod deletions
//! move unschedulable pods back to be retried.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};

use super::cache::{Cache, pod_key};
use super::queue::SchedulingQueue;
use crate::client::Change;

fn assigned(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// Whether the pod waits on scheduling gates (the `SchedulingGates`
/// PreEnqueue plugin keeps it out of the queue until they are removed).
fn gated(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

fn terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Applies one pod change.
pub fn on_pod(
    change: Change<Pod>,
    cache: &Mutex<Cache>,
    queue: &SchedulingQueue,
    scheduler_name: &str,
) {
    match change {
        Change::Applied { old, new } => {
            let key = pod_key(&new);
            if assigned(&new) {
                queue.delete(&key);
                let mut c = cache.lock().expect("cache");
                if terminal(&new) {
                    c.remove_pod(&key);
                    drop(c);
                    queue.move_all_to_active_or_backoff();
                } else {
                    c.upsert_bound(new);
                }
            } else if new.metadata.deletion_timestamp.is_some() || terminal(&new) || gated(&new) {
                queue.delete(&key);
            } else if new
                .spec
                .as_ref()
                .and_then(|s| s.scheduler_name.as_deref())
                .unwrap_or("default-scheduler")
                == scheduler_name
            {
                // A pod still pending in the informer may already be assumed
                // (its binding in flight): leave it to the binding.
                if !cache.lock().expect("cache").is_assumed(&key) || old.is_none() {
                    queue.add_or_update(new);
                }
            }
        }
        Change::Deleted(p) => {
            let key = pod_key(&p);
            queue.delete(&key);
            let was_placed = assigned(&p) || cache.lock().expect("cache").is_assumed(&key);
            cache.lock().expect("cache").remove_pod(&key);
            if was_placed {
                queue.move_all_to_active_or_backoff();
            }
        }
    }
}

/// Whether a node update can make pods schedulable (`nodeSchedulingPropertiesChange`).
fn scheduling_properties_changed(old: &Node, new: &Node) -> bool {
    old.spec.as_ref().map(|s| (&s.unschedulable, &s.taints))
        != new.spec.as_ref().map(|s| (&s.unschedulable, &s.taints))
        || old.metadata.labels != new.metadata.labels
        || old.status.as_ref().map(|s| (&s.allocatable, &s.conditions))
            != new.status.as_ref().map(|s| (&s.allocatable, &s.conditions))
}

/// Applies one node change.
pub fn on_node(change: Change<Node>, cache: &Mutex<Cache>, queue: &SchedulingQueue) {
    match change {
        Change::Applied { old, new } => {
            let relevant = old
                .as_ref()
                .is_none_or(|o| scheduling_properties_changed(o, &new));
            cache.lock().expect("cache").set_node(new);
            if relevant {
                queue.move_all_to_active_or_backoff();
            }
        }
        Change::Deleted(n) => cache
            .lock()
            .expect("cache")
            .remove_node(n.metadata.name.as_deref().unwrap_or_default()),
    }
}

/// Shared handles the handlers need.
#[derive(Clone)]
pub struct Handles {
    pub cache: Arc<Mutex<Cache>>,
    pub queue: SchedulingQueue,
}
