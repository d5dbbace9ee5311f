//! One scheduling cycle for one pod (`schedulePod`): PreFilter, Filter over
//! the nodes starting where the previous cycle stopped until enough feasible
//! nodes are found (`percentageOfNodesToScore`), PreScore/Score with
//! normalisation and weights, then the best node, picked at random among
//! equal best scores (`selectHost`).

use rand::Rng;

use super::cache::{Cache, NodeInfo, PodInfo};
use super::framework::{CycleState, Rejection};
use super::plugins::Profile;

/// Why no node fits.
#[derive(Debug, Clone)]
pub struct FitFailure {
    pub total_nodes: usize,
    /// A PreFilter rejected the pod before any node was looked at.
    pub pre_filter: Option<Rejection>,
    /// The rejection of each node.
    pub per_node: Vec<(String, Rejection)>,
    /// State of the cycle (reused by preemption).
    pub state: CycleState,
}

/// Nodes to find feasible before scoring (`numFeasibleNodesToFind`): all of
/// them under 100 nodes, else an adaptive share (50 % minus 1 % per 125
/// nodes, at least 5 %) and at least 100.
pub fn num_feasible_nodes_to_find(total: usize, percentage: Option<u32>) -> usize {
    if total < 100 {
        return total;
    }
    let pct = match percentage {
        Some(p) if p > 0 => p.min(100) as usize,
        _ => (50usize.saturating_sub(total / 125)).max(5),
    };
    (total * pct / 100).max(100).min(total)
}

/// The scheduling algorithm with its round-robin position.
pub struct Algorithm {
    pub profile: Profile,
    pub percentage_of_nodes_to_score: Option<u32>,
    next_start: usize,
}

impl Algorithm {
    pub fn new(profile: Profile, percentage_of_nodes_to_score: Option<u32>) -> Algorithm {
        Algorithm {
            profile,
            percentage_of_nodes_to_score,
            next_start: 0,
        }
    }

    /// Runs every filter on one node; the first rejection wins.
    pub fn run_filters(
        &self,
        pod: &PodInfo,
        state: &CycleState,
        node: &NodeInfo,
    ) -> Result<(), Rejection> {
        for f in &self.profile.filters {
            f.filter(pod, state, node)?;
        }
        Ok(())
    }

    /// PreFilter for `pod`.
    pub fn pre_filter(&self, pod: &PodInfo, cache: &Cache) -> Result<CycleState, Rejection> {
        let mut state = CycleState::default();
        for p in &self.profile.pre_filters {
            p.pre_filter(pod, cache, &mut state)?;
        }
        Ok(state)
    }

    /// Picks a node for `pod`.
    pub fn schedule(
        &mut self,
        pod: &PodInfo,
        cache: &Cache,
        rng: &mut impl Rng,
    ) -> Result<String, Box<FitFailure>> {
        let names = cache.node_names();
        let total = names.len();
        let state = match self.pre_filter(pod, cache) {
            Ok(s) => s,
            Err(r) => {
                return Err(Box::new(FitFailure {
                    total_nodes: total,
                    pre_filter: Some(r),
                    per_node: Vec::new(),
                    state: CycleState::default(),
                }));
            }
        };
        // A node nominated by an earlier preemption is tried first.
        if let Some(nominated) = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty())
            && let Some(ni) = cache.node(nominated).filter(|n| n.node.is_some())
            && self.run_filters(pod, &state, ni).is_ok()
        {
            return Ok(nominated.to_string());
        }
        let want = num_feasible_nodes_to_find(total, self.percentage_of_nodes_to_score);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want);
        let mut per_node = Vec::new();
        let start = if total == 0 {
            0
        } else {
            self.next_start % total
        };
        let mut processed = 0;
        for i in 0..total {
            if feasible.len() >= want {
                break;
            }
            processed += 1;
            let name = &names[(start + i) % total];
            let Some(ni) = cache.node(name) else { continue };
            match self.run_filters(pod, &state, ni) {
                Ok(()) => feasible.push(ni),
                Err(r) => per_node.push((name.clone(), r)),
            }
        }
        if total > 0 {
            self.next_start = (start + processed) % total;
        }
        if feasible.is_empty() {
            return Err(Box::new(FitFailure {
                total_nodes: total,
                pre_filter: None,
                per_node,
                state,
            }));
        }
        if feasible.len() == 1 {
            return Ok(feasible[0].name.clone());
        }
        let totals = self.score(pod, cache, state, &feasible);
        Ok(feasible[select_host(&totals, rng)].name.clone())
    }

    /// Weighted, normalised sum of every score plugin per feasible node.
    pub fn score(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        mut state: CycleState,
        feasible: &[&NodeInfo],
    ) -> Vec<i64> {
        let mut totals = vec![0i64; feasible.len()];
        for s in &self.profile.scores {
            s.pre_score(pod, cache, &mut state);
        }
        let mut scores = vec![0i64; feasible.len()];
        for s in &self.profile.scores {
            for (i, n) in feasible.iter().enumerate() {
                scores[i] = s.score(pod, &state, n);
            }
            s.normalize(&mut scores);
            let w = s.weight();
            for (t, v) in totals.iter_mut().zip(&scores) {
                *t += v * w;
            }
        }
        totals
    }
}

