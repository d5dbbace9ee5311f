//! Workloads end to end on real nodes:
//!
//! - Jobs: `kubectl create job` with the echo image runs `sh -c 'exit 0'`
//!   in a container to the Complete condition, and a Job whose container
//!   exits 1 with `backoffLimit: 1` reaches Failed after its second failed
//!   pod — the kubelet's pod phases read by the Job controller;
//! - DaemonSets: one running pod on every node, placed by the scheduler,
//!   rolled to a new template node by node.

use std::time::Duration;

use baton_e2e::Stack;

const DAEMONS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: baton.local/echo:1
        imagePullPolicy: IfNotPresent
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
"#;

#[test]
fn a_daemon_set_runs_one_pod_on_every_node_and_rolls() {
    let c = Stack::start(2);
    c.apply(DAEMONS);
    c.kubectl_ok(&["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    let placed = || {
        let out = c.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.metadata.labels.pod-template-generation}{\"\\n\"}{end}",
        ]);
        let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        placed(),
        ["baton-node-1 Running 1", "baton-node-2 Running 1"],
        "one running pod per node"
    );
    let table = c.kubectl_ok(&["get", "ds", "agent"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..6], ["agent", "2", "2", "2", "2", "2"], "{table}");

    // A new template replaces the pods, one node at a time.
    c.kubectl_ok(&["set", "env", "daemonset/agent", "ROLLED=yes"]);
    c.kubectl_ok(&["rollout", "status", "daemonset/agent", "--timeout=120s"]);
    c.wait(Duration::from_secs(60), "the old pods gone", |_| {
        placed() == ["baton-node-1 Running 2", "baton-node-2 Running 2"]
    });
    let history = c.kubectl_ok(&["rollout", "history", "daemonset/agent"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
}

const FAILING: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: fails
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: fails
        image: baton.local/echo:1
        imagePullPolicy: IfNotPresent
        command: [sh, -c, "exit 1"]
"#;

#[test]
fn jobs_complete_and_fail_on_real_nodes() {
    let c = Stack::start(1);

    let out = c.kubectl_ok(&[
        "create",
        "job",
        "ok",
        "--image=baton.local/echo:1",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    assert!(out.contains("job.batch/ok created"), "{out}");
    let waited = c.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/ok",
        "--timeout=120s",
    ]);
    assert!(
        waited.status.success(),
        "job/ok did not complete: {}\n{}\n{}",
        String::from_utf8_lossy(&waited.stderr),
        c.kubectl_ok(&["get", "job", "ok", "-o", "yaml"]),
        c.logs()
    );
    assert_eq!(c.get("job", "ok", "{.status.succeeded}"), "1");
    let phases = c.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-name=ok",
        "-o",
        "jsonpath={.items[*].status.phase}",
    ]);
    assert_eq!(phases, "Succeeded");
    let rows = c.kubectl_ok(&["get", "job", "ok", "--no-headers"]);
    let cells: Vec<&str> = rows.split_whitespace().collect();
    assert_eq!(cells[..3], ["ok", "Complete", "1/1"], "{rows}");
    let reasons = c.event_reasons("ok");
    assert!(
        reasons.contains("SuccessfulCreate") && reasons.contains("Completed"),
        "{reasons}"
    );

    c.apply(FAILING);
    let waited = c.kubectl(&[
        "wait",
        "--for=condition=failed",
        "job/fails",
        "--timeout=180s",
    ]);
    assert!(
        waited.status.success(),
        "job/fails did not fail: {}\n{}\n{}",
        String::from_utf8_lossy(&waited.stderr),
        c.kubectl_ok(&["get", "job", "fails", "-o", "yaml"]),
        c.logs()
    );
    assert_eq!(c.get("job", "fails", "{.status.failed}"), "2");
    assert_eq!(
        c.get(
            "job",
            "fails",
            "{.status.conditions[?(@.type==\"Failed\")].reason}"
        ),
        "BackoffLimitExceeded"
    );
    let phases = c.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-name=fails",
        "-o",
        "jsonpath={.items[*].status.phase}",
    ]);
    assert_eq!(phases, "Failed Failed");
    assert!(
        c.event_reasons("fails").contains("BackoffLimitExceeded"),
        "{}",
        c.event_reasons("fails")
    );
}
