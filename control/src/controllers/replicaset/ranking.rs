//! Which pods a scale-down deletes first (`controller.ActivePodsWithRanks`
//! and `getPodsToDelete`): unscheduled before scheduled, Pending before
//! Unknown before Running, not ready before ready, lower
//! `controller.kubernetes.io/pod-deletion-cost` first, pods doubled up on a
//! node (counting related pods, e.g. of the same Deployment) first, ready
//! for less time first, more restarts first, newer first.
//!
//! Unlike upstream, which ranks once, the "doubled up" rank is recomputed
//! after each pick, so what remains stays spread across nodes.

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

use crate::controllers::podutil::{is_ready, node_name, phase, ready_since};

const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn phase_ordinal(p: &Pod) -> u8 {
    match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn deletion_cost(p: &Pod) -> i64 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// `Less`: whether `a` goes before `b`; `rank_*` are the pods' counts of
/// related pods on their node.
fn delete_first(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let (na, nb) = (node_name(a), node_name(b));
    if na != nb && (na.is_none() || nb.is_none()) {
        return if na.is_none() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let o = phase_ordinal(a).cmp(&phase_ordinal(b));
    if o != Ordering::Equal {
        return o;
    }
    let o = is_ready(a).cmp(&is_ready(b));
    if o != Ordering::Equal {
        return o;
    }
    let o = deletion_cost(a).cmp(&deletion_cost(b));
    if o != Ordering::Equal {
        return o;
    }
    let o = rank_b.cmp(&rank_a);
    if o != Ordering::Equal {
        return o;
    }
    if let (Some(Some(ta)), Some(Some(tb))) = (ready_since(a), ready_since(b)) {
        let o = tb.cmp(&ta);
        if o != Ordering::Equal {
            return o;
        }
    }
    let o = restarts(b).cmp(&restarts(a));
    if o != Ordering::Equal {
        return o;
    }
    let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    cb.cmp(&ca)
        .then_with(|| b.metadata.name.cmp(&a.metadata.name))
}

/// Picks `n` of `candidates` to delete. `related` are all active pods
/// counted for the doubled-up rank (the candidates and, e.g., pods of the
/// Deployment's other ReplicaSets).
pub fn pods_to_delete<'a>(candidates: &[&'a Pod], related: &[&Pod], n: usize) -> Vec<&'a Pod> {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in related {
        if let Some(node) = node_name(p) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let rank = |p: &Pod, per_node: &HashMap<&str, usize>| {
        node_name(p)
            .and_then(|n| per_node.get(n))
            .copied()
            .unwrap_or(0)
    };
    let mut left: Vec<&'a Pod> = candidates.to_vec();
    let mut out = Vec::with_capacity(n);
    while out.len() < n && !left.is_empty() {
        let (i, _) = left
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| delete_first(a, rank(a, &per_node), b, rank(b, &per_node)))
            .expect("non-empty");
        let p = left.swap_remove(i);
        if let Some(node) = node_name(p)
            && let Some(c) = per_node.get_mut(node)
        {
            *c = c.saturating_sub(1);
        }
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": "2024-01-01T00:00:10Z"}]},
        }))
        .unwrap()
    }

    #[test]
    fn unscheduled_pending_notready_go_first() {
        let pods = [
            pod("ready", Some("a"), "Running", true),
            pod("notready", Some("b"), "Running", false),
            pod("pending", Some("c"), "Pending", false),
            pod("unscheduled", None, "Pending", false),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let order: Vec<&str> = pods_to_delete(&refs, &refs, 4)
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(order, vec!["unscheduled", "pending", "notready", "ready"]);
    }

    #[test]
    fn survivors_stay_spread_across_nodes() {
        // 10 ready pods over three nodes (4, 3, 3) scaled to 3.
        let mut pods = Vec::new();
        for (i, node) in ["a", "a", "a", "a", "b", "b", "b", "c", "c", "c"]
            .iter()
            .enumerate()
        {
            pods.push(pod(&format!("p{i}"), Some(node), "Running", true));
        }
        let refs: Vec<&Pod> = pods.iter().collect();
        let gone: Vec<&str> = pods_to_delete(&refs, &refs, 7)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .map(|n| {
                pods.iter()
                    .find(|p| p.metadata.name.as_deref() == Some(&n))
                    .unwrap()
                    .spec
                    .as_ref()
                    .unwrap()
                    .node_name
                    .as_deref()
                    .unwrap()
            })
            .collect();
        let mut left: HashMap<&str, i32> = [("a", 4), ("b", 3), ("c", 3)].into();
        for n in gone {
            *left.get_mut(n).unwrap() -= 1;
        }
        assert_eq!(left, [("a", 1), ("b", 1), ("c", 1)].into());
    }
}
