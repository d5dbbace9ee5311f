//! Nodes, namespaces, events, leases, priority classes, RBAC, certificate
//! signing requests (`printCertificateSigningRequest`), and the
//! default table of kinds without a printer (`printNode`, `printNamespace`,
//! `printEvent`, `printLease`, `printPriorityClass`, `printRoleBinding`,
//! `printClusterRoleBinding` in kube-apiserver's printers.go; the default
//! from `k8s.io/apiserver/pkg/registry/rest/table.go`).

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::format::{age, human_duration, int_at, list_at, or_none, since, str_at, time_at};
use crate::api::table::{AGE, Column, Doc, META, NAME, Printed, Printer, col, wide};

const NODE_INFO: &str = "io.k8s.api.core.v1.NodeSystemInfo";
const NODE_STATUS: &str = "io.k8s.api.core.v1.NodeStatus";

pub const NODE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", Doc::Text("The status of the node")),
        col("Roles", "string", Doc::Text("The roles of the node")),
        AGE,
        col("Version", "string", Doc::Field(NODE_INFO, "kubeletVersion")),
        wide(
            "Internal-IP",
            "string",
            Doc::Field(NODE_STATUS, "addresses"),
        ),
        wide(
            "External-IP",
            "string",
            Doc::Field(NODE_STATUS, "addresses"),
        ),
        wide("OS-Image", "string", Doc::Field(NODE_INFO, "osImage")),
        wide(
            "Kernel-Version",
            "string",
            Doc::Field(NODE_INFO, "kernelVersion"),
        ),
        wide(
            "Container-Runtime",
            "string",
            Doc::Field(NODE_INFO, "containerRuntimeVersion"),
        ),
    ],
    print: print_node,
};

/// `findNodeRoles`: `node-role.kubernetes.io/<role>` label keys and the
/// `kubernetes.io/role` label's value, sorted.
fn node_roles(node: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" && v.as_str().is_some_and(|v| !v.is_empty()) {
                roles.insert(v.as_str().unwrap_or_default().to_string());
            }
        }
    }
    roles.into_iter().collect()
}

fn node_address(node: &Value, ty: &str) -> String {
    list_at(node, "/status/addresses")
        .iter()
        .find(|a| str_at(a, "/type") == ty)
        .map(|a| str_at(a, "/address").to_string())
        .unwrap_or_else(|| "<none>".into())
}

fn or_unknown(s: &str) -> String {
    if s.is_empty() {
        "<unknown>".into()
    } else {
        s.into()
    }
}

/// `printNode`: STATUS is Ready / NotReady / Unknown from the Ready
/// condition, plus SchedulingDisabled for a cordoned node.
fn print_node(node: &Value, now: Timestamp) -> Printed {
    let mut status: Vec<String> = list_at(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| str_at(c, "/type") == "Ready")
        .map(|c| {
            if str_at(c, "/status") == "True" {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            }
        })
        .into_iter()
        .collect();
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if node.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push("SchedulingDisabled".into());
    }
    let roles = node_roles(node).join(",");
    vec![
        json!(str_at(node, "/metadata/name")),
        json!(status.join(",")),
        json!(or_none(&roles)),
        json!(age(now, node)),
        json!(str_at(node, "/status/nodeInfo/kubeletVersion")),
        json!(node_address(node, "InternalIP")),
        json!(node_address(node, "ExternalIP")),
        json!(or_unknown(str_at(node, "/status/nodeInfo/osImage"))),
        json!(or_unknown(str_at(node, "/status/nodeInfo/kernelVersion"))),
        json!(or_unknown(str_at(
            node,
            "/status/nodeInfo/containerRuntimeVersion"
        ))),
    ]
    .into()
}

pub const NAMESPACE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", Doc::Text("The status of the namespace")),
        AGE,
    ],
    print: |ns, now| {
        vec![
            json!(str_at(ns, "/metadata/name")),
            json!(str_at(ns, "/status/phase")),
            json!(age(now, ns)),
        ]
        .into()
    },
};

const EVENT_TYPE: &str = "io.k8s.api.core.v1.Event";
const OBJECT_REFERENCE: &str = "io.k8s.api.core.v1.ObjectReference";

