//! DefaultPreemption (the PostFilter point): when no node fits, find the
//! node where evicting the fewest, least important lower-priority pods makes
//! room, as kube-scheduler's `Evaluator.Preempt` does: candidates are the
//! nodes whose rejection removing pods might fix; on each, all lower
//! priority pods are removed, then added back most important first while
//! the pod still fits ("reprieve"); the best candidate has the lowest
//! highest-victim priority, then the lowest priority sum, then the fewest
//! victims.

use std::sync::Arc;

use super::algorithm::{Algorithm, FitFailure};
use super::cache::{Cache, PodInfo};
use super::framework::{Code, Rejection, histogram};

/// Nodes and pods to evict.
#[derive(Debug)]
pub struct Plan {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

fn start_time(p: &PodInfo) -> Option<jiff::Timestamp> {
    p.pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
}

/// `MoreImportantPod`: higher priority, then started earlier.
fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| match (start_time(a), start_time(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
}

/// Finds a plan, or the `preemption: …` message saying why there is none.
pub fn preempt(
    algo: &Algorithm,
    pod: &PodInfo,
    cache: &Cache,
    failure: &FitFailure,
) -> Result<Plan, String> {
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Err("preemption: not eligible due to preemptionPolicy=Never.".into());
    }
    // Still waiting for an earlier preemption's victims to go.
    if let Some(nominated) = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())
        && let Some(ni) = cache.node(nominated)
        && ni
            .pods
            .iter()
            .any(|p| p.priority < pod.priority && p.pod.metadata.deletion_timestamp.is_some())
    {
        return Err(
            "preemption: not eligible due to a terminating pod on the nominated node.".into(),
        );
    }
    if failure.pre_filter.is_some() {
        return Err(format!(
            "preemption: 0/{} nodes are available: {} {NOT_HELPFUL}.",
            failure.total_nodes, failure.total_nodes
        ));
    }
    let mut statuses: Vec<Rejection> = Vec::new();
    let mut best: Option<(Plan, (i32, i64, usize))> = None;
    for (name, rejection) in &failure.per_node {
        if rejection.code == Code::UnschedulableAndUnresolvable {
            statuses.push(Rejection::new(
                "DefaultPreemption",
                Code::UnschedulableAndUnresolvable,
                NOT_HELPFUL,
            ));
            continue;
        }
        let Some(ni) = cache.node(name) else { continue };
        let mut trial = ni.clone();
        let mut potential: Vec<Arc<PodInfo>> = ni
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority)
            .cloned()
            .collect();
        for p in &potential {
            trial.remove_pod(&p.key);
        }
        if potential.is_empty() || algo.run_filters(pod, &failure.state, &trial).is_err() {
            statuses.push(Rejection::new(
                "DefaultPreemption",
                Code::Unschedulable,
                NO_VICTIMS,
            ));
            continue;
        }
        potential.sort_by(|a, b| more_important(a, b));
        let mut victims = Vec::new();
        for p in potential {
            trial.add_pod(p.clone());
            if algo.run_filters(pod, &failure.state, &trial).is_err() {
                trial.remove_pod(&p.key);
                victims.push(p);
            }
        }
        let rank = (
            victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN),
            victims.iter().map(|v| v.priority as i64).sum::<i64>(),
            victims.len(),
        );
        if best.as_ref().is_none_or(|(_, r)| rank < *r) {
            best = Some((
                Plan {
                    node: name.clone(),
                    victims,
                },
                rank,
            ));
        }
    }
    if let Some((plan, _)) = best {
        return Ok(plan);
    }
    // Nodes not evaluated count as not helpful (`SetAbsentNodesStatus`).
    while statuses.len() < failure.total_nodes {
        statuses.push(Rejection::new(
            "DefaultPreemption",
            Code::UnschedulableAndUnresolvable,
            NOT_HELPFUL,
        ));
    }
    Err(format!(
        "preemption: 0/{} nodes are available: {}.",
        failure.total_nodes,
        histogram(&statuses).join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testutil::{node, pod};
    use crate::scheduler::plugins::{Profile, volume_binding::VolumeBinding};
    use serde_json::json;

    fn p(name: &str, node: Option<&str>, cpu: &str, prio: i32) -> Arc<PodInfo> {
        Arc::new(pod(
            json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "priority": prio, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}),
        ))
    }

    #[test]
    fn evicts_fewest_lowest_priority_pods() {
        let mut c = Cache::default();
        for n in ["a", "b"] {
            c.set_node(node(json!({"metadata": {"name": n}, "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"}}})));
        }
        c.assume(p("a-low1", Some("a"), "1", 0), "a");
        c.assume(p("a-low2", Some("a"), "1", 0), "a");
        c.assume(p("b-mid", Some("b"), "1", 100), "b");
        c.assume(p("b-low", Some("b"), "1", 0), "b");
        let mut algo = Algorithm::new(
            Profile::default_profile(VolumeBinding {
                claims: None,
                volumes: None,
            }),
            None,
        );
        let high = p("high", None, "1", 1000);
        let f = algo.schedule(&high, &c, &mut rand::rng()).unwrap_err();
        let plan = preempt(&algo, &high, &c, &f).unwrap();
        // One victim of priority 0 is enough on either node; b's victim
        // set (one pod of priority 0) ties with a's, so the first wins.
        assert_eq!(plan.victims.len(), 1);
        assert_eq!(plan.victims[0].priority, 0);
    }

    #[test]
    fn not_helpful_when_the_pod_exceeds_every_node() {
        let mut c = Cache::default();
        c.set_node(node(json!({"metadata": {"name": "a"}, "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"}}})));
        let mut algo = Algorithm::new(
            Profile::default_profile(VolumeBinding {
                claims: None,
                volumes: None,
            }),
            None,
        );
        let huge = p("huge", None, "4", 1000);
        let f = algo.schedule(&huge, &c, &mut rand::rng()).unwrap_err();
        assert_eq!(
            preempt(&algo, &huge, &c, &f).unwrap_err(),
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
        let low = p("low", None, "1", 0);
        c.assume(p("x", Some("a"), "2", 0), "a");
        let f = algo.schedule(&low, &c, &mut rand::rng()).unwrap_err();
        assert_eq!(
            preempt(&algo, &low, &c, &f).unwrap_err(),
            "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
    }
}
