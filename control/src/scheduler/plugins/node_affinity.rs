//! NodeAffinity: `nodeSelector` and required node affinity must match the
//! node's labels; preferred terms add their weights to the score.

use crate::client::node_affinity::required_matches;
use crate::scheduler::affinity::node_term_matches;
use crate::scheduler::cache::{NodeInfo, PodInfo};
use crate::scheduler::framework::{
    Code, CycleState, Filter, Plugin, Rejection, Score, default_normalize,
};

pub struct NodeAffinity;

impl Filter for NodeAffinity {
    fn filter(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let Some(spec) = pod.pod.spec.as_ref() else {
            return Ok(());
        };
        if required_matches(spec, &node.name, node.labels()) {
            Ok(())
        } else {
            Err(Rejection::new(
                self.name(),
                Code::UnschedulableAndUnresolvable,
                "node(s) didn't match Pod's node affinity/selector",
            ))
        }
    }
}

impl Score for NodeAffinity {
    fn weight(&self) -> i64 {
        2
    }

    fn score(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> i64 {
        let preferred = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        preferred
            .into_iter()
            .flatten()
            .filter(|t| {
                t.weight != 0 && node_term_matches(&t.preference, &node.name, node.labels())
            })
            .map(|t| t.weight as i64)
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::Cache;
    use crate::scheduler::plugins::testutil::{node_info, pod};
    use serde_json::json;

    #[test]
    fn selector_and_required_terms_filter_preferred_scores() {
        let mut c = Cache::default();
        let ssd = node_info(
            &mut c,
            json!({"metadata": {"name": "a", "labels": {"disk": "ssd", "zone": "z1"}}}),
        );
        let hdd = node_info(
            &mut c,
            json!({"metadata": {"name": "b", "labels": {"disk": "hdd", "zone": "z1"}}}),
        );
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "nodeSelector": {"disk": "ssd"}}}),
        );
        assert!(
            NodeAffinity
                .filter(&p, &CycleState::default(), &ssd)
                .is_ok()
        );
        let e = NodeAffinity
            .filter(&p, &CycleState::default(), &hdd)
            .unwrap_err();
        assert_eq!(
            e.reasons,
            vec!["node(s) didn't match Pod's node affinity/selector"]
        );
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "affinity": {"nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 7, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}}]
            }}}}),
        );
        assert_eq!(NodeAffinity.score(&p, &CycleState::default(), &hdd), 7);
        assert_eq!(NodeAffinity.score(&p, &CycleState::default(), &ssd), 0);
    }
}