const EVENT_COLUMNS: &[Column] = &[
    col(
        "Last Seen",
        "string",
        Doc::Field(EVENT_TYPE, "lastTimestamp"),
    ),
    col("Type", "string", Doc::Field(EVENT_TYPE, "type")),
    col("Reason", "string", Doc::Field(EVENT_TYPE, "reason")),
    col("Object", "string", Doc::Field(EVENT_TYPE, "involvedObject")),
    wide(
        "Subobject",
        "string",
        Doc::Field(OBJECT_REFERENCE, "fieldPath"),
    ),
    wide("Source", "string", Doc::Field(EVENT_TYPE, "source")),
    col("Message", "string", Doc::Field(EVENT_TYPE, "message")),
    wide(
        "First Seen",
        "string",
        Doc::Field(EVENT_TYPE, "firstTimestamp"),
    ),
    wide("Count", "string", Doc::Field(EVENT_TYPE, "count")),
    Column {
        priority: 1,
        ..NAME
    },
];

pub const EVENT: Printer = Printer {
    columns: EVENT_COLUMNS,
    print: print_event,
};

/// events.k8s.io/v1 Events are stored as core Events and printed by the
/// same printer; their fields are renamed on the way
/// (`Convert_v1_Event_To_core_Event`).
pub const EVENTS_V1_EVENT: Printer = Printer {
    columns: EVENT_COLUMNS,
    print: |ev, now| print_event(&as_core_event(ev), now),
};

fn as_core_event(ev: &Value) -> Value {
    let mut core = Map::new();
    for (from, to) in [
        ("metadata", "metadata"),
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("reason", "reason"),
        ("type", "type"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
    ] {
        if let Some(v) = ev.get(from) {
            core.insert(to.into(), v.clone());
        }
    }
    Value::Object(core)
}

/// `printEvent`: the last and first time seen (falling back to eventTime
/// and the series of a new-style event), `kind/name` of the object.
fn print_event(ev: &Value, now: Timestamp) -> Printed {
    let first = match time_at(ev, "/firstTimestamp") {
        Some(t) => since(now, Some(t)),
        None => since(now, time_at(ev, "/eventTime")),
    };
    let mut last = match time_at(ev, "/lastTimestamp") {
        Some(t) => since(now, Some(t)),
        None => first.clone(),
    };
    let mut count = int_at(ev, "/count").unwrap_or(0);
    if ev.get("series").is_some_and(Value::is_object) {
        last = since(now, time_at(ev, "/series/lastObservedTime"));
        count = int_at(ev, "/series/count").unwrap_or(0);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }
    let kind = str_at(ev, "/involvedObject/kind").to_lowercase();
    let name = str_at(ev, "/involvedObject/name");
    let target = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    // formatEventSource: component (or reportingController), then host (or
    // reportingInstance) after a comma when present.
    let component = match str_at(ev, "/source/component") {
        "" => str_at(ev, "/reportingComponent"),
        c => c,
    };
    let host = match str_at(ev, "/source/host") {
        "" => str_at(ev, "/reportingInstance"),
        h => h,
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(str_at(ev, "/type")),
        json!(str_at(ev, "/reason")),
        json!(target),
        json!(str_at(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(ev, "/message").trim()),
        json!(first),
        json!(count),
        json!(str_at(ev, "/metadata/name")),
    ]
    .into()
}

pub const LEASE: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Holder",
            "string",
            Doc::Field("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity"),
        ),
        AGE,
    ],
    print: |lease, now| {
        vec![
            json!(str_at(lease, "/metadata/name")),
            json!(str_at(lease, "/spec/holderIdentity")),
            json!(age(now, lease)),
        ]
        .into()
    },
};

const PRIORITY_CLASS_TYPE: &str = "io.k8s.api.scheduling.v1.PriorityClass";

pub const PRIORITY_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col("Value", "integer", Doc::Field(PRIORITY_CLASS_TYPE, "value")),
        col(
            "Global-Default",
            "boolean",
            Doc::Field(PRIORITY_CLASS_TYPE, "globalDefault"),
        ),
        AGE,
        col(
            "PreemptionPolicy",
            "string",
            Doc::Field(PRIORITY_CLASS_TYPE, "preemptionPolicy"),
        ),
    ],
    print: |pc, now| {
        vec![
            json!(str_at(pc, "/metadata/name")),
            json!(int_at(pc, "/value").unwrap_or(0)),
            json!(
                pc.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            json!(age(now, pc)),
            json!(str_at(pc, "/preemptionPolicy")),
        ]
        .into()
    },
};

