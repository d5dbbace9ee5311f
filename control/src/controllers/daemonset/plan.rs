//! The DaemonSet controller's decisions, pure (`daemon_controller.go`'s
//! `podsShouldBeOnNode`/`manage`, `update.go`'s `rollingUpdate`, and
//! `updateDaemonSetStatus`): which nodes need a pod, which pods go, which
//! old pods a rolling update replaces next, and the status.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::eligibility::{
    HASH_LABEL, TEMPLATE_GENERATION_LABEL, node_should_run, target_node, template_generation,
};
use crate::controllers::deployment::util::scaled;
use crate::controllers::podutil::{is_available, is_ready, is_terminal, node_name};

/// The DaemonSet's pods by the node each is meant for.
pub type PodsByNode<'a> = BTreeMap<String, Vec<&'a Pod>>;

/// `getNodesToDaemonPods`: pods grouped by target node; pods being deleted
/// after they finished are left out, as are pods meant for no node.
pub fn pods_by_node<'a>(pods: &[&'a Pod]) -> PodsByNode<'a> {
    let mut out = PodsByNode::new();
    for p in pods {
        if is_terminal(p) && p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(p) {
            out.entry(node).or_default().push(p);
        }
    }
    out
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `podByCreationTimestampAndPhase`: scheduled pods first, then oldest,
/// then by name.
fn by_age(a: &&Pod, b: &&Pod) -> Ordering {
    let scheduled = |p: &Pod| node_name(p).is_some();
    scheduled(b)
        .cmp(&scheduled(a))
        .then_with(|| {
            let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b))
        })
        .then_with(|| name(a).cmp(&name(b)))
}

/// `IsPodUpdated`: the pod carries the current hash or template generation.
pub fn is_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let label = |k: &str| pod.metadata.labels.as_ref().and_then(|l| l.get(k));
    let hash_matches = !hash.is_empty() && label(HASH_LABEL).is_some_and(|h| h == hash);
    let generation_matches = generation
        .is_some_and(|g| label(TEMPLATE_GENERATION_LABEL).is_some_and(|l| *l == g.to_string()));
    hash_matches || generation_matches
}

fn rolling_update(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let strategy = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    strategy.rolling_update.as_ref()
}

/// `SurgeCount` / `UnavailableCount`: the strategy's values scaled to the
/// number of nodes, percentages rounded up.
pub fn surge_and_unavailable(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    let Some(ru) = rolling_update(ds) else {
        return (0, 0);
    };
    let zero = IntOrString::Int(0);
    let count = |v: Option<&IntOrString>| scaled(Some(v.unwrap_or(&zero)), 0, desired, true);
    (
        count(ru.max_surge.as_ref()),
        count(ru.max_unavailable.as_ref()),
    )
}

/// `AllowsSurge`.
fn allows_surge(ds: &DaemonSet) -> bool {
    surge_and_unavailable(ds, 1).0 != 0
}

/// What `manage` does this round.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Manage {
    /// Nodes that need a daemon pod.
    pub create: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<String>,
    /// Failed daemon pods, by node: deleted (and recreated) unless their
    /// node's backoff holds them.
    pub failed: Vec<(String, String)>,
}

/// `manage` over every node (`podsShouldBeOnNode`), plus the pods meant
/// for nodes that no longer exist.
pub fn manage(
    ds: &DaemonSet,
    nodes: &[&Node],
    by_node: &PodsByNode<'_>,
    hash: &str,
    now: jiff::Timestamp,
) -> Manage {
    let mut out = Manage::default();
    let surge = allows_surge(ds);
    for node in nodes {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let fit = node_should_run(ds, node);
        let pods = by_node.get(&node_name);
        match pods {
            None if fit.should_run => out.create.push(node_name),
            _ if fit.should_continue_running => {
                let mut running: Vec<&Pod> = Vec::new();
                for p in pods.into_iter().flatten() {
                    if p.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
                        Some("Failed") => out.failed.push((node_name.clone(), name(p))),
                        Some("Succeeded") => out.delete.push(name(p)),
                        _ => running.push(p),
                    }
                }
                running.sort_by(by_age);
                if !surge {
                    out.delete.extend(running.iter().skip(1).map(|p| name(p)));
                    continue;
                }
                if running.len() <= 1 {
                    if running.is_empty() && fit.should_run {
                        out.create.push(node_name);
                    }
                    continue;
                }
                // Surging: keep the oldest new pod and, while it is not
                // available, the oldest old pod if that one is ready.
                let (mut oldest_new, mut oldest_old) = (None, None);
                for p in running {
                    let slot = if is_updated(p, hash, template_generation(ds)) {
                        &mut oldest_new
                    } else {
                        &mut oldest_old
                    };
                    if slot.is_none() {
                        *slot = Some(p);
                    } else {
                        out.delete.push(name(p));
                    }
                }
                if let (Some(new), Some(old)) = (oldest_new, oldest_old)
                    && (!is_ready(old) || is_available(new, min_ready_seconds(ds), now))
                {
                    out.delete.push(name(old));
                }
            }
            Some(pods) if !fit.should_continue_running => {
                out.delete.extend(
                    pods.iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .map(|p| name(p)),
                );
            }
            _ => {}
        }
    }
    // Pods meant for nodes that are gone.
    for (node, pods) in by_node {
        if !nodes
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(node.as_str()))
        {
            out.delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| name(p)),
            );
        }
    }
    out
}

