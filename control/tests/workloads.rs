//! Deployments, ReplicaSets, the scheduler and the garbage collector
//! together, against real etcd and the real API server, driven with the
//! real kubectl; nodes are Node objects whose kubelet the test plays.

mod common;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};

use common::examples;
use support::kubelet::{Kubelets, NodeSpec};
use support::{Plane, eventually};

/// Non-terminating pods of `selector` per node (unbound under "").
async fn placement(client: &kube::Client, selector: &str) -> BTreeMap<String, usize> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut m = BTreeMap::new();
    for p in pods
        .list(&ListParams::default().labels(selector))
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

async fn three_nodes(client: &kube::Client) -> Kubelets {
    let k = Kubelets::start(client.clone(), Duration::from_millis(200));
    for n in ["node-a", "node-b", "node-c"] {
        k.add_node(NodeSpec::new(n, "4")).await;
    }
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_deployment_spreads_one_pod_per_node_and_scales_keeping_spread() {
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let _k = three_nodes(&client).await;
    let manifest = examples().join("nginx-deployment.yaml");
    let out = plane.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(
        out.contains("deployment.apps/nginx-deployment created"),
        "{out}"
    );
    let spread = eventually(Duration::from_secs(30), "3 pods bound", || async {
        let m = placement(&client, "app=nginx").await;
        (m.values().sum::<usize>() == 3 && !m.contains_key("")).then_some(m)
    })
    .await;
    assert_eq!(
        spread.len(),
        3,
        "one pod per node: {spread:?}\n{}",
        plane.logs()
    );
    assert!(spread.values().all(|n| *n == 1));
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let list = rss
        .list(&ListParams::default().labels("app=nginx"))
        .await
        .unwrap()
        .items;
    assert_eq!(list.len(), 1, "exactly one ReplicaSet");
    let rs = &list[0];
    let hash = rs.labels()["pod-template-hash"].clone();
    assert_eq!(rs.name_any(), format!("nginx-deployment-{hash}"));
    assert_eq!(rs.annotations()["deployment.kubernetes.io/revision"], "1");
    let owner = &rs.owner_references()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("Deployment", Some(true), Some(true))
    );
    let status = plane.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/nginx-deployment",
        "--timeout=60s",
    ]);
    assert!(status.contains("successfully rolled out"), "{status}");

    plane.kubectl_ok(&["scale", "deployment/nginx-deployment", "--replicas=10"]);
    eventually(Duration::from_secs(40), "10 pods bound", || async {
        let m = placement(&client, "app=nginx").await;
        (m.values().sum::<usize>() == 10 && !m.contains_key("")).then_some(())
    })
    .await;
    plane.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/nginx-deployment",
        "--timeout=60s",
    ]);
    plane.kubectl_ok(&["scale", "deployment/nginx-deployment", "--replicas=3"]);
    let m = eventually(Duration::from_secs(40), "3 pods left", || async {
        let m = placement(&client, "app=nginx").await;
        (m.values().sum::<usize>() == 3).then_some(m)
    })
    .await;
    assert_eq!(m.len(), 3, "survivors stay spread one per node: {m:?}");
    plane.kubectl_ok(&["scale", "deployment/nginx-deployment", "--replicas=1"]);
    eventually(Duration::from_secs(40), "1 pod left", || async {
        (placement(&client, "app=nginx")
            .await
            .values()
            .sum::<usize>()
            == 1)
            .then_some(())
    })
    .await;
    let events = plane.kubectl_ok(&["get", "events", "-o", "custom-columns=R:.reason,M:.message"]);
    assert!(
        events.contains("Scaled up replica set nginx-deployment-"),
        "{events}"
    );
    assert!(
        events.contains("Scaled down replica set nginx-deployment-"),
        "{events}"
    );
    assert!(
        events.contains("SuccessfulCreate") && events.contains("SuccessfulDelete"),
        "{events}"
    );
    assert!(
        events.contains("Successfully assigned default/nginx-deployment-"),
        "{events}"
    );

    // kubectl delete cascades through the garbage collector.
    plane.kubectl_ok(&["delete", "deployment", "nginx-deployment"]);
    eventually(
        Duration::from_secs(30),
        "ReplicaSet and pods gone",
        || async {
            let rs_left = rss
                .list(&ListParams::default().labels("app=nginx"))
                .await
                .unwrap()
                .items
                .len();
            let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
            let pods_left = pods
                .list(&ListParams::default().labels("app=nginx"))
                .await
                .unwrap()
                .items
                .len();
            (rs_left == 0 && pods_left == 0).then_some(())
        },
    )
    .await;
}

