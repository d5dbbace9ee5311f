//! Leader election of two controller managers (and two schedulers) on the
//! real API server: exactly one acts; killing it hands over within the
//! lease duration, and no duplicate pods appear.

mod common;
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use support::kubelet::{Kubelets, NodeSpec};
use support::{Plane, eventually};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ha
spec:
  replicas: 4
  selector:
    matchLabels:
      app: ha
  template:
    metadata:
      labels:
        app: ha
    spec:
      containers:
      - name: c
        image: busybox
"#;

async fn holder(client: &kube::Client, name: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    leases
        .get_opt(name)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

async fn pod_count(client: &kube::Client) -> usize {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels("app=ha"))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_controller_manager_takes_over_and_no_duplicate_pods_appear() {
    let mut plane = Plane::new();
    plane.add_scheduler(&[]);
    plane.add_scheduler(&[]);
    let a = plane.add_controllers(&[]);
    let b = plane.add_controllers(&[]);
    let client = plane.client().await;
    let k = Kubelets::start(client.clone(), Duration::from_millis(100));
    k.add_node(NodeSpec::new("n1", "8")).await;
    let first = eventually(
        Duration::from_secs(20),
        "a controller manager leads",
        || holder(&client, "kube-controller-manager"),
    )
    .await;
    eventually(Duration::from_secs(20), "a scheduler leads", || {
        holder(&client, "kube-scheduler")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leaders: Vec<usize> = [a, b]
        .into_iter()
        .filter(|i| plane.components[*i].is_leader())
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one acts: {}", plane.logs());
    assert_eq!(
        plane
            .components
            .iter()
            .filter(|c| c.log.to_string_lossy().contains("scheduler") && c.is_leader())
            .count(),
        1
    );
    plane
        .cluster
        .api
        .kubectl_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    plane.kubectl_ok(&["rollout", "status", "deployment/ha", "--timeout=60s"]);
    assert_eq!(pod_count(&client).await, 4);

    let leader = leaders[0];
    plane.components[leader].kill();
    let killed = Instant::now();
    // While no one leads, scale up: the new leader must do it exactly once.
    plane.kubectl_ok(&["scale", "deployment/ha", "--replicas=6"]);
    let second = eventually(
        Duration::from_secs(25),
        "the standby takes over",
        || async {
            holder(&client, "kube-controller-manager")
                .await
                .filter(|h| *h != first)
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(18),
        "takeover took {took:?} (lease 15 s + retry)"
    );
    assert_ne!(first, second);
    plane.kubectl_ok(&["rollout", "status", "deployment/ha", "--timeout=60s"]);
    for _ in 0..10 {
        assert_eq!(pod_count(&client).await, 6, "no duplicate pods");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_lose_their_lease_campaign_again_and_act() {
    let mut plane = Plane::start(&[]);
    let client = plane.client().await;
    for lease in ["kube-controller-manager", "kube-scheduler"] {
        eventually(Duration::from_secs(20), "the components lead", || {
            holder(&client, lease)
        })
        .await;
    }
    let pids: Vec<Option<u32>> = plane.components.iter().map(|c| c.pid()).collect();
    // The API server gone for longer than the renew deadline (10 s): both
    // lose their leases.
    plane.cluster.api.stop();
    tokio::time::sleep(Duration::from_secs(16)).await;
    plane.cluster.api.resume();
    plane.cluster.api.wait_ready(Duration::from_secs(30));
    for c in &plane.components {
        eventually(Duration::from_secs(20), "the loss is logged", || async {
            c.log_text()
                .contains("stopped acting; starting again to campaign for the lease")
                .then_some(())
        })
        .await;
    }
    // The same processes lead again and act.
    for lease in ["kube-controller-manager", "kube-scheduler"] {
        eventually(Duration::from_secs(30), "the components lead again", || {
            holder(&client, lease)
        })
        .await;
    }
    assert_eq!(
        plane.components.iter().map(|c| c.pid()).collect::<Vec<_>>(),
        pids
    );
    assert!(
        plane.components.iter_mut().all(|c| c.is_running()),
        "{}",
        plane.logs()
    );
    let k = Kubelets::start(client.clone(), Duration::from_millis(100));
    k.add_node(NodeSpec::new("n1", "8")).await;
    plane
        .cluster
        .api
        .kubectl_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    plane.kubectl_ok(&["rollout", "status", "deployment/ha", "--timeout=60s"]);
    assert_eq!(pod_count(&client).await, 4);
}