/// `findUpdatedPodsOnNode`: the node's one new and one old pod (either may
/// be missing), or `None` when it has more (manage prunes those first).
fn updated_and_old<'a>(
    pods: &[&'a Pod],
    hash: &str,
    generation: Option<i64>,
) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(p, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*p);
    }
    Some((new, old))
}

/// What one round of a rolling update does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rolling {
    /// Old pods to delete (manage then creates their replacements).
    pub delete: Vec<String>,
    /// Nodes to surge a new pod onto, beside the old one.
    pub create: Vec<String>,
}

/// `rollingUpdate`. Without surge, old pods are deleted while fewer than
/// `maxUnavailable` pods are unavailable (unavailable old pods always go);
/// with surge, new pods are created beside at most `maxSurge` available
/// old pods at a time (beside every unavailable old pod), and an old pod
/// goes once the new pod beside it is available.
pub fn rolling(
    ds: &DaemonSet,
    nodes: &[&Node],
    by_node: &PodsByNode<'_>,
    hash: &str,
    now: jiff::Timestamp,
) -> Rolling {
    let mut by_node: BTreeMap<String, Vec<&Pod>> = by_node.clone();
    let mut desired = 0;
    let mut runs: BTreeMap<String, bool> = BTreeMap::new();
    for n in nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        let fit = node_should_run(ds, n);
        runs.insert(name.clone(), fit.should_run);
        if fit.should_run {
            desired += 1;
            by_node.entry(name).or_default();
        }
    }
    let (max_surge, mut max_unavailable) = surge_and_unavailable(ds, desired);
    if desired > 0 && max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let generation = template_generation(ds);
    let min_ready = min_ready_seconds(ds);
    let available = |p: &Pod| is_available(p, min_ready, now);
    let mut out = Rolling::default();
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replacements = Vec::new();
        let mut candidates = Vec::new();
        for pods in by_node.values() {
            match updated_and_old(pods, hash, generation) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        replacements.push(name(old));
                    } else if unavailable < max_unavailable {
                        candidates.push(name(old));
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
        out.delete = replacements;
        out.delete.extend(candidates.into_iter().take(room));
        return out;
    }
    let mut surging = 0;
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    for (node, pods) in &by_node {
        let Some((new, old)) = updated_and_old(pods, hash, generation) else {
            surging += 1;
            continue;
        };
        let should_run = runs.get(node).copied().unwrap_or(false);
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    if should_run {
                        allowed.push(node.clone());
                    } else {
                        out.delete.push(name(old));
                    }
                } else if should_run && surging < max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    out.delete.push(name(old));
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = (max_surge - surging).clamp(0, candidates.len() as i32) as usize;
    out.create = allowed;
    out.create.extend(candidates.into_iter().take(room));
    out
}

/// `updateDaemonSetStatus`: counts over the nodes that should run a pod
/// (the oldest pod on each node counts), misscheduled pods on the others.
/// `observed` sets `observedGeneration` (the controller acted on this
/// generation).
pub fn status(
    ds: &DaemonSet,
    nodes: &[&Node],
    by_node: &PodsByNode<'_>,
    hash: &str,
    now: jiff::Timestamp,
    observed: bool,
) -> DaemonSetStatus {
    let old = ds.status.clone().unwrap_or_default();
    let mut s = DaemonSetStatus {
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        observed_generation: if observed {
            ds.metadata.generation
        } else {
            old.observed_generation
        },
        ..Default::default()
    };
    let (mut ready, mut available, mut updated) = (0, 0, 0);
    for n in nodes {
        let node = n.metadata.name.clone().unwrap_or_default();
        let mut pods: Vec<&Pod> = by_node.get(&node).cloned().unwrap_or_default();
        let scheduled = !pods.is_empty();
        if node_should_run(ds, n).should_run {
            s.desired_number_scheduled += 1;
            if !scheduled {
                continue;
            }
            s.current_number_scheduled += 1;
            pods.sort_by(by_age);
            let pod = pods[0];
            if is_ready(pod) {
                ready += 1;
                if is_available(pod, min_ready_seconds(ds), now) {
                    available += 1;
                }
            }
            if is_updated(pod, hash, template_generation(ds)) {
                updated += 1;
            }
        } else if scheduled {
            s.number_misscheduled += 1;
        }
    }
    s.number_ready = ready;
    s.number_available = Some(available);
    s.updated_number_scheduled = Some(updated);
    s.number_unavailable = Some(s.desired_number_scheduled - available);
    s
}

#[cfg(test)]
mod tests;
