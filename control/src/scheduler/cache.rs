//! The scheduler cache: per node, what is already placed there (bound pods
//! seen by the informer and pods the scheduler *assumed* onto it before the
//! binding was confirmed), with the aggregates the filters and scores read
//! (requested resources, host ports, owner counts), so a scheduling cycle is
//! O(nodes) and a burst of pods is never double-booked.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::ResourceExt;

use super::affinity::{self, AffinityTerm};
use super::resources::{self, Resources};

/// What the scheduler knows of one pod, computed once.
#[derive(Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub key: String,
    pub uid: String,
    pub requests: Resources,
    pub non_zero: Resources,
    pub priority: i32,
    pub host_ports: Vec<HostPort>,
    /// uid of the controlling owner (ReplicaSet, StatefulSet…).
    pub owner: Option<String>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<(i32, AffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i32, AffinityTerm)>,
}

/// A host port a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    /// `HostPortInfo` conflict: same protocol and port, and same IP or
    /// either is the wildcard.
    pub fn conflicts(&self, o: &HostPort) -> bool {
        let wild = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.protocol == o.protocol
            && self.port == o.port
            && (self.ip == o.ip || wild(&self.ip) || wild(&o.ip))
    }
}

/// `ns/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let (requests, non_zero) = resources::pod_requests(&pod);
        let spec = pod.spec.as_ref();
        let mut host_ports = Vec::new();
        for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        ip: p.host_ip.clone().unwrap_or_default(),
                        port: hp,
                    });
                }
            }
        }
        let ns = pod.namespace().unwrap_or_default();
        let aff = spec.and_then(|s| s.affinity.as_ref());
        let pa = aff.and_then(|a| a.pod_affinity.as_ref());
        let paa = aff.and_then(|a| a.pod_anti_affinity.as_ref());
        PodInfo {
            key: pod_key(&pod),
            uid: pod.uid().unwrap_or_default(),
            requests,
            non_zero,
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            host_ports,
            owner: pod
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
            required_affinity: affinity::terms(
                &ns,
                pa.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
            ),
            required_anti_affinity: affinity::terms(
                &ns,
                paa.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
            ),
            preferred_affinity: affinity::weighted_terms(
                &ns,
                pa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
            ),
            preferred_anti_affinity: affinity::weighted_terms(
                &ns,
                paa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
            ),
            pod,
        }
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.pod.labels()
    }

    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or_default()
    }
}

/// One node and what is placed on it. Clones are cheap (pods are shared),
/// preemption works on a clone with victims removed.
#[derive(Debug, Default, Clone)]
pub struct NodeInfo {
    pub name: String,
    /// None for a node known only from pods bound to it.
    pub node: Option<Arc<Node>>,
    pub allocatable: Resources,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    pub owner_counts: HashMap<String, u32>,
    /// Pods here with required anti-affinity terms.
    pub anti_affinity_pods: u32,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
}

impl NodeInfo {
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node.as_ref().map_or(&EMPTY, |n| n.labels())
    }

    fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = resources::node_allocatable(&node);
        let spec = node.spec.as_ref();
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        self.node = Some(node);
    }

    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.non_zero_requested.add(&p.non_zero);
        self.used_ports.extend(p.host_ports.iter().cloned());
        if let Some(o) = &p.owner {
            *self.owner_counts.entry(o.clone()).or_default() += 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.anti_affinity_pods += 1;
        }
        self.pods.push(p);
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.key == key)?;
        let p = self.pods.swap_remove(i);
        self.requested.sub(&p.requests);
        self.non_zero_requested.sub(&p.non_zero);
        for hp in &p.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if let Some(o) = &p.owner
            && let Some(c) = self.owner_counts.get_mut(o)
        {
            *c -= 1;
            if *c == 0 {
                self.owner_counts.remove(o);
            }
        }
        if !p.required_anti_affinity.is_empty() {
            self.anti_affinity_pods -= 1;
        }
        Some(p)
    }
}

#[derive(Debug)]
struct PodState {
    node: String,
    assumed: bool,
    /// When an assumed pod's binding finished; it expires if the informer
    /// never confirms it.
    deadline: Option<Instant>,
}

/// How long an assumed pod whose binding succeeded waits for the informer
/// to confirm it (kube-scheduler's cache TTL).
const ASSUMED_TTL: Duration = Duration::from_secs(30);

/// Nodes and the pods placed on them.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: HashMap<String, NodeInfo>,
    /// Names of nodes that have a Node object, in insertion order (the
    /// scheduler walks them round-robin).
    order: Vec<String>,
    pods: HashMap<String, PodState>,
}

