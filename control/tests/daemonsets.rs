//! DaemonSets end to end: the controller, the scheduler and the API
//! server against real etcd, driven with the real kubectl; nodes are Node
//! objects whose kubelet the test plays.

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use support::kubelet::{Kubelets, NodeSpec};
use support::{Plane, eventually};

const AGENT: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      nodeSelector:
        tier: worker
      containers:
      - name: agent
        image: agent:1
"#;

/// The agent's live pods: node (unbound under "") to (image, generation).
async fn agents(client: &kube::Client) -> BTreeMap<String, Vec<(String, String)>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut m: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for p in pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
    {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let generation = p
            .labels()
            .get("pod-template-generation")
            .cloned()
            .unwrap_or_default();
        let spec = p.spec.unwrap_or_default();
        let image = spec.containers[0].image.clone().unwrap_or_default();
        m.entry(spec.node_name.unwrap_or_default())
            .or_default()
            .push((image, generation));
    }
    m
}

fn on(nodes: &[&str], image: &str, generation: &str) -> BTreeMap<String, Vec<(String, String)>> {
    nodes
        .iter()
        .map(|n| (n.to_string(), vec![(image.into(), generation.into())]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_set_runs_on_eligible_nodes_follows_new_nodes_and_rolls() {
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let k = Kubelets::start(client.clone(), Duration::from_millis(200));
    k.add_node(NodeSpec::new("node-a", "4").label("tier", "worker"))
        .await;
    k.add_node(
        NodeSpec::new("node-b", "4")
            .label("tier", "worker")
            .taint("dedicated", "NoSchedule"),
    )
    .await;
    k.add_node(NodeSpec::new("node-c", "4").label("tier", "db"))
        .await;
    let out = plane
        .cluster
        .api
        .kubectl_stdin(&["apply", "-f", "-"], AGENT);
    assert!(out.status.success(), "{out:?}");

    // Only node-a is eligible; its pod is bound by the scheduler.
    let placed = eventually(Duration::from_secs(30), "one agent on node-a", || async {
        let m = agents(&client).await;
        (m == on(&["node-a"], "agent:1", "1")).then_some(m)
    })
    .await;
    assert_eq!(placed.len(), 1, "{}", plane.logs());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .remove(0);
    assert!(pod.labels().contains_key("controller-revision-hash"));
    let owner = &pod.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("DaemonSet", "agent", Some(true))
    );
    let affinity = serde_json::to_value(&pod.spec.as_ref().unwrap().affinity).unwrap();
    assert_eq!(
        affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"],
        serde_json::json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-a"]}]}])
    );
    let tolerations: Vec<String> = pod
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .iter()
        .flatten()
        .map(|t| t.key.clone().unwrap_or_default())
        .collect();
    assert!(
        tolerations.contains(&"node.kubernetes.io/unschedulable".to_string()),
        "{tolerations:?}"
    );
    let status = plane.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(status.contains("successfully rolled out"), "{status}");

    // A new eligible node gets a pod.
    k.add_node(NodeSpec::new("node-d", "4").label("tier", "worker"))
        .await;
    eventually(
        Duration::from_secs(30),
        "agents on node-a and node-d",
        || async {
            (agents(&client).await == on(&["node-a", "node-d"], "agent:1", "1")).then_some(())
        },
    )
    .await;
    plane.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    let table = eventually(Duration::from_secs(20), "status counts 2", || async {
        let t = plane.kubectl_ok(&["get", "ds", "agent"]);
        let row: Vec<String> = t
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        (row.len() == 8 && row[1..6] == ["2", "2", "2", "2", "2"]).then_some(t)
    })
    .await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE",
            "SELECTOR",
            "AGE"
        ],
        "{table}"
    );
    assert!(table.contains("tier=worker"), "{table}");

    // A template change rolls the pods, one node at a time.
    plane.kubectl_ok(&["set", "image", "ds/agent", "agent=agent:2"]);
    plane.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    eventually(
        Duration::from_secs(30),
        "agents rolled to agent:2",
        || async {
            (agents(&client).await == on(&["node-a", "node-d"], "agent:2", "2")).then_some(())
        },
    )
    .await;
    let history = plane.kubectl_ok(&["rollout", "history", "ds/agent"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let crs = plane.kubectl_ok(&["get", "controllerrevisions"]);
    assert!(
        crs.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["NAME", "CONTROLLER", "REVISION", "AGE"]
            && crs.contains("daemonset.apps/agent"),
        "{crs}"
    );

    // Undo restores the first template as revision 3.
    plane.kubectl_ok(&["rollout", "undo", "ds/agent"]);
    plane.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    eventually(
        Duration::from_secs(30),
        "agents back on agent:1",
        || async {
            (agents(&client).await == on(&["node-a", "node-d"], "agent:1", "3")).then_some(())
        },
    )
    .await;
    let history = plane.kubectl_ok(&["rollout", "history", "ds/agent"]);
    assert!(
        history.lines().any(|l| l.trim_start().starts_with('3')),
        "{history}"
    );
    let events = plane.kubectl_ok(&["get", "events", "-o", "custom-columns=R:.reason,M:.message"]);
    for want in [
        "SuccessfulCreate",
        "SuccessfulDelete",
        "Successfully assigned default/agent-",
    ] {
        assert!(events.contains(want), "{want}: {events}");
    }

    // A restart rolls the same template again.
    plane.kubectl_ok(&["rollout", "restart", "ds/agent"]);
    plane.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    eventually(Duration::from_secs(30), "agents restarted", || async {
        (agents(&client).await == on(&["node-a", "node-d"], "agent:1", "4")).then_some(())
    })
    .await;

    // Deleting the DaemonSet collects its pods and revisions.
    plane.kubectl_ok(&["delete", "ds", "agent"]);
    eventually(
        Duration::from_secs(30),
        "pods and revisions gone",
        || async {
            let left = plane.kubectl_ok(&["get", "pods,controllerrevisions", "-o", "name"]);
            left.trim().is_empty().then_some(())
        },
    )
    .await;
}
