//! Node lifecycle against real etcd and the real API server: a node whose
//! lease stops is marked Unknown and tainted, its pods are evicted after
//! their toleration and recreated on other nodes by their owners.

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

use support::kubelet::{Kubelets, NodeSpec};
use support::{Plane, eventually};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 3
  selector:
    matchLabels:
      app: app
  template:
    metadata:
      labels:
        app: app
    spec:
      tolerations:
      - key: node.kubernetes.io/unreachable
        operator: Exists
        effect: NoExecute
        tolerationSeconds: 3
      - key: node.kubernetes.io/not-ready
        operator: Exists
        effect: NoExecute
        tolerationSeconds: 3
      containers:
      - name: c
        image: busybox
"#;

async fn placement(client: &kube::Client) -> BTreeMap<String, usize> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut m = BTreeMap::new();
    for p in pods
        .list(&ListParams::default().labels("app=app"))
        .await
        .unwrap()
        .items
    {
        if p.metadata.deletion_timestamp.is_none() {
            *m.entry(p.spec.and_then(|s| s.node_name).unwrap_or_default())
                .or_default() += 1;
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_is_tainted_and_its_pods_are_recreated_elsewhere() {
    let grace = Duration::from_secs(4);
    let plane = Plane::start(&[
        "--node-monitor-grace-period",
        "4s",
        "--node-monitor-period",
        "1s",
    ]);
    let client = plane.client().await;
    let k = Kubelets::start(client.clone(), Duration::from_millis(100));
    for n in ["n1", "n2", "n3"] {
        k.add_node(NodeSpec::new(n, "4")).await;
    }
    plane
        .cluster
        .api
        .kubectl_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    plane.kubectl_ok(&["rollout", "status", "deployment/app", "--timeout=60s"]);
    let before = placement(&client).await;
    assert_eq!(before.get("n1"), Some(&1), "{before:?}");
    // Nodes stay Ready while their leases are renewed.
    tokio::time::sleep(grace + Duration::from_secs(2)).await;
    let ready = plane.kubectl_ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready, "True True True", "{}", plane.logs());

    let stopped = Instant::now();
    k.stop("n1");
    let nodes: Api<Node> = Api::all(client.clone());
    let node =
        eventually(
            Duration::from_secs(20),
            "n1 tainted unreachable",
            || async {
                let n = nodes.get("n1").await.ok()?;
                let tainted =
                    n.spec.as_ref()?.taints.as_ref()?.iter().any(|t| {
                        t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute"
                    });
                tainted.then_some(n)
            },
        )
        .await;
    let ready = node
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "Unknown");
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    // Not before the grace period, counted from the last heartbeat (the
    // stand-in kubelet renews every 500 ms).
    assert!(
        stopped.elapsed() + Duration::from_secs(1) >= grace,
        "tainted after {:?}",
        stopped.elapsed()
    );
    let after = eventually(Duration::from_secs(30), "pods recreated off n1", || async {
        let m = placement(&client).await;
        (!m.contains_key("n1") && m.values().sum::<usize>() == 3 && !m.contains_key(""))
            .then_some(m)
    })
    .await;
    // grace (4 s) + toleration (3 s) + monitor period and scheduling slack.
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "took {:?}",
        stopped.elapsed()
    );
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        vec!["n2".to_string(), "n3".to_string()]
    );
    let events = plane.kubectl_ok(&[
        "get",
        "events",
        "-A",
        "-o",
        "custom-columns=R:.reason,M:.message",
    ]);
    assert!(events.contains("TaintManagerEviction"), "{events}");
    assert!(
        events.contains("Node n1 status is now: NodeNotReady"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_deleted_node_are_collected_after_the_quarantine() {
    let plane = Plane::start(&["--terminated-pod-gc-threshold=1"]);
    let client = plane.client().await;
    let k = Kubelets::start(client.clone(), Duration::from_millis(100));
    k.add_node(NodeSpec::new("doomed", "4")).await;
    k.add_node(NodeSpec::new("stays", "4")).await;
    let bound = |name: &str, node: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: busybox}}]\n"
        )
    };
    for (name, node) in [("orphan", "doomed"), ("kept", "stays")] {
        plane
            .cluster
            .api
            .kubectl_stdin(&["apply", "-f", "-"], &bound(name, node));
    }
    // Terminated pods beyond the threshold (1): the oldest goes.
    for name in ["done-old", "done-new"] {
        plane
            .cluster
            .api
            .kubectl_stdin(&["apply", "-f", "-"], &bound(name, "stays"));
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        // Running first (the stand-in kubelet starts it), then finished.
        eventually(Duration::from_secs(20), "the pod runs", || async {
            let p = pods.get(name).await.ok()?;
            (p.status?.phase.as_deref() == Some("Running")).then_some(())
        })
        .await;
        pods.patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"status": {"phase": "Succeeded"}})),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    k.stop("doomed");
    plane.kubectl_ok(&["delete", "node", "doomed"]);
    let deleted = Instant::now();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let names = || async {
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect::<Vec<_>>()
    };
    eventually(Duration::from_secs(90), "the orphan collected", || async {
        (!names().await.contains(&"orphan".to_owned())).then_some(())
    })
    .await;
    assert!(
        deleted.elapsed() >= baton_control::controllers::podgc::QUARANTINE,
        "not before the quarantine: {:?}",
        deleted.elapsed()
    );
    let left = names().await;
    assert!(left.contains(&"kept".to_owned()), "{left:?}");
    assert!(left.contains(&"done-new".to_owned()), "{left:?}");
    assert!(!left.contains(&"done-old".to_owned()), "{left:?}");
}
