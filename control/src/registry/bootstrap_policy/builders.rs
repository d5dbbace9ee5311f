//! The pieces the bootstrap policy is written with: rules, roles,
//! bindings and subjects as rbac/v1 objects, labelled and annotated as
//! kube-apiserver labels its own.

use serde_json::{Value, json};

pub(super) const RBAC: &str = "rbac.authorization.k8s.io";
pub(super) const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
pub(super) const BOOTSTRAPPING: &str = "kubernetes.io/bootstrapping";
pub(super) const READ: &[&str] = &["get", "list", "watch"];
pub(super) const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
pub(super) const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "delete",
    "deletecollection",
    "patch",
    "update",
];

pub(super) fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

pub(super) fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

pub(super) fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

/// Creating and updating events, in both event APIs.
pub(super) fn events() -> Value {
    rule(
        &["create", "update", "patch"],
        &["", "events.k8s.io"],
        &["events"],
    )
}

pub(super) fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {BOOTSTRAPPING: "rbac-defaults"},
                     "annotations": {AUTOUPDATE: "true"}},
        "rules": rules,
    })
}

/// A role whose rules are those of the ClusterRoles labelled
/// `aggregate-to-<to>`, itself labelled to be part of `also` (if any).
pub(super) fn aggregated(name: &str, to: &str, also: Option<&str>) -> Value {
    let mut role = cluster_role(name, Vec::new());
    role["aggregationRule"] = json!({"clusterRoleSelectors": [
        {"matchLabels": {format!("rbac.authorization.k8s.io/aggregate-to-{to}"): "true"}}
    ]});
    if let Some(parent) = also {
        role["metadata"]["labels"][format!("rbac.authorization.k8s.io/aggregate-to-{parent}")] =
            json!("true");
    }
    role
}

pub(super) fn aggregate_to(name: &str, to: &str, rules: Vec<Value>) -> Value {
    let mut role = cluster_role(name, rules);
    role["metadata"]["labels"][format!("rbac.authorization.k8s.io/aggregate-to-{to}")] =
        json!("true");
    role
}

pub(super) fn subject(kind: &str, name: &str) -> Value {
    if let Some((namespace, account)) = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
        .filter(|_| kind == "ServiceAccount")
    {
        return json!({"kind": "ServiceAccount", "name": account, "namespace": namespace});
    }
    json!({"kind": kind, "apiGroup": RBAC, "name": name})
}

pub(super) fn cluster_binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {BOOTSTRAPPING: "rbac-defaults"},
                     "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

pub(super) fn role(namespace: &str, name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {BOOTSTRAPPING: "rbac-defaults"},
                     "annotations": {AUTOUPDATE: "true"}},
        "rules": rules,
    })
}

pub(super) fn role_binding(namespace: &str, name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {BOOTSTRAPPING: "rbac-defaults"},
                     "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role},
        "subjects": subjects,
    })
}
