//! InterPodAffinity: required pod affinity / anti-affinity of the incoming
//! pod, existing pods' required anti-affinity against it (symmetry), on any
//! topology key (`kubernetes.io/hostname`, `topology.kubernetes.io/zone`…),
//! and preferred terms as a score.

use crate::scheduler::cache::{Cache, NodeInfo, PodInfo};
use crate::scheduler::framework::{
    Code, CycleState, Filter, MAX_NODE_SCORE, Plugin, PreFilter, Rejection, Score, TopologyCounts,
};

pub struct InterPodAffinity;

fn count_matching(
    cache: &Cache,
    terms: &[crate::scheduler::affinity::AffinityTerm],
) -> Vec<TopologyCounts> {
    let mut out = vec![TopologyCounts::new(); terms.len()];
    for node in cache.nodes() {
        let labels = node.labels();
        for p in &node.pods {
            for (i, t) in terms.iter().enumerate() {
                if let Some(v) = labels.get(&t.topology_key)
                    && t.matches(p.namespace(), p.labels())
                {
                    *out[i]
                        .entry((t.topology_key.clone(), v.clone()))
                        .or_default() += 1;
                }
            }
        }
    }
    out
}

fn node_in(counts: &TopologyCounts, node: &NodeInfo, key: &str) -> i64 {
    node.labels()
        .get(key)
        .and_then(|v| counts.get(&(key.to_string(), v.clone())))
        .copied()
        .unwrap_or(0)
}

impl PreFilter for InterPodAffinity {
    fn pre_filter(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        state: &mut CycleState,
    ) -> Result<(), Rejection> {
        state.existing_anti_affinity.clear();
        for node in cache.nodes().filter(|n| n.anti_affinity_pods > 0) {
            let labels = node.labels();
            for p in node
                .pods
                .iter()
                .filter(|p| !p.required_anti_affinity.is_empty())
            {
                for t in &p.required_anti_affinity {
                    if let Some(v) = labels.get(&t.topology_key)
                        && t.matches(pod.namespace(), pod.labels())
                    {
                        *state
                            .existing_anti_affinity
                            .entry((t.topology_key.clone(), v.clone()))
                            .or_default() += 1;
                    }
                }
            }
        }
        state.affinity_counts = if pod.required_affinity.is_empty() {
            Vec::new()
        } else {
            count_matching(cache, &pod.required_affinity)
        };
        state.affinity_matched_somewhere = state.affinity_counts.iter().all(|c| !c.is_empty());
        state.anti_affinity_counts = if pod.required_anti_affinity.is_empty() {
            Vec::new()
        } else {
            count_matching(cache, &pod.required_anti_affinity)
        };
        Ok(())
    }
}

impl Filter for InterPodAffinity {
    fn filter(&self, pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let labels = node.labels();
        if state
            .existing_anti_affinity
            .iter()
            .any(|((k, v), n)| *n > 0 && labels.get(k) == Some(v))
        {
            return Err(Rejection::new(
                self.name(),
                Code::Unschedulable,
                "node(s) didn't satisfy existing pods anti-affinity rules",
            ));
        }
        if !pod.required_affinity.is_empty() {
            let all = pod
                .required_affinity
                .iter()
                .zip(&state.affinity_counts)
                .all(|(t, c)| node_in(c, node, &t.topology_key) > 0);
            // The first pod of a group that selects itself may go anywhere
            // the topology keys exist.
            let self_match = !state.affinity_matched_somewhere
                && pod.required_affinity.iter().all(|t| {
                    t.matches(pod.namespace(), pod.labels()) && labels.contains_key(&t.topology_key)
                });
            if !all && !self_match {
                return Err(Rejection::new(
                    self.name(),
                    Code::UnschedulableAndUnresolvable,
                    "node(s) didn't match pod affinity rules",
                ));
            }
        }
        if pod
            .required_anti_affinity
            .iter()
            .zip(&state.anti_affinity_counts)
            .any(|(t, c)| node_in(c, node, &t.topology_key) > 0)
        {
            return Err(Rejection::new(
                self.name(),
                Code::Unschedulable,
                "node(s) didn't match pod anti-affinity rules",
            ));
        }
        Ok(())
    }
}

