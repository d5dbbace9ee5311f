//! Nodes without kubelets, driven by the test: Node objects with capacity
//! and a Ready condition, heartbeats through Leases in `kube-node-lease`,
//! and a stand-in for the kubelet's pod status writes: pods bound to a live
//! node become Running and Ready (after an optional delay) with an IP, and
//! pods being deleted are removed (as the kubelet confirms a deletion). A
//! stopped node does none of this any more.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

/// What a test node looks like.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<serde_json::Value>,
}

impl NodeSpec {
    pub fn new(name: &str, cpu: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            cpu: cpu.into(),
            memory: "8Gi".into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    pub fn taint(mut self, key: &str, effect: &str) -> Self {
        self.taints.push(json!({"key": key, "effect": effect}));
        self
    }
}

struct State {
    live: HashSet<String>,
    index: HashMap<String, usize>,
    ips: HashMap<String, String>,
}

/// The stand-in kubelet for every test node.
pub struct Kubelets {
    client: kube::Client,
    state: Arc<Mutex<State>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Kubelets {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Kubelets {
    /// Starts heartbeats and pod handling; pods become Ready `ready_after`
    /// after they are seen bound.
    pub fn start(client: kube::Client, ready_after: Duration) -> Kubelets {
        let state = Arc::new(Mutex::new(State {
            live: HashSet::new(),
            index: HashMap::new(),
            ips: HashMap::new(),
        }));
        let mut tasks = Vec::new();
        {
            let (client, state) = (client.clone(), state.clone());
            tasks.push(tokio::spawn(async move {
                let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
                loop {
                    let live: Vec<String> = state.lock().unwrap().live.iter().cloned().collect();
                    for n in live {
                        renew(&leases, &n).await;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }));
        }
        {
            let (client, state) = (client.clone(), state.clone());
            tasks.push(tokio::spawn(async move {
                let pods: Api<Pod> = Api::all(client.clone());
                let mut w = std::pin::pin!(watcher::watcher(pods, watcher::Config::default()).default_backoff());
                while let Some(ev) = w.next().await {
                    let Ok(ev) = ev else { continue };
                    let list = match ev {
                        watcher::Event::Apply(p) | watcher::Event::InitApply(p) => vec![p],
                        _ => vec![],
                    };
                    for p in list {
                        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
                        let (live, idx) = {
                            let st = state.lock().unwrap();
                            (st.live.contains(&node), st.index.get(&node).copied().unwrap_or(0))
                        };
                        if !live {
                            continue;
                        }
                        let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
                        if p.metadata.deletion_timestamp.is_some() {
                            let _ = api.delete(&p.name_any(), &DeleteParams::default().grace_period(0)).await;
                            continue;
                        }
                        let ready = p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                        // A finished pod stays finished, as with a kubelet.
                        let finished = p.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|ph| ph == "Succeeded" || ph == "Failed");
                        if ready || finished {
                            continue;
                        }
                        let ip = {
                            let mut st = state.lock().unwrap();
                            let n = st.ips.len();
                            st.ips.entry(p.uid().unwrap_or_default()).or_insert_with(|| format!("10.244.{idx}.{}", 2 + n % 250)).clone()
                        };
                        let (client, p) = (client.clone(), p.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(ready_after).await;
                            let api: Api<Pod> = Api::namespaced(client, &p.namespace().unwrap_or_default());
                            let now = Time(jiff::Timestamp::now());
                            let status = json!({"status": {
                                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.0.1", "startTime": now,
                                "conditions": [
                                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                                ],
                            }});
                            let _ = api.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Strategic(status)).await;
                        });
                    }
                }
            }));
        }
        Kubelets {
            client,
            state,
            tasks,
        }
    }

    /// Creates a Ready node with the given capacity and starts its heartbeat.
    pub async fn add_node(&self, spec: NodeSpec) {
        let mut labels = spec.labels.clone();
        labels
            .entry("kubernetes.io/hostname".into())
            .or_insert_with(|| spec.name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        let cap = json!({"cpu": spec.cpu, "memory": spec.memory, "pods": "110"});
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": spec.name, "labels": labels},
            "spec": {"taints": if spec.taints.is_empty() { serde_json::Value::Null } else { json!(spec.taints) }},
        }))
        .unwrap();
        let api: Api<Node> = Api::all(self.client.clone());
        api.create(&PostParams::default(), &node)
            .await
            .expect("create node");
        let now = Time(jiff::Timestamp::now());
        let status = json!({"status": {"capacity": cap, "allocatable": cap, "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now},
        ]}});
        api.patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("node status");
        {
            let mut st = self.state.lock().unwrap();
            let i = st.index.len() + 1;
            st.index.insert(spec.name.clone(), i);
            st.live.insert(spec.name.clone());
        }
        renew(
            &Api::namespaced(self.client.clone(), "kube-node-lease"),
            &spec.name,
        )
        .await;
    }

    /// The node's kubelet dies: no more heartbeats or pod updates.
    pub fn stop(&self, node: &str) {
        self.state.lock().unwrap().live.remove(node);
    }
}

async fn renew(leases: &Api<Lease>, node: &str) {
    let now = MicroTime(jiff::Timestamp::now());
    match leases.get_opt(node).await {
        Ok(Some(mut l)) => {
            let spec = l.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(now);
            let _ = leases.replace(node, &PostParams::default(), &l).await;
        }
        Ok(None) => {
            let l: Lease = serde_json::from_value(json!({
                "metadata": {"name": node, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now},
            }))
            .unwrap();
            let _ = leases.create(&PostParams::default(), &l).await;
        }
        Err(_) => {}
    }
}
