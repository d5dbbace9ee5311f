//! Pods and the workloads that own them (`printPod`, `printDeployment`,
//! `printReplicaSet`, `printScale` in kube-apiserver's printers.go).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::format::{
    age, container_cells, format_label_selector, int_at, label_selector, list_at, or_none, since,
    str_at, time_at,
};
use crate::api::table::{AGE, Column, Doc, NAME, Printed, Printer, col, wide};

const POD_STATUS: &str = "io.k8s.api.core.v1.PodStatus";
const POD_SPEC: &str = "io.k8s.api.core.v1.PodSpec";

pub const POD: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Ready",
            "string",
            Doc::Text("The aggregate readiness state of this pod for accepting traffic."),
        ),
        col(
            "Status",
            "string",
            Doc::Text("The aggregate status of the containers in this pod."),
        ),
        col(
            "Restarts",
            "string",
            Doc::Text(
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
        ),
        AGE,
        wide("IP", "string", Doc::Field(POD_STATUS, "podIP")),
        wide("Node", "string", Doc::Field(POD_SPEC, "nodeName")),
        wide(
            "Nominated Node",
            "string",
            Doc::Field(POD_STATUS, "nominatedNodeName"),
        ),
        wide(
            "Readiness Gates",
            "string",
            Doc::Field(POD_SPEC, "readinessGates"),
        ),
    ],
    print: print_pod,
};

fn is_restartable(init_containers: &[Value], name: &str) -> bool {
    init_containers
        .iter()
        .find(|c| str_at(c, "/name") == name)
        .is_some_and(|c| str_at(c, "/restartPolicy") == "Always")
}

fn has_state(container: &Value, state: &str) -> bool {
    container
        .pointer(&format!("/state/{state}"))
        .is_some_and(Value::is_object)
}

