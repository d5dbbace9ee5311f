//! The scheduler against real etcd and the real API server: unschedulable
//! pods are reported as kube-scheduler reports them and scheduled once the
//! cluster changes; priority preemption.

mod common;
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};

use support::kubelet::{Kubelets, NodeSpec};
use support::{Plane, eventually};

fn pod_yaml(name: &str, cpu: &str, priority_class: Option<&str>) -> String {
    let pc = priority_class
        .map(|p| format!("  priorityClassName: {p}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{pc}  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests:\n        cpu: \"{cpu}\"\n"
    )
}

async fn node_of(client: &kube::Client, name: &str) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|p| p.spec)
        .and_then(|s| s.node_name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_too_big_for_every_node_stays_pending_with_the_real_event_then_fits_a_new_node() {
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let k = Kubelets::start(client.clone(), Duration::from_millis(100));
    k.add_node(NodeSpec::new("worker", "2")).await;
    for cp in ["cp-1", "cp-2"] {
        k.add_node(
            NodeSpec::new(cp, "16").taint("node-role.kubernetes.io/control-plane", "NoSchedule"),
        )
        .await;
    }
    plane
        .cluster
        .api
        .kubectl_stdin(&["apply", "-f", "-"], &pod_yaml("big", "4", None));
    let want = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let ev = eventually(
        Duration::from_secs(30),
        "FailedScheduling event",
        || async {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("FailedScheduling")
                        && e.involved_object.name.as_deref() == Some("big")
                })
        },
    )
    .await;
    assert_eq!(ev.message.as_deref(), Some(want), "{}", plane.logs());
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(
        ev.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("default-scheduler")
    );
    let cond = plane.kubectl_ok(&["get", "pod", "big", "-o", "jsonpath={.status.phase} {.status.conditions[?(@.type==\"PodScheduled\")].status} {.status.conditions[?(@.type==\"PodScheduled\")].reason}"]);
    assert_eq!(cond, "Pending False Unschedulable");
    let describe = plane.kubectl_ok(&["describe", "pod", "big"]);
    assert!(
        describe.contains("FailedScheduling") && describe.contains("Insufficient cpu"),
        "{describe}"
    );
    assert_eq!(node_of(&client, "big").await, None);

    // A bigger node arrives: the pod is scheduled without any restart.
    k.add_node(NodeSpec::new("big-node", "8")).await;
    let node = eventually(Duration::from_secs(20), "pod bound", || {
        node_of(&client, "big")
    })
    .await;
    assert_eq!(node, "big-node");
}

const PRIORITY_CLASSES: &str = r#"
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: low
value: 10
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high
value: 100000
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_priority_pod_preempts_a_low_priority_one_when_the_cluster_is_full() {
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let k = Kubelets::start(client.clone(), Duration::from_millis(100));
    k.add_node(NodeSpec::new("only", "2")).await;
    plane
        .cluster
        .api
        .kubectl_stdin(&["apply", "-f", "-"], PRIORITY_CLASSES);
    plane.cluster.api.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("low", "1500m", Some("low")),
    );
    eventually(Duration::from_secs(20), "low bound", || {
        node_of(&client, "low")
    })
    .await;
    let prio = plane.kubectl_ok(&["get", "pod", "low", "-o", "jsonpath={.spec.priority}"]);
    assert_eq!(prio, "10");
    plane.cluster.api.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("high", "1500m", Some("high")),
    );
    let node = eventually(Duration::from_secs(30), "high bound", || {
        node_of(&client, "high")
    })
    .await;
    assert_eq!(node, "only");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert!(
        pods.get_opt("low").await.unwrap().is_none(),
        "the victim was deleted"
    );
    let events = plane.kubectl_ok(&[
        "get",
        "events",
        "-o",
        "custom-columns=R:.reason,O:.involvedObject.name,M:.message",
    ]);
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("Preempted") && l.contains("low") && l.contains("on node only")),
        "{events}"
    );
    let nominated = events
        .lines()
        .any(|l| l.contains("FailedScheduling") && l.contains("high"));
    assert!(
        nominated,
        "the preemptor was first reported unschedulable: {events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_pod_waits_until_its_gates_are_removed() {
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let k = Kubelets::start(client.clone(), Duration::from_millis(100));
    k.add_node(NodeSpec::new("worker", "2")).await;
    let gated = pod_yaml("gated", "100m", None).replace(
        "spec:\n",
        "spec:\n  schedulingGates:\n  - name: example.com/quota\n  - name: example.com/approval\n",
    );
    plane
        .cluster
        .api
        .kubectl_stdin(&["apply", "-f", "-"], &gated);
    let status = || {
        plane.kubectl_ok(&[
            "get",
            "pod",
            "gated",
            "--no-headers",
            "-o",
            "custom-columns=STATUS:.status.conditions[0].reason",
        ])
    };
    assert_eq!(status().trim(), "SchedulingGated");
    let table = plane.kubectl_ok(&["get", "pod", "gated"]);
    assert!(table.contains("SchedulingGated"), "{table}");
    // Held while any gate remains.
    plane.kubectl_ok(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/spec/schedulingGates/0"}]"#,
    ]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(node_of(&client, "gated").await, None, "still gated");
    // The scheduler never tried it: no scheduling events.
    let events = plane.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=gated",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert_eq!(events.trim(), "", "{events}");
    // Gates may be removed, never added.
    let out = plane.cluster.api.kubectl(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": "example.com/late"}}]"#,
    ]);
    assert!(!out.status.success());
    plane.kubectl_ok(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/spec/schedulingGates"}]"#,
    ]);
    let node = eventually(Duration::from_secs(20), "the pod bound", || {
        node_of(&client, "gated")
    })
    .await;
    assert_eq!(node, "worker");
}
