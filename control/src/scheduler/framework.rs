//! The scheduling framework: the extension points plugins implement
//! (PreFilter, Filter, PreScore/Score with normalisation), the per-cycle
//! state they share, and filter rejections with kube-scheduler's codes and
//! reason strings (which make up the `FailedScheduling` message).

use std::collections::{BTreeMap, HashMap};

use super::cache::{Cache, NodeInfo, PodInfo};

/// Highest score a plugin gives a node (`framework.MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// Why a node (or the whole cycle) cannot take the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Removing pods (preemption) might help.
    Unschedulable,
    /// Nothing about other pods would help.
    UnschedulableAndUnresolvable,
}

/// A plugin's rejection with its reason strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: Code,
    pub plugin: &'static str,
    pub reasons: Vec<String>,
}

impl Rejection {
    pub fn new(plugin: &'static str, code: Code, reason: impl Into<String>) -> Rejection {
        Rejection {
            code,
            plugin,
            reasons: vec![reason.into()],
        }
    }
}

/// Topology pair `(key, value)` → count, as the inter-pod affinity plugin
/// computes it in PreFilter.
pub type TopologyCounts = HashMap<(String, String), i64>;

/// What the PreFilter/PreScore points computed for this pod, read by the
/// Filter/Score points. A closed set of typed fields rather than a map of
/// `Any`: each plugin owns its field.
#[derive(Debug, Default, Clone)]
pub struct CycleState {
    /// Existing pods' required anti-affinity terms that match this pod.
    pub existing_anti_affinity: TopologyCounts,
    /// Per required affinity term of this pod, pods matching it.
    pub affinity_counts: Vec<TopologyCounts>,
    /// Whether any existing pod matches all of this pod's affinity terms.
    pub affinity_matched_somewhere: bool,
    /// Per required anti-affinity term of this pod, pods matching it.
    pub anti_affinity_counts: Vec<TopologyCounts>,
    /// Preferred (anti-)affinity weights per topology pair.
    pub preferred_affinity_scores: TopologyCounts,
    /// Bound PersistentVolumes' node affinity terms the node must satisfy.
    pub volume_node_terms: Vec<k8s_openapi::api::core::v1::NodeSelector>,
    /// Pods of this pod's owner per zone (for spreading).
    pub owner_zone_counts: BTreeMap<String, i64>,
}

/// What every plugin has: its name (as in kube-scheduler's profiles).
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
}

/// PreFilter: computed once per pod; may reject the pod outright.
pub trait PreFilter: Plugin {
    fn pre_filter(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        state: &mut CycleState,
    ) -> Result<(), Rejection>;
}

/// Filter: whether one node can take the pod.
pub trait Filter: Plugin {
    fn filter(&self, pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection>;
}

/// Score: how good a feasible node is, 0..=100 after normalisation.
pub trait Score: Plugin {
    /// Weight in the sum of scores (kube-scheduler's default profile).
    fn weight(&self) -> i64;
    /// Once per pod over the feasible nodes, before scoring.
    fn pre_score(&self, _pod: &PodInfo, _cache: &Cache, _state: &mut CycleState) {}
    fn score(&self, pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> i64;
    /// Rescales raw scores to 0..=100 (identity by default).
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// Scales scores so the highest is 100 (`reverse`: the lowest is 100),
/// like `helper.DefaultNormalizeScore`.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

/// The `0/N nodes are available: …` text of a failed cycle, reasons counted
/// and sorted as `FitError.Error()` does; `post` is the preemption's own
/// message, appended.
pub fn fit_error_message(
    total_nodes: usize,
    pre_filter: Option<&Rejection>,
    rejections: &[Rejection],
    post: Option<&str>,
) -> String {
    let mut msg = format!("0/{total_nodes} nodes are available:");
    if let Some(p) = pre_filter {
        msg.push_str(&format!(" {}.", p.reasons.join(", ")));
    } else {
        let hist = histogram(rejections);
        if !hist.is_empty() {
            msg.push_str(&format!(" {}.", hist.join(", ")));
        }
    }
    if let Some(p) = post.filter(|p| !p.is_empty()) {
        msg.push_str(&format!(" {p}"));
    }
    msg
}

/// `"<count> <reason>"` sorted as strings.
pub fn histogram(rejections: &[Rejection]) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rejections {
        for reason in &r.reasons {
            *counts.entry(reason.as_str()).or_default() += 1;
        }
    }
    let mut out: Vec<String> = counts
        .into_iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_error_reads_like_kube_scheduler() {
        let cpu = Rejection::new(
            "NodeResourcesFit",
            Code::UnschedulableAndUnresolvable,
            "Insufficient cpu",
        );
        let taint = Rejection::new(
            "TaintToleration",
            Code::UnschedulableAndUnresolvable,
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",
        );
        let msg = fit_error_message(
            3,
            None,
            &[cpu, taint.clone(), taint],
            Some(
                "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
            ),
        );
        assert_eq!(
            msg,
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn normalize_scales_to_100() {
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 50, 0]);
    }
}
