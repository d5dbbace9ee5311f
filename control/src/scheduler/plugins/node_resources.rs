//! NodeResourcesFit (filter: requests fit in allocatable minus what is
//! placed; score: LeastAllocated) and NodeResourcesBalancedAllocation.

use crate::scheduler::cache::{NodeInfo, PodInfo};
use crate::scheduler::framework::{
    Code, CycleState, Filter, MAX_NODE_SCORE, Plugin, Rejection, Score,
};

pub struct Fit;
pub struct BalancedAllocation;

impl Filter for Fit {
    fn filter(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let (a, used, want) = (&node.allocatable, &node.requested, &pod.requests);
        let mut reasons = Vec::new();
        // A request larger than the whole node cannot be helped by
        // preemption (`InsufficientResource.Unresolvable`).
        let mut unresolvable = true;
        if used.pods + 1 > a.pods {
            reasons.push("Too many pods".to_string());
            unresolvable = false;
        }
        for (name, want, used, alloc) in [
            ("cpu", want.milli_cpu, used.milli_cpu, a.milli_cpu),
            ("memory", want.memory, used.memory, a.memory),
            (
                "ephemeral-storage",
                want.ephemeral_storage,
                used.ephemeral_storage,
                a.ephemeral_storage,
            ),
        ] {
            if want > 0 && want > alloc - used {
                reasons.push(format!("Insufficient {name}"));
                unresolvable &= want > alloc;
            }
        }
        if reasons.is_empty() {
            return Ok(());
        }
        let code = if unresolvable {
            Code::UnschedulableAndUnresolvable
        } else {
            Code::Unschedulable
        };
        Err(Rejection {
            code,
            plugin: self.name(),
            reasons,
        })
    }
}

fn fractions(pod: &PodInfo, node: &NodeInfo) -> [(i64, i64); 2] {
    [
        (
            node.non_zero_requested.milli_cpu + pod.non_zero.milli_cpu,
            node.allocatable.milli_cpu,
        ),
        (
            node.non_zero_requested.memory + pod.non_zero.memory,
            node.allocatable.memory,
        ),
    ]
}

impl Score for Fit {
    fn weight(&self) -> i64 {
        1
    }

    /// LeastAllocated: mean over cpu and memory of the free share.
    fn score(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> i64 {
        let parts = fractions(pod, node);
        let sum: i64 = parts
            .iter()
            .map(|&(req, cap)| {
                if cap == 0 || req > cap {
                    0
                } else {
                    (cap - req) * MAX_NODE_SCORE / cap
                }
            })
            .sum();
        sum / parts.len() as i64
    }
}

impl Score for BalancedAllocation {
    fn weight(&self) -> i64 {
        1
    }

    /// `(1 - std) * 100` of the cpu and memory shares.
    fn score(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> i64 {
        let f: Vec<f64> = fractions(pod, node)
            .iter()
            .map(|&(r, c)| {
                if c == 0 {
                    1.0
                } else {
                    (r as f64 / c as f64).min(1.0)
                }
            })
            .collect();
        let std = (f[0] - f[1]).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

impl Plugin for Fit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::Cache;
    use crate::scheduler::plugins::testutil::{node_info, pod};
    use serde_json::json;

    #[test]
    fn requests_beyond_free_or_allocatable() {
        let mut c = Cache::default();
        let n = node_info(
            &mut c,
            json!({"metadata": {"name": "a"}, "status": {"allocatable": {"cpu": "2", "memory": "2Gi", "pods": "10"}}}),
        );
        let small = pod(
            json!({"metadata": {"name": "s"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}),
        );
        assert!(Fit.filter(&small, &CycleState::default(), &n).is_ok());
        let huge = pod(
            json!({"metadata": {"name": "h"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}]}}),
        );
        let e = Fit.filter(&huge, &CycleState::default(), &n).unwrap_err();
        assert_eq!(e.reasons, vec!["Insufficient cpu"]);
        assert_eq!(e.code, Code::UnschedulableAndUnresolvable);
        let mut busy = n.clone();
        busy.add_pod(std::sync::Arc::new(pod(json!({"metadata": {"name": "o"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1500m"}}}]}}))));
        let e = Fit
            .filter(&small, &CycleState::default(), &busy)
            .unwrap_err();
        assert_eq!(e.code, Code::Unschedulable, "preemption could help");
        assert!(
            Fit.score(&small, &CycleState::default(), &n)
                > Fit.score(&small, &CycleState::default(), &busy)
        );
    }
}