impl Cache {
    pub fn node_count(&self) -> usize {
        self.order.len()
    }

    /// Nodes with a Node object, in stable order.
    pub fn node_names(&self) -> &[String] {
        &self.order
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.order.iter().filter_map(|n| self.nodes.get(n))
    }

    pub fn set_node(&mut self, node: Arc<Node>) {
        let name = node.name_any();
        let ni = self.nodes.entry(name.clone()).or_insert_with(|| NodeInfo {
            name: name.clone(),
            ..Default::default()
        });
        if ni.node.is_none() {
            self.order.push(name);
        }
        ni.set_node(node);
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(ni) = self.nodes.get_mut(name) {
            ni.node = None;
            if ni.pods.is_empty() {
                self.nodes.remove(name);
            }
        }
        self.order.retain(|n| n != name);
    }

    fn place(&mut self, node: &str, p: Arc<PodInfo>) {
        let ni = self
            .nodes
            .entry(node.to_string())
            .or_insert_with(|| NodeInfo {
                name: node.to_string(),
                ..Default::default()
            });
        ni.add_pod(p);
    }

    fn unplace(&mut self, node: &str, key: &str) {
        if let Some(ni) = self.nodes.get_mut(node) {
            ni.remove_pod(key);
            if ni.node.is_none() && ni.pods.is_empty() {
                self.nodes.remove(node);
            }
        }
    }

    /// Whether the pod is assumed (placed by us, not yet confirmed).
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed)
    }

    /// Places `pod` on `node` before the binding is written.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        let key = pod.key.clone();
        if let Some(old) = self.pods.remove(&key) {
            self.unplace(&old.node, &key);
        }
        self.place(node, pod);
        self.pods.insert(
            key,
            PodState {
                node: node.to_string(),
                assumed: true,
                deadline: None,
            },
        );
    }

    /// The binding was written; the pod stays assumed until the informer
    /// shows it bound.
    pub fn finish_binding(&mut self, key: &str) {
        if let Some(s) = self.pods.get_mut(key) {
            s.deadline = Some(Instant::now() + ASSUMED_TTL);
        }
    }

    /// The binding failed: the assumed pod is taken back.
    pub fn forget(&mut self, key: &str) {
        if let Some(s) = self.pods.get(key)
            && s.assumed
        {
            let node = s.node.clone();
            self.pods.remove(key);
            self.unplace(&node, key);
        }
    }

    /// A pod bound to a node, as the informer sees it (add or update).
    pub fn upsert_bound(&mut self, pod: Arc<Pod>) {
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return;
        };
        let info = Arc::new(PodInfo::new(pod));
        let key = info.key.clone();
        if let Some(old) = self.pods.remove(&key) {
            self.unplace(&old.node, &key);
        }
        self.place(&node, info);
        self.pods.insert(
            key,
            PodState {
                node,
                assumed: false,
                deadline: None,
            },
        );
    }

    /// A pod gone (deleted, or finished and no longer holding resources).
    pub fn remove_pod(&mut self, key: &str) {
        if let Some(old) = self.pods.remove(key) {
            self.unplace(&old.node, key);
        }
    }

    /// Drops assumed pods whose binding finished long ago without the
    /// informer confirming them.
    pub fn cleanup_expired(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, s)| s.assumed && s.deadline.is_some_and(|d| d < now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.remove_pod(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: Option<&str>, cpu: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}},
                    "ports": [{"containerPort": 80, "hostPort": 8080}]}]},
            }))
            .unwrap(),
        )
    }

    fn node(name: &str) -> Arc<Node> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}})).unwrap())
    }

    #[test]
    fn assumed_pods_count_until_confirmed_or_forgotten() {
        let mut c = Cache::default();
        c.set_node(node("n1"));
        c.assume(Arc::new(PodInfo::new(pod("a", None, "500m"))), "n1");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 500);
        assert_eq!(c.node("n1").unwrap().used_ports.len(), 1);
        // The informer confirms the binding: counted once, no longer assumed.
        c.upsert_bound(pod("a", Some("n1"), "500m"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 500);
        assert!(!c.is_assumed("default/a"));
        c.assume(Arc::new(PodInfo::new(pod("b", None, "1"))), "n1");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1500);
        c.forget("default/b");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 500);
        c.remove_pod("default/a");
        assert_eq!(c.node("n1").unwrap().requested, Resources::default());
        assert!(c.node("n1").unwrap().used_ports.is_empty());
    }
}