/// `rbac.SubjectsStrings`: users, groups, and `namespace/name` of service
/// accounts.
fn subjects(binding: &Value) -> [String; 3] {
    let (mut users, mut groups, mut sas) = (vec![], vec![], vec![]);
    for s in list_at(binding, "/subjects") {
        let name = str_at(s, "/name").to_string();
        match str_at(s, "/kind") {
            "ServiceAccount" => sas.push(format!("{}/{name}", str_at(s, "/namespace"))),
            "User" => users.push(name),
            "Group" => groups.push(name),
            _ => {}
        }
    }
    [users.join(", "), groups.join(", "), sas.join(", ")]
}

fn print_binding(b: &Value, now: Timestamp) -> Printed {
    let [users, groups, sas] = subjects(b);
    vec![
        json!(str_at(b, "/metadata/name")),
        json!(format!(
            "{}/{}",
            str_at(b, "/roleRef/kind"),
            str_at(b, "/roleRef/name")
        )),
        json!(age(now, b)),
        json!(users),
        json!(groups),
        json!(sas),
    ]
    .into()
}

pub const ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Role",
            "string",
            Doc::Field("io.k8s.api.rbac.v1.RoleBinding", "roleRef"),
        ),
        AGE,
        wide("Users", "string", Doc::Text("Users in the roleBinding")),
        wide("Groups", "string", Doc::Text("Groups in the roleBinding")),
        wide(
            "ServiceAccounts",
            "string",
            Doc::Text("ServiceAccounts in the roleBinding"),
        ),
    ],
    print: print_binding,
};

pub const CLUSTER_ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Role",
            "string",
            Doc::Field("io.k8s.api.rbac.v1.ClusterRoleBinding", "roleRef"),
        ),
        AGE,
        wide(
            "Users",
            "string",
            Doc::Text("Users in the clusterRoleBinding"),
        ),
        wide(
            "Groups",
            "string",
            Doc::Text("Groups in the clusterRoleBinding"),
        ),
        wide(
            "ServiceAccounts",
            "string",
            Doc::Text("ServiceAccounts in the clusterRoleBinding"),
        ),
    ],
    print: print_binding,
};

/// The default table of a kind without a printer (roles, cluster roles):
/// NAME and CREATED AT, the creation time in RFC 3339.
pub const DEFAULT: Printer = Printer {
    columns: &[
        NAME,
        col("Created At", "date", Doc::Field(META, "creationTimestamp")),
    ],
    print: |obj, _now| {
        // Go's zero time when unset: m.GetCreationTimestamp().Time.UTC().
        let created = time_at(obj, "/metadata/creationTimestamp")
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
        vec![json!(str_at(obj, "/metadata/name")), json!(created)].into()
    },
};

/// `extractCSRStatus`: Denied, else Approved, else Pending; then Failed
/// and Issued.
fn csr_condition(csr: &Value) -> String {
    let has = |t: &str| {
        list_at(csr, "/status/conditions")
            .iter()
            .any(|c| str_at(c, "/type") == t)
    };
    let mut status = if has("Denied") {
        "Denied".to_owned()
    } else if has("Approved") {
        "Approved".to_owned()
    } else {
        "Pending".to_owned()
    };
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !str_at(csr, "/status/certificate").is_empty() {
        status.push_str(",Issued");
    }
    status
}

const CSR_TYPE: &str = "io.k8s.api.certificates.v1.CertificateSigningRequestSpec";

pub const CERTIFICATE_SIGNING_REQUEST: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        col("SignerName", "string", Doc::Field(CSR_TYPE, "signerName")),
        col(
            "Requestor",
            "string",
            Doc::Text("Name of the user that created the request."),
        ),
        col(
            "RequestedDuration",
            "string",
            Doc::Field(CSR_TYPE, "expirationSeconds"),
        ),
        col(
            "Condition",
            "string",
            Doc::Text(
                "Condition of the request: Approved, Denied, Pending, and whether it failed or was issued.",
            ),
        ),
    ],
    print: |csr, now| {
        let duration = match int_at(csr, "/spec/expirationSeconds") {
            Some(seconds) => human_duration(i128::from(seconds) * 1_000_000_000),
            None => "<none>".to_owned(),
        };
        vec![
            json!(str_at(csr, "/metadata/name")),
            json!(age(now, csr)),
            json!(or_none(str_at(csr, "/spec/signerName"))),
            json!(str_at(csr, "/spec/username")),
            json!(duration),
            json!(csr_condition(csr)),
        ]
        .into()
    },
};
