//! The pod garbage collector (kube-controller-manager's `podgc`,
//! pkg/controller/podgc): every 20 s it force-deletes
//!
//! - pods bound to a node that no longer exists, once the node has been
//!   gone for the quarantine time (40 s) and the API server confirms it;
//!   they are first marked Failed with a `DisruptionTarget` condition
//!   (`DeletionByPodGC`), so their controllers count them as disrupted;
//! - pods being deleted that were never scheduled (no kubelet will finish
//!   them);
//! - the oldest terminated pods (Succeeded or Failed) beyond
//!   `--terminated-pod-gc-threshold`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use tracing::{info, warn};

use crate::client::informer::synced;

/// How often the collector looks.
const PERIOD: Duration = Duration::from_secs(20);
/// How long a node must have been gone before its pods are collected
/// (upstream's `quarantineTime`).
pub const QUARANTINE: Duration = Duration::from_secs(40);
/// The reason of the condition an orphaned pod gets.
const REASON: &str = "DeletionByPodGC";

/// Why a pod is collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Bound to a node that is gone.
    Orphaned,
    /// Being deleted and never scheduled.
    UnscheduledTerminating,
    /// One of the oldest terminated pods beyond the threshold.
    Terminated,
}

/// A pod to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collect {
    pub namespace: String,
    pub name: String,
    pub why: Why,
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn collect(pod: &Pod, why: Why) -> Collect {
    Collect {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        why,
    }
}

/// What one pass collects: `gone(node)` says whether a node has been gone
/// for the quarantine time; `threshold` 0 keeps every terminated pod.
pub fn plan(pods: &[Arc<Pod>], gone: impl Fn(&str) -> bool, threshold: usize) -> Vec<Collect> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for pod in pods {
        let why = match node_name(pod) {
            Some(node) if gone(node) => Why::Orphaned,
            None if pod.metadata.deletion_timestamp.is_some() => Why::UnscheduledTerminating,
            _ => continue,
        };
        seen.insert(pod.metadata.uid.clone());
        out.push(collect(pod, why));
    }
    if threshold > 0 {
        let mut done: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| terminated(p) && !seen.contains(&p.metadata.uid))
            .collect();
        if done.len() > threshold {
            done.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let excess = done.len() - threshold;
            out.extend(
                done.into_iter()
                    .take(excess)
                    .map(|p| collect(p, Why::Terminated)),
            );
        }
    }
    out
}

/// The status patch that marks an orphaned pod: Failed unless it already
/// finished, with the `DisruptionTarget` condition.
pub fn orphan_status(pod: &Pod, now: &str) -> serde_json::Value {
    let mut status = serde_json::json!({
        "conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": REASON,
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": now,
        }],
    });
    if !terminated(pod) {
        status["phase"] = "Failed".into();
    }
    serde_json::json!({ "status": status })
}

/// Tracks since when each node has been missing.
#[derive(Debug, Default)]
struct Quarantine {
    missing_since: HashMap<String, Instant>,
}

impl Quarantine {
    /// Records which bound nodes are missing now; forgets the ones back.
    fn observe(&mut self, pods: &[Arc<Pod>], nodes: &HashSet<String>) {
        let missing: HashSet<&str> = pods
            .iter()
            .filter_map(|p| node_name(p))
            .filter(|n| !nodes.contains(*n))
            .collect();
        self.missing_since
            .retain(|n, _| missing.contains(n.as_str()));
        for n in missing {
            self.missing_since
                .entry(n.to_owned())
                .or_insert_with(Instant::now);
        }
    }

    fn gone_long_enough(&self, node: &str) -> bool {
        self.missing_since
            .get(node)
            .is_some_and(|t| t.elapsed() >= QUARANTINE)
    }
}

/// Deletes `c` now (grace period 0), marking an orphan first.
async fn force_delete(client: &kube::Client, pod: &Pod, c: &Collect) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &c.namespace);
    if c.why == Why::Orphaned {
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        api.patch_status(
            &c.name,
            &PatchParams::default(),
            &Patch::Strategic(orphan_status(pod, &now)),
        )
        .await?;
    }
    match api
        .delete(&c.name, &DeleteParams::default().grace_period(0))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs the collector over the pods and nodes of the informers.