fn condition_true(pod: &Value, ty: &str) -> bool {
    list_at(pod, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == ty)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

fn later(current: Option<Timestamp>, candidate: Option<Timestamp>) -> Option<Timestamp> {
    match (current, candidate) {
        (Some(a), Some(b)) if b > a => Some(b),
        (None, b) => b,
        (a, _) => a,
    }
}

/// `printPod`: READY counts ready containers (and started restartable init
/// containers), STATUS is the phase refined by the first unfinished init
/// container or the last container's waiting/terminated reason, RESTARTS
/// adds the time since the last restart.
fn print_pod(pod: &Value, now: Timestamp) -> Printed {
    let init_specs = list_at(pod, "/spec/initContainers");
    let phase = str_at(pod, "/status/phase");
    let mut reason = phase.to_string();
    let status_reason = str_at(pod, "/status/reason");
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    for c in list_at(pod, "/status/conditions") {
        if str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }
    let conditions = match phase {
        "Succeeded" => Some(json!([{
            "type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }])),
        "Failed" => Some(json!([{
            "type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed.",
        }])),
        _ => None,
    };

    let total = list_at(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| str_at(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut restartable_restarts = 0i64;
    let mut last_restart = None;
    let mut last_restartable_restart = None;

    let mut initializing = false;
    for (i, c) in list_at(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let count = int_at(c, "/restartCount").unwrap_or(0);
        let finished = time_at(c, "/lastState/terminated/finishedAt");
        restarts += count;
        last_restart = later(last_restart, finished);
        let restartable = is_restartable(init_specs, str_at(c, "/name"));
        if restartable {
            restartable_restarts += count;
            last_restartable_restart = later(last_restartable_restart, finished);
        }
        let terminated = has_state(c, "terminated");
        let exit_code = int_at(c, "/state/terminated/exitCode").unwrap_or(0);
        let waiting_reason = str_at(c, "/state/waiting/reason");
        if terminated && exit_code == 0 {
            continue;
        } else if restartable && c.pointer("/started") == Some(&Value::Bool(true)) {
            if c.pointer("/ready") == Some(&Value::Bool(true)) {
                ready += 1;
            }
            continue;
        } else if terminated {
            let r = str_at(c, "/state/terminated/reason");
            let signal = int_at(c, "/state/terminated/signal").unwrap_or(0);
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if signal != 0 {
                format!("Init:Signal:{signal}")
            } else {
                format!("Init:ExitCode:{exit_code}")
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for c in list_at(pod, "/status/containerStatuses").iter().rev() {
            restarts += int_at(c, "/restartCount").unwrap_or(0);
            last_restart = later(last_restart, time_at(c, "/lastState/terminated/finishedAt"));
            let waiting_reason = str_at(c, "/state/waiting/reason");
            let terminated_reason = str_at(c, "/state/terminated/reason");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if !terminated_reason.is_empty() {
                reason = terminated_reason.to_string();
            } else if has_state(c, "terminated") {
                let signal = int_at(c, "/state/terminated/signal").unwrap_or(0);
                let code = int_at(c, "/state/terminated/exitCode").unwrap_or(0);
                reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    format!("ExitCode:{code}")
                };
            } else if c.pointer("/ready") == Some(&Value::Bool(true)) && has_state(c, "running") {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed while others still run.
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(now, Some(t))),
        _ => restarts.to_string(),
    };

    let pod_ip = list_at(pod, "/status/podIPs")
        .first()
        .map(|ip| str_at(ip, "/ip"))
        .unwrap_or("");
    let gates = list_at(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = list_at(pod, "/status/conditions");
        let true_count = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| str_at(c, "/type") == str_at(g, "/conditionType"))
                    .is_some_and(|c| str_at(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    Printed {
        cells: vec![
            json!(str_at(pod, "/metadata/name")),
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts),
            json!(age(now, pod)),
            json!(or_none(pod_ip)),
            json!(or_none(str_at(pod, "/spec/nodeName"))),
            json!(or_none(str_at(pod, "/status/nominatedNodeName"))),
            json!(readiness_gates),
        ],
        conditions,
    }
}

pub(super) const TEMPLATE_WIDE: [Column; 2] = [
    wide(
        "Containers",
        "string",
        Doc::Text("Names of each container in the template."),
    ),
    wide(
        "Images",
        "string",
        Doc::Text("Images referenced by each container in the template."),
    ),
];

/// `spec.replicas`, defaulted to 1 as the API server defaults it
/// (`SetDefaults_Deployment`, `SetDefaults_ReplicaSet`) before printing.
fn desired_replicas(obj: &Value) -> i64 {
    int_at(obj, "/spec/replicas").unwrap_or(1)
}

pub const DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Ready",
            "string",
            Doc::Text("Number of the pod with ready state"),
        ),
        col(
            "Up-to-date",
            "string",
            Doc::Field("io.k8s.api.apps.v1.DeploymentStatus", "updatedReplicas"),
        ),
        col(
            "Available",
            "string",
            Doc::Field("io.k8s.api.apps.v1.DeploymentStatus", "availableReplicas"),
        ),
        AGE,
        TEMPLATE_WIDE[0],
        TEMPLATE_WIDE[1],
        wide(
            "Selector",
            "string",
            Doc::Field("io.k8s.api.apps.v1.DeploymentSpec", "selector"),
        ),
    ],
    print: print_deployment,
};

fn print_deployment(d: &Value, now: Timestamp) -> Printed {
    let ready = int_at(d, "/status/readyReplicas").unwrap_or(0);
    let (names, images) = container_cells(d.pointer("/spec/template/spec").unwrap_or(&Value::Null));
    vec![
        json!(str_at(d, "/metadata/name")),
        json!(format!("{ready}/{}", desired_replicas(d))),
        json!(int_at(d, "/status/updatedReplicas").unwrap_or(0)),
        json!(int_at(d, "/status/availableReplicas").unwrap_or(0)),
        json!(age(now, d)),
        json!(names),
        json!(images),
        json!(label_selector(d.pointer("/spec/selector"))),
    ]
    .into()
}

pub const REPLICA_SET: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Desired",
            "integer",
            Doc::Field("io.k8s.api.apps.v1.ReplicaSetSpec", "replicas"),
        ),
        col(
            "Current",
            "integer",
            Doc::Field("io.k8s.api.apps.v1.ReplicaSetStatus", "replicas"),
        ),
        col(
            "Ready",
            "integer",
            Doc::Field("io.k8s.api.apps.v1.ReplicaSetStatus", "readyReplicas"),
        ),
        AGE,
        TEMPLATE_WIDE[0],
        TEMPLATE_WIDE[1],
        wide(
            "Selector",
            "string",
            Doc::Field("io.k8s.api.apps.v1.ReplicaSetSpec", "selector"),
        ),
    ],
    print: print_replica_set,
};

fn print_replica_set(rs: &Value, now: Timestamp) -> Printed {
    let (names, images) =
        container_cells(rs.pointer("/spec/template/spec").unwrap_or(&Value::Null));
    vec![
        json!(str_at(rs, "/metadata/name")),
        json!(desired_replicas(rs)),
        json!(int_at(rs, "/status/replicas").unwrap_or(0)),
        json!(int_at(rs, "/status/readyReplicas").unwrap_or(0)),
        json!(age(now, rs)),
        json!(names),
        json!(images),
        json!(format_label_selector(rs.pointer("/spec/selector"))),
    ]
    .into()
}

pub const SCALE: Printer = Printer {
    columns: &[
        // printScale's NAME column has no "name" format.
        col(
            "Name",
            "string",
            Doc::Field(crate::api::table::META, "name"),
        ),
        col(
            "Desired",
            "integer",
            Doc::Field("io.k8s.api.autoscaling.v1.ScaleSpec", "replicas"),
        ),
        col(
            "Available",
            "integer",
            Doc::Field("io.k8s.api.autoscaling.v1.ScaleStatus", "replicas"),
        ),
        AGE,
    ],
    print: print_scale,
};

fn print_scale(s: &Value, now: Timestamp) -> Printed {
    vec![
        json!(str_at(s, "/metadata/name")),
        json!(int_at(s, "/spec/replicas").unwrap_or(0)),
        json!(int_at(s, "/status/replicas").unwrap_or(0)),
        json!(age(now, s)),
    ]
    .into()
}
