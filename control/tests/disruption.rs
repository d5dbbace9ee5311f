//! PodDisruptionBudgets end to end: the disruption controller keeps a
//! budget's status from a Deployment's pods, and the eviction API (posted
//! directly and through `kubectl drain`) honours it, against real etcd, the
//! real API server, scheduler and controller manager, with stand-in
//! kubelets; driven with the real kubectl.

mod common;
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use support::kubelet::{Kubelets, NodeSpec};
use support::{Plane, eventually};

const VIOLATES: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Running pods of the `web` Deployment that are not being deleted.
async fn web_pods(client: &kube::Client) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// POSTs an Eviction of `pod` with the admin client: the status code and
/// the Status answered.
async fn evict(client: &kube::Client, pod: &str) -> (u16, Value) {
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": pod, "namespace": "default"}});
    let req = http::Request::post(format!("/api/v1/namespaces/default/pods/{pod}/eviction"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The `kubectl get pdb web` row, split in cells.
fn pdb_row(plane: &Plane) -> Vec<String> {
    plane
        .kubectl_ok(&["get", "pdb", "web", "--no-headers"])
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

async fn allowed_disruptions(plane: &Plane, n: &str) {
    eventually(
        Duration::from_secs(40),
        &format!("ALLOWED DISRUPTIONS {n}"),
        || async {
            let row = pdb_row(plane);
            (row.get(3).map(String::as_str) == Some(n)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_and_drain_honour_a_deployments_disruption_budget() {
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let kubelets = Kubelets::start(client.clone(), Duration::from_secs(3));
    for n in ["node-a", "node-b", "node-c"] {
        kubelets.add_node(NodeSpec::new(n, "4")).await;
    }
    plane.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=registry.local/web:1",
        "--replicas=3",
    ]);
    let out = plane.kubectl_ok(&[
        "create",
        "poddisruptionbudget",
        "web",
        "--selector=app=web",
        "--min-available=2",
    ]);
    assert!(
        out.contains("poddisruptionbudget.policy/web created"),
        "{out}"
    );
    allowed_disruptions(&plane, "1").await;
    let table = plane.kubectl_ok(&["get", "pdb"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|s| !s.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ]
    );
    assert_eq!(pdb_row(&plane)[..4], ["web", "2", "N/A", "1"]);
    let status = plane.kubectl_ok(&["get", "pdb", "web", "-o", "jsonpath={.status}"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        (
            &status["expectedPods"],
            &status["currentHealthy"],
            &status["desiredHealthy"],
            &status["disruptionsAllowed"],
            &status["observedGeneration"]
        ),
        (&json!(3), &json!(3), &json!(2), &json!(1), &json!(1)),
        "{status}"
    );
    let cond = &status["conditions"][0];
    assert_eq!(
        (&cond["type"], &cond["status"], &cond["reason"]),
        (
            &json!("DisruptionAllowed"),
            &json!("True"),
            &json!("SufficientPods")
        )
    );

    // One eviction spends the budget; the next is refused until the
    // replacement pod is Ready.
    let pods = web_pods(&client).await;
    assert_eq!(pods.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let first = pods[0].name_any();
    let file = dir.path().join("eviction.json");
    std::fs::write(
        &file,
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": first, "namespace": "default"}}).to_string(),
    )
    .unwrap();
    plane.kubectl_ok(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{first}/eviction"),
        "-f",
        file.to_str().unwrap(),
    ]);
    let second = pods[1].name_any();
    let (code, refused) = evict(&client, &second).await;
    assert_eq!(code, 429, "{refused}");
    assert_eq!(refused["reason"], "TooManyRequests");
    assert_eq!(refused["message"], VIOLATES);
    let cause = &refused["details"]["causes"][0];
    assert_eq!(cause["reason"], "DisruptionBudget", "{refused}");
    assert!(
        cause["message"]
            .as_str()
            .unwrap()
            .starts_with("The disruption budget web needs 2 healthy pods and has "),
        "{refused}"
    );
    std::fs::write(
        &file,
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": second, "namespace": "default"}}).to_string(),
    )
    .unwrap();
    let out = plane.cluster.api.kubectl(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{second}/eviction"),
        "-f",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(VIOLATES), "{err}");
    let status = plane.kubectl_ok(&[
        "get",
        "pdb",
        "web",
        "-o",
        "jsonpath={.status.disruptedPods}",
    ]);
    assert!(status.is_empty() || !status.contains(&second), "{status}");
    // The replacement becomes Ready: the budget allows one again.
    allowed_disruptions(&plane, "1").await;
    assert_eq!(web_pods(&client).await.len(), 3);
    let (code, body) = evict(&client, &second).await;
    assert_eq!(code, 201, "{body}");
    allowed_disruptions(&plane, "1").await;

    // A budget with no room makes `kubectl drain` retry and give up…
    plane.kubectl_ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":3}}"#,
    ]);
    allowed_disruptions(&plane, "0").await;
    let node = web_pods(&client).await[0]
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap();
    let out = plane
        .cluster
        .api
        .kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=12s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("(will retry after 5s): {VIOLATES}")),
        "{err}"
    );
    assert!(err.contains("global timeout reached: 12s"), "{err}");
    // …and once the budget has room, the drain goes through.
    plane.kubectl_ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":2}}"#,
    ]);
    allowed_disruptions(&plane, "1").await;
    let out = plane.kubectl_ok(&["drain", &node, "--ignore-daemonsets", "--timeout=60s"]);
    assert!(out.contains(&format!("node/{node} drained")), "{out}");
    let on_node = web_pods(&client)
        .await
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str()))
        .count();
    assert_eq!(on_node, 0);
    drop(kubelets);
}