const ROLLING: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_with_max_unavailable_zero_never_drops_availability_and_undo_restores() {
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let _k = three_nodes(&client).await;
    plane
        .cluster
        .api
        .kubectl_stdin(&["apply", "-f", "-"], ROLLING);
    plane.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);

    // Watch every pod event and count available pods (Ready, not being
    // deleted) at each one.
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::new(Mutex::new(0usize));
    let watch = {
        let (client, violations, seen) = (client.clone(), violations.clone(), seen.clone());
        tokio::spawn(async move {
            let pods: Api<Pod> = Api::namespaced(client, "default");
            let mut state: HashMap<String, bool> = HashMap::new();
            let mut listing = false;
            let mut w = std::pin::pin!(
                watcher::watcher(pods, watcher::Config::default().labels("app=web"))
                    .default_backoff()
            );
            while let Some(Ok(ev)) = w.next().await {
                match ev {
                    // A (re)list: count once it is complete.
                    watcher::Event::Init => {
                        listing = true;
                        state.clear();
                        continue;
                    }
                    watcher::Event::InitDone => listing = false,
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        let ready = p
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            });
                        state.insert(
                            p.name_any(),
                            ready && p.metadata.deletion_timestamp.is_none(),
                        );
                    }
                    watcher::Event::Delete(p) => {
                        state.remove(&p.name_any());
                    }
                }
                if listing {
                    continue;
                }
                *seen.lock().unwrap() += 1;
                let available = state.values().filter(|v| **v).count();
                if available < 3 {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("{available} available: {state:?}"));
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    plane.kubectl_ok(&["set", "image", "deployment/web", "nginx=nginx:1.16.1"]);
    plane.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let images = plane.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    eventually(Duration::from_secs(20), "old pods gone", || async {
        let i = plane.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ]);
        (!i.contains("1.14.2")).then_some(())
    })
    .await;
    let _ = images;
    assert!(*seen.lock().unwrap() > 6, "the watch saw the rollout");
    assert!(
        violations.lock().unwrap().is_empty(),
        "availability dropped: {:?}",
        violations.lock().unwrap()
    );

    let hist = plane.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(hist.contains('1') && hist.contains('2'), "{hist}");
    plane.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    let undo_status = plane.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let dep_yaml = plane.kubectl_ok(&["get", "deploy", "web", "-o", "yaml"]);
    let img = plane.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}"]);
    assert_eq!(img, "nginx:1.14.2 3");
    // The RS list is read until it shows the end state (a read right after
    // `rollout status` has been seen to lag by a few milliseconds).
    let parts = eventually(Duration::from_secs(10), "old ReplicaSet back as revision 3", || async {
        let rss = plane.kubectl_ok(&[
            "get",
            "rs",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.spec.replicas}:{.metadata.annotations.deployment\\.kubernetes\\.io/revision} {end}",
        ]);
        let mut parts: Vec<String> = rss.split_whitespace().map(str::to_string).collect();
        parts.sort();
        (parts == ["0:2", "3:3"]).then_some(parts)
    })
    .await;
    assert_eq!(parts.len(), 2, "{undo_status}\n{dep_yaml}");
    assert!(
        violations.lock().unwrap().is_empty(),
        "availability dropped during undo: {:?}",
        violations.lock().unwrap()
    );

    // Pause/resume and restart.
    plane.kubectl_ok(&["rollout", "pause", "deployment/web"]);
    plane.kubectl_ok(&["set", "image", "deployment/web", "nginx=nginx:1.17"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rs_count = plane
        .kubectl_ok(&["get", "rs", "-l", "app=web", "-o", "name"])
        .lines()
        .count();
    assert_eq!(rs_count, 2, "a paused deployment does not roll out");
    let cond = plane.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
    ]);
    assert_eq!(cond, "DeploymentPaused");
    plane.kubectl_ok(&["rollout", "resume", "deployment/web"]);
    plane.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    plane.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    plane.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let rs_count = plane
        .kubectl_ok(&["get", "rs", "-l", "app=web", "-o", "name"])
        .lines()
        .count();
    assert_eq!(rs_count, 4);
    watch.abort();
    assert!(
        violations.lock().unwrap().is_empty(),
        "availability dropped: {:?}",
        violations.lock().unwrap()
    );
}
