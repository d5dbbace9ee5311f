//! Jobs end to end on real nodes: `kubectl create job` with the echo image
//! runs `sh -c 'exit 0'` in a container to the Complete condition, and a
//! Job whose container exits 1 with `backoffLimit: 1` reaches Failed after
//! its second failed pod — the kubelet's pod phases read by the Job
//! controller.

use baton_e2e::Stack;

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