impl Score for InterPodAffinity {
    fn weight(&self) -> i64 {
        2
    }

    fn pre_score(&self, pod: &PodInfo, cache: &Cache, state: &mut CycleState) {
        state.preferred_affinity_scores.clear();
        if pod.preferred_affinity.is_empty() && pod.preferred_anti_affinity.is_empty() {
            return;
        }
        for node in cache.nodes() {
            let labels = node.labels();
            for p in &node.pods {
                for (sign, terms) in [
                    (1, &pod.preferred_affinity),
                    (-1, &pod.preferred_anti_affinity),
                ] {
                    for (w, t) in terms {
                        if let Some(v) = labels.get(&t.topology_key)
                            && t.matches(p.namespace(), p.labels())
                        {
                            *state
                                .preferred_affinity_scores
                                .entry((t.topology_key.clone(), v.clone()))
                                .or_default() += sign * *w as i64;
                        }
                    }
                }
            }
        }
    }

    fn score(&self, _pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> i64 {
        let labels = node.labels();
        state
            .preferred_affinity_scores
            .iter()
            .filter(|((k, v), _)| labels.get(k) == Some(v))
            .map(|(_, s)| *s)
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        let max = scores.iter().copied().max().unwrap_or(0);
        let min = scores.iter().copied().min().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if max == min {
                0
            } else {
                MAX_NODE_SCORE * (*s - min) / (max - min)
            };
        }
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testutil::{node, pod};
    use serde_json::json;
    use std::sync::Arc;

    fn web(name: &str, node: Option<&str>) -> serde_json::Value {
        json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}}, "spec": {"nodeName": node, "containers": [],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}}})
    }

    #[test]
    fn anti_affinity_on_hostname_keeps_replicas_apart() {
        let mut c = Cache::default();
        for n in ["a", "b"] {
            c.set_node(node(
                json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}}),
            ));
        }
        c.upsert_bound(Arc::new(
            serde_json::from_value(web("w1", Some("a"))).unwrap(),
        ));
        let p = pod(web("w2", None));
        let mut st = CycleState::default();
        InterPodAffinity.pre_filter(&p, &c, &mut st).unwrap();
        let e = InterPodAffinity
            .filter(&p, &st, c.node("a").unwrap())
            .unwrap_err();
        // The existing pod's own anti-affinity is checked first.
        assert_eq!(
            e.reasons,
            vec!["node(s) didn't satisfy existing pods anti-affinity rules"]
        );
        assert!(
            InterPodAffinity
                .filter(&p, &st, c.node("b").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn affinity_to_zone_of_matching_pods_and_first_pod_exception() {
        let mut c = Cache::default();
        for (n, z) in [("a", "z1"), ("b", "z2")] {
            c.set_node(node(
                json!({"metadata": {"name": n, "labels": {"topology.kubernetes.io/zone": z}}}),
            ));
        }
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "default", "labels": {"app": "db"}}, "spec": {"containers": [],
            "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}}}),
        );
        let mut st = CycleState::default();
        InterPodAffinity.pre_filter(&p, &c, &mut st).unwrap();
        assert!(
            InterPodAffinity
                .filter(&p, &st, c.node("a").unwrap())
                .is_ok(),
            "first pod of the group"
        );
        c.upsert_bound(Arc::new(serde_json::from_value(json!({"metadata": {"name": "d1", "namespace": "default", "labels": {"app": "db"}}, "spec": {"nodeName": "b", "containers": []}})).unwrap()));
        InterPodAffinity.pre_filter(&p, &c, &mut st).unwrap();
        assert!(
            InterPodAffinity
                .filter(&p, &st, c.node("a").unwrap())
                .is_err()
        );
        assert!(
            InterPodAffinity
                .filter(&p, &st, c.node("b").unwrap())
                .is_ok()
        );
    }
}