/// Index of the highest score; among equal best, each is equally likely
/// (reservoir sampling, as `selectHost`).
pub fn select_host(scores: &[i64], rng: &mut impl Rng) -> usize {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, &s) in scores.iter().enumerate() {
        if i == 0 || s > scores[best] {
            best = i;
            ties = 1;
        } else if s == scores[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testutil::{node, pod};
    use crate::scheduler::plugins::volume_binding::VolumeBinding;
    use rand::SeedableRng;
    use serde_json::json;
    use std::sync::Arc;

    fn algo() -> Algorithm {
        Algorithm::new(
            Profile::default_profile(VolumeBinding {
                claims: None,
                volumes: None,
            }),
            None,
        )
    }

    #[test]
    fn feasible_nodes_to_find_follows_kube_scheduler() {
        assert_eq!(num_feasible_nodes_to_find(50, None), 50);
        assert_eq!(num_feasible_nodes_to_find(500, None), 230);
        assert_eq!(num_feasible_nodes_to_find(5000, None), 500);
        assert_eq!(num_feasible_nodes_to_find(150, None), 100);
    }

    #[test]
    fn ties_are_broken_at_random_among_the_best_only() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut seen = [0; 4];
        for _ in 0..400 {
            seen[select_host(&[5, 9, 9, 1], &mut rng)] += 1;
        }
        assert_eq!(seen[0] + seen[3], 0);
        assert!(seen[1] > 100 && seen[2] > 100, "{seen:?}");
    }

    #[test]
    fn replicas_spread_and_least_allocated_wins() {
        let mut c = Cache::default();
        for n in ["a", "b", "c"] {
            c.set_node(node(json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}})));
        }
        let mut a = algo();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut placed = Vec::new();
        for i in 0..3 {
            let p = Arc::new(pod(
                json!({"metadata": {"name": format!("p{i}"), "namespace": "default", "uid": format!("u{i}"),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs1", "controller": true}]},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]}}),
            ));
            let n = a.schedule(&p, &c, &mut rng).unwrap();
            c.assume(p, &n);
            placed.push(n);
        }
        placed.sort();
        assert_eq!(placed, vec!["a", "b", "c"]);
    }

    #[test]
    fn failure_lists_each_nodes_reason() {
        let mut c = Cache::default();
        c.set_node(node(json!({"metadata": {"name": "a"}, "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "110"}}})));
        c.set_node(node(json!({"metadata": {"name": "cp"}, "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "8", "memory": "1Gi", "pods": "110"}}})));
        let p = pod(
            json!({"metadata": {"name": "big", "namespace": "default"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]}}),
        );
        let f = algo().schedule(&p, &c, &mut rand::rng()).unwrap_err();
        let rejections: Vec<_> = f.per_node.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(
            crate::scheduler::framework::fit_error_message(f.total_nodes, None, &rejections, None),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."
        );
    }
}
