//! Spreading of a controller's pods: nodes (and zones) with fewer pods of
//! the same controlling owner score higher — the scoring of kube-scheduler's
//! PodTopologySpread under its system default constraints
//! (`kubernetes.io/hostname` and `topology.kubernetes.io/zone`, ScheduleAnyway),
//! counting pods of the same owner.

use crate::scheduler::cache::{Cache, NodeInfo, PodInfo};
use crate::scheduler::framework::{CycleState, MAX_NODE_SCORE, Plugin, Score};

pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

pub struct PodTopologySpread;

impl Score for PodTopologySpread {
    fn weight(&self) -> i64 {
        2
    }

    fn pre_score(&self, pod: &PodInfo, cache: &Cache, state: &mut CycleState) {
        state.owner_zone_counts.clear();
        let Some(owner) = &pod.owner else { return };
        for n in cache.nodes() {
            if let Some(z) = n.labels().get(ZONE_LABEL) {
                *state.owner_zone_counts.entry(z.clone()).or_default() +=
                    n.owner_counts.get(owner).copied().unwrap_or(0) as i64;
            }
        }
    }

    /// Raw score: pods of the owner on the node, plus (weighted 2:1, as
    /// SelectorSpread did) in its zone; lower is better, see `normalize`.
    fn score(&self, pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(owner) = &pod.owner else { return 0 };
        let on_node = node.owner_counts.get(owner).copied().unwrap_or(0) as i64;
        let in_zone = node
            .labels()
            .get(ZONE_LABEL)
            .and_then(|z| state.owner_zone_counts.get(z))
            .copied()
            .unwrap_or(0);
        // Scaled so both terms keep integer precision.
        on_node * 3 + in_zone * 2 * i64::from(!state.owner_zone_counts.is_empty())
    }

    fn normalize(&self, scores: &mut [i64]) {
        let max = scores.iter().copied().max().unwrap_or(0);
        let min = scores.iter().copied().min().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if max == min {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max - *s) / (max - min)
            };
        }
    }
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }
}
