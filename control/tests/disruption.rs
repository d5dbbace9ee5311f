//! PodDisruptionBudgets end to end: the disruption controller keeps a
//! budget's status from a Deployment's pods, and the eviction API (posted
//! directly and through `kubectl drain`) honours it, against real etcd, the
//! real API server, scheduler and controller manager, with stand-in
//! kubelets; driven with the real kubectl.

mod common;
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
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

/// A pod `name` labelled `app=api`, Running, Ready or not.
async fn running_pod(client: &kube::Client, name: &str, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "api"}},
        "spec": {"nodeName": "node-x", "containers": [{"name": "c", "image": "registry.local/api:1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": if ready { "True" } else { "False" }},
    ]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// A budget `name` over `app=api` with the given spec extras and status
/// (written as the disruption controller would).
async fn budget(
    client: &kube::Client,
    name: &str,
    spec: Value,
    status: Value,
) -> PodDisruptionBudget {
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let mut s = json!({"selector": {"matchLabels": {"app": "api"}}});
    s.as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    let pdb: PodDisruptionBudget =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": s})).unwrap();
    let mut created = api.create(&PostParams::default(), &pdb).await.unwrap();
    created.status = Some(serde_json::from_value(status).unwrap());
    api.replace_status(name, &PostParams::default(), &created)
        .await
        .unwrap()
}

async fn exists(client: &kube::Client, pod: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.get_opt(pod).await.unwrap().is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_decisions_follow_the_budget() {
    let plane = Plane::new();
    let client = plane.client().await;
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");

    // A budget whose status is behind its spec refuses.
    running_pod(&client, "a", true).await;
    budget(&client, "stale", json!({"minAvailable": 1}),
        json!({"observedGeneration": 0, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2})).await;
    let (code, body) = evict(&client, "a").await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["message"], VIOLATES);
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "The disruption budget stale is still being processed by the server."
    );
    assert_eq!(body["details"]["retryAfterSeconds"], 10);

    // Two budgets over one pod: the eviction subresource does not decide.
    budget(&client, "second", json!({"maxUnavailable": 1}),
        json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2})).await;
    let (code, body) = evict(&client, "a").await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["message"],
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    budgets.delete("stale", &Default::default()).await.unwrap();

    // A dry run spends nothing and deletes nothing.
    let req = http::Request::post("/api/v1/namespaces/default/pods/a/eviction?dryRun=All")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(
                &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "a"}}),
            )
            .unwrap(),
        )
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert!(exists(&client, "a").await);
    let s = budgets.get_status("second").await.unwrap().status.unwrap();
    assert_eq!((s.disruptions_allowed, s.disrupted_pods), (1, None));

    // The eviction spends the budget, records the pod and marks it.
    let (code, body) = evict(&client, "a").await;
    assert_eq!(code, 201, "{body}");
    assert!(
        !exists(&client, "a").await || {
            let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
            pods.get("a")
                .await
                .unwrap()
                .metadata
                .deletion_timestamp
                .is_some()
        }
    );
    let s = budgets.get_status("second").await.unwrap().status.unwrap();
    assert_eq!(s.disruptions_allowed, 0);
    assert!(s.disrupted_pods.unwrap().contains_key("a"));
    let c = &s.conditions.unwrap()[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
        ("DisruptionAllowed", "False", "InsufficientPods")
    );

    // An unready pod: refused while the application is short of healthy
    // pods (IfHealthyBudget), let go with AlwaysAllow.
    running_pod(&client, "b", false).await;
    budgets.delete("second", &Default::default()).await.unwrap();
    budget(&client, "short", json!({"minAvailable": 2}),
        json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 2, "expectedPods": 2})).await;
    let (code, body) = evict(&client, "b").await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "The disruption budget short needs 2 healthy pods and has 1 currently"
    );
    budgets
        .patch(
            "short",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}})),
        )
        .await
        .unwrap();
    let (code, body) = evict(&client, "b").await;
    assert_eq!(code, 201, "{body}");
    let s = budgets.get_status("short").await.unwrap().status.unwrap();
    assert_eq!(
        s.disruptions_allowed, 0,
        "an unhealthy pod spends no disruption"
    );

    // kubectl: the kind, its validation and its description.
    let bad = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: bad\nspec:\n  minAvailable: 1\n  maxUnavailable: 1\n  unhealthyPodEvictionPolicy: Never\n";
    let out = plane.cluster.api.kubectl_stdin(&["create", "-f", "-"], bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("The PodDisruptionBudget \"bad\" is invalid"),
        "{err}"
    );
    assert!(
        err.contains(": minAvailable and maxUnavailable cannot be both set"),
        "{err}"
    );
    assert!(
        err.contains("spec.unhealthyPodEvictionPolicy: Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""),
        "{err}"
    );
    let d = plane.kubectl_ok(&["describe", "pdb", "short"]);
    assert!(d.contains("Min available:  2"), "{d}");
    assert!(d.contains("Selector:       app=api"), "{d}");
    assert!(d.contains("Allowed disruptions:  0"), "{d}");
    let r = plane.kubectl_ok(&["api-resources", "--api-group=policy"]);
    assert!(
        r.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w == [
                "poddisruptionbudgets",
                "pdb",
                "policy/v1",
                "true",
                "PodDisruptionBudget",
            ]
        }),
        "{r}"
    );
}