pub async fn run(client: kube::Client, pods: Store<Pod>, nodes: Store<Node>, threshold: usize) {
    let node_api: Api<Node> = Api::all(client.clone());
    let mut quarantine = Quarantine::default();
    loop {
        if !synced(&pods).await || !synced(&nodes).await {
            return;
        }
        let all = pods.state();
        let names: HashSet<String> = nodes
            .state()
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        quarantine.observe(&all, &names);
        let mut confirmed: HashMap<String, bool> = HashMap::new();
        for (node, _) in quarantine
            .missing_since
            .iter()
            .filter(|(n, _)| quarantine.gone_long_enough(n))
        {
            // The informer may lag: the API server has the last word.
            let gone = matches!(node_api.get_opt(node).await, Ok(None));
            confirmed.insert(node.clone(), gone);
        }
        let by_key: HashMap<(String, String), &Arc<Pod>> = all
            .iter()
            .map(|p| {
                (
                    (
                        p.metadata.namespace.clone().unwrap_or_default(),
                        p.metadata.name.clone().unwrap_or_default(),
                    ),
                    p,
                )
            })
            .collect();
        for c in plan(&all, |n| confirmed.get(n) == Some(&true), threshold) {
            let Some(pod) = by_key.get(&(c.namespace.clone(), c.name.clone())) else {
                continue;
            };
            match force_delete(&client, pod, &c).await {
                Ok(()) => {
                    info!(pod = %format!("{}/{}", c.namespace, c.name), why = ?c.why, "PodGC force-deleted the pod")
                }
                Err(e) => {
                    warn!(pod = %format!("{}/{}", c.namespace, c.name), error = %e, "PodGC could not delete the pod")
                }
            }
        }
        tokio::time::sleep(PERIOD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(name: &str, node: Option<&str>, phase: &str, created: i64) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(jiff::Timestamp::from_second(created).unwrap())),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
        })
    }

    #[test]
    fn orphans_of_gone_nodes_and_unscheduled_terminating_pods_are_collected() {
        let mut deleting = (*pod("deleting", None, "Pending", 1)).clone();
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        let pods = vec![
            pod("on-gone", Some("gone"), "Running", 1),
            pod("on-here", Some("here"), "Running", 1),
            pod("on-recent", Some("recently-gone"), "Running", 1),
            pod("pending", None, "Pending", 1),
            Arc::new(deleting),
        ];
        let got = plan(&pods, |n| n == "gone", 0);
        assert_eq!(
            got.iter()
                .map(|c| (c.name.as_str(), c.why))
                .collect::<Vec<_>>(),
            [
                ("on-gone", Why::Orphaned),
                ("deleting", Why::UnscheduledTerminating)
            ]
        );
    }

    #[test]
    fn the_oldest_terminated_pods_beyond_the_threshold_are_collected() {
        let pods = vec![
            pod("new-done", Some("n"), "Succeeded", 30),
            pod("old-failed", Some("n"), "Failed", 10),
            pod("mid-done", Some("n"), "Succeeded", 20),
            pod("running", Some("n"), "Running", 1),
        ];
        let got = plan(&pods, |_| false, 1);
        let names: Vec<&str> = got.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["old-failed", "mid-done"]);
        assert!(got.iter().all(|c| c.why == Why::Terminated));
        assert!(plan(&pods, |_| false, 0).is_empty(), "0 keeps them all");
        assert!(plan(&pods, |_| false, 3).is_empty());
    }

    #[test]
    fn an_orphan_is_marked_failed_and_disrupted() {
        let running = pod("p", Some("gone"), "Running", 1);
        let patch = orphan_status(&running, "2026-01-01T00:00:00Z");
        assert_eq!(patch["status"]["phase"], "Failed");
        let c = &patch["status"]["conditions"][0];
        assert_eq!(c["type"], "DisruptionTarget");
        assert_eq!(c["reason"], "DeletionByPodGC");
        assert_eq!(c["message"], "PodGC: node no longer exists");
        let done = pod("q", Some("gone"), "Succeeded", 1);
        assert!(orphan_status(&done, "t")["status"].get("phase").is_none());
    }

    #[test]
    fn a_node_is_quarantined_until_it_has_been_gone_long_enough() {
        let pods = vec![pod("a", Some("gone"), "Running", 1)];
        let mut q = Quarantine::default();
        q.observe(&pods, &HashSet::new());
        assert!(!q.gone_long_enough("gone"));
        q.missing_since
            .insert("gone".into(), Instant::now() - QUARANTINE);
        assert!(q.gone_long_enough("gone"));
        q.observe(&pods, &HashSet::from(["gone".to_owned()]));
        assert!(
            q.missing_since.is_empty(),
            "a node that is back is forgotten"
        );
    }
}
