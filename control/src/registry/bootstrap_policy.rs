//! The RBAC policy kube-apiserver writes at start (its `bootstrappolicy`):
//! the user-facing roles (cluster-admin, admin, edit, view and their
//! aggregation), the roles of the system's own users (discovery, basic
//! user, public info, nodes, the node proxy, the scheduler, the controller
//! manager and each controller), and their bindings. Reconciled at start
//! as upstream reconciles it: a missing object is created; one whose
//! `rbac.authorization.kubernetes.io/autoupdate` annotation is not
//! `"false"` gets back any rule, subject, label or annotation it lost,
//! and keeps what was added to it.
//!
//! baton-node is a node's kubelet and its service proxy under one identity
//! (`system:node:<name>` in `system:nodes`), so `system:node-proxier` is
//! bound to `system:nodes`. The controller manager runs every controller
//! with its own credential (upstream's
//! `--use-service-account-credentials=false`), so, as upstream's
//! documentation asks of such a setup, each controller's role is bound to
//! `system:kube-controller-manager` too.

use serde_json::{Map, Value, json};

use super::{Registry, WriteContext};
use crate::api::status::ApiError;
use crate::kinds;

const RBAC: &str = "rbac.authorization.k8s.io";
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const BOOTSTRAPPING: &str = "kubernetes.io/bootstrapping";
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "delete",
    "deletecollection",
    "patch",
    "update",
];

/// The user of the controller manager.
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
/// The user of the API server's client certificate towards kubelets.
pub const APISERVER_KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";
/// The user of the scheduler.
pub const SCHEDULER: &str = "system:kube-scheduler";

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

/// Creating and updating events, in both event APIs.
fn events() -> Value {
    rule(
        &["create", "update", "patch"],
        &["", "events.k8s.io"],
        &["events"],
    )
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {BOOTSTRAPPING: "rbac-defaults"},
                     "annotations": {AUTOUPDATE: "true"}},
        "rules": rules,
    })
}

/// A role whose rules are those of the ClusterRoles labelled
/// `aggregate-to-<to>`, itself labelled to be part of `also` (if any).
fn aggregated(name: &str, to: &str, also: Option<&str>) -> Value {
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

fn aggregate_to(name: &str, to: &str, rules: Vec<Value>) -> Value {
    let mut role = cluster_role(name, rules);
    role["metadata"]["labels"][format!("rbac.authorization.k8s.io/aggregate-to-{to}")] =
        json!("true");
    role
}

fn subject(kind: &str, name: &str) -> Value {
    if let Some((namespace, account)) = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
        .filter(|_| kind == "ServiceAccount")
    {
        return json!({"kind": "ServiceAccount", "name": account, "namespace": namespace});
    }
    json!({"kind": kind, "apiGroup": RBAC, "name": name})
}

fn cluster_binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {BOOTSTRAPPING: "rbac-defaults"},
                     "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

fn role(namespace: &str, name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {BOOTSTRAPPING: "rbac-defaults"},
                     "annotations": {AUTOUPDATE: "true"}},
        "rules": rules,
    })
}

fn role_binding(namespace: &str, name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {BOOTSTRAPPING: "rbac-defaults"},
                     "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role},
        "subjects": subjects,
    })
}

/// The health and version paths anyone may read.
const PUBLIC_INFO: &[&str] = &["/livez", "/readyz", "/healthz", "/version", "/version/"];

/// The node's fixed rules (the Node authorizer's `NodeRules`, also the
/// `system:node` role).
pub fn node_rules() -> Vec<Value> {
    vec![
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        rule(READ, &[""], &["services"]),
        rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        rule(&["update", "patch"], &[""], &["nodes/status"]),
        rule(&["update", "patch"], &[""], &["nodes"]),
        events(),
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["update", "patch"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(&["get", "list", "watch"], &[""], &["configmaps", "secrets"]),
        rule(
            &["get"],
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(&["get"], &[""], &["endpoints"]),
        rule(
            &["update", "patch"],
            &[""],
            &["persistentvolumeclaims/status"],
        ),
        rule(
            &["create", "get", "list", "watch"],
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            &["get", "create", "update", "patch", "delete"],
            &["coordination.k8s.io"],
            &["leases"],
        ),
        rule(READ, &["storage.k8s.io"], &["csidrivers", "csinodes"]),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

/// Each controller the controller manager runs, with its role's rules
/// (upstream's, with `patch` where baton's controllers patch a status or
/// an annotation that upstream's update).
fn controller_roles() -> Vec<(&'static str, Vec<Value>)> {
    let apps = &["apps", "extensions"][..];
    vec![
        (
            "clusterrole-aggregation-controller",
            vec![rule(
                &["escalate", "get", "list", "watch", "update", "patch"],
                &[RBAC],
                &["clusterroles"],
            )],
        ),
        (
            "certificate-controller",
            vec![
                rule(
                    &["get", "list", "watch", "delete"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["update", "patch"],
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/approval",
                        "certificatesigningrequests/status",
                    ],
                ),
                named(
                    &["approve"],
                    &["certificates.k8s.io"],
                    &["signers"],
                    &[
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                    ],
                ),
                rule(&["get"], &[""], &["nodes"]),
                named(
                    &["sign"],
                    &["certificates.k8s.io"],
                    &["signers"],
                    &[
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                    ],
                ),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                events(),
            ],
        ),
        (
            "deployment-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    apps,
                    &["deployments"],
                ),
                rule(&["update", "patch"], apps, &["deployments/status"]),
                rule(&["update"], apps, &["deployments/finalizers"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    apps,
                    &["replicasets"],
                ),
                rule(&["get", "list", "watch", "update"], &[""], &["pods"]),
                events(),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                rule(&["get", "list", "watch", "update"], apps, &["replicasets"]),
                rule(&["update", "patch"], apps, &["replicasets/status"]),
                rule(&["update"], apps, &["replicasets/finalizers"]),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                events(),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                rule(READ, &[""], &["services", "pods", "nodes"]),
                rule(&["update"], &[""], &["services/finalizers"]),
                rule(
                    &["get", "list", "create", "update", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                events(),
            ],
        ),
        (
            "endpoint-controller",
            vec![
                rule(READ, &[""], &["services", "pods"]),
                rule(
                    &["get", "list", "create", "update", "delete"],
                    &[""],
                    &["endpoints"],
                ),
                rule(&["create"], &[""], &["endpoints/restricted"]),
                events(),
            ],
        ),
        (
            "node-controller",
            vec![
                rule(
                    &["get", "list", "update", "delete", "patch"],
                    &[""],
                    &["nodes"],
                ),
                rule(&["patch", "update"], &[""], &["nodes/status"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["list", "delete"], &[""], &["pods"]),
                events(),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![rule(
                &["get", "list", "watch", "patch", "update", "delete"],
                &["*"],
                &["*"],
            )],
        ),
        (
            "namespace-controller",
            vec![
                rule(&["get", "list", "watch", "delete"], &[""], &["namespaces"]),
                rule(&["update"], &[""], &["namespaces/finalize"]),
                rule(&["update", "patch"], &[""], &["namespaces/status"]),
                rule(
                    &["get", "list", "delete", "deletecollection"],
                    &["*"],
                    &["*"],
                ),
            ],
        ),
        (
            "service-account-controller",
            vec![rule(&["create"], &[""], &["serviceaccounts"]), events()],
        ),
        (
            "root-ca-cert-publisher",
            vec![
                rule(&["create", "update"], &[""], &["configmaps"]),
                events(),
            ],
        ),
    ]
}

/// The ClusterRoles of the policy.
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = vec![
        cluster_role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            vec![urls(
                &["get"],
                &[
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/openapi",
                    "/openapi/*",
                ],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![urls(&["get"], PUBLIC_INFO)],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:monitoring",
            vec![urls(
                &["get"],
                &[
                    "/metrics",
                    "/metrics/slis",
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/livez/*",
                    "/readyz/*",
                    "/healthz/*",
                ],
            )],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        cluster_role(
            "system:auth-delegator",
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        aggregated("admin", "admin", None),
        aggregated("edit", "edit", Some("admin")),
        aggregated("view", "view", Some("edit")),
        aggregate_to(
            "system:aggregate-to-admin",
            "admin",
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(READ_WRITE, &[RBAC], &["rolebindings", "roles"]),
            ],
        ),
        aggregate_to(
            "system:aggregate-to-edit",
            "edit",
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                        "persistentvolumeclaims",
                        "configmaps",
                        "secrets",
                        "events",
                    ],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "statefulsets",
                        "statefulsets/scale",
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "replicasets",
                        "replicasets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses"],
                ),
                rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        aggregate_to(
            "system:aggregate-to-view",
            "view",
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "configmaps",
                    ],
                ),
                rule(
                    READ,
                    &[""],
                    &[
                        "limitranges",
                        "resourcequotas",
                        "bindings",
                        "events",
                        "pods/status",
                        "resourcequotas/status",
                        "namespaces/status",
                        "replicationcontrollers/status",
                        "pods/log",
                    ],
                ),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "statefulsets",
                        "statefulsets/status",
                        "statefulsets/scale",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/status",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/status",
                        "replicasets/scale",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses", "ingresses/status"],
                ),
                rule(READ, &["events.k8s.io"], &["events"]),
            ],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-proxier",
            vec![
                rule(&["list", "watch"], &[""], &["services", "endpoints"]),
                rule(READ, &[""], &["nodes"]),
                events(),
                rule(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                rule(READ, &[""], &["nodes"]),
                rule(&["proxy"], &[""], &["nodes"]),
                rule(
                    &["*"],
                    &[""],
                    &[
                        "nodes/proxy",
                        "nodes/metrics",
                        "nodes/stats",
                        "nodes/log",
                        "nodes/pods",
                        "nodes/checkpoint",
                    ],
                ),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            vec![rule(
                &["create", "get", "list", "watch"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            vec![named(
                &["approve"],
                &["certificates.k8s.io"],
                &["signers"],
                &["kubernetes.io/kube-apiserver-client-kubelet"],
            )],
        ),
        cluster_role(
            "system:kube-dns",
            vec![rule(&["list", "watch"], &[""], &["endpoints", "services"])],
        ),
        cluster_role(
            SCHEDULER,
            vec![
                events(),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-scheduler"],
                ),
                rule(READ, &[""], &["nodes"]),
                rule(&["get", "list", "watch", "delete"], &[""], &["pods"]),
                rule(&["create"], &[""], &["pods/binding", "bindings"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(READ, &[""], &["services", "replicationcontrollers"]),
                rule(READ, &["apps", "extensions"], &["replicasets"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    READ,
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                rule(
                    READ,
                    &["storage.k8s.io"],
                    &["csinodes", "csidrivers", "csistoragecapacities"],
                ),
                rule(READ, &[""], &["namespaces"]),
            ],
        ),
        cluster_role(
            CONTROLLER_MANAGER,
            vec![
                events(),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-controller-manager"],
                ),
                rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
                rule(&["delete"], &[""], &["secrets"]),
                rule(
                    &["get"],
                    &[""],
                    &["namespaces", "secrets", "serviceaccounts", "configmaps"],
                ),
                rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                rule(&["list", "watch"], &["*"], &["*"]),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
            ],
        ),
    ];
    for (name, rules) in controller_roles() {
        roles.push(cluster_role(&format!("system:controller:{name}"), rules));
    }
    roles
}

/// The ClusterRoleBindings of the policy.
pub fn cluster_role_bindings() -> Vec<Value> {
    let group = |g: &str| subject("Group", g);
    let user = |u: &str| subject("User", u);
    let mut bindings = vec![
        cluster_binding(
            "cluster-admin",
            "cluster-admin",
            vec![group("system:masters")],
        ),
        cluster_binding(
            "system:discovery",
            "system:discovery",
            vec![group("system:authenticated")],
        ),
        cluster_binding(
            "system:basic-user",
            "system:basic-user",
            vec![group("system:authenticated")],
        ),
        cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        cluster_binding(
            "system:monitoring",
            "system:monitoring",
            vec![group("system:monitoring")],
        ),
        cluster_binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            vec![group("system:serviceaccounts")],
        ),
        cluster_binding("system:node", "system:node", Vec::new()),
        cluster_binding(
            "system:node-proxier",
            "system:node-proxier",
            vec![user("system:kube-proxy"), group("system:nodes")],
        ),
        cluster_binding(SCHEDULER, SCHEDULER, vec![user(SCHEDULER)]),
        // A bootstrap token may ask for a node's client certificate, which
        // is approved without an administrator (kubeadm's
        // kubelet-bootstrap and node-autoapprove-bootstrap).
        cluster_binding(
            "baton:kubelet-bootstrap",
            "system:node-bootstrapper",
            vec![group("system:bootstrappers")],
        ),
        cluster_binding(
            "baton:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![group("system:bootstrappers")],
        ),
        // A node renews its own client certificate without an
        // administrator (kubeadm's node-autoapprove-certificate-rotation).
        cluster_binding(
            "baton:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![group("system:nodes")],
        ),
        // The API server's client certificate towards kubelets.
        cluster_binding(
            "baton:apiserver-kubelet-client",
            "system:kubelet-api-admin",
            vec![user(APISERVER_KUBELET_CLIENT)],
        ),
        cluster_binding(
            CONTROLLER_MANAGER,
            CONTROLLER_MANAGER,
            vec![user(CONTROLLER_MANAGER)],
        ),
    ];
    for (name, _) in controller_roles() {
        let role = format!("system:controller:{name}");
        bindings.push(cluster_binding(
            &role,
            &role,
            vec![subject(
                "ServiceAccount",
                &format!("system:serviceaccount:kube-system:{name}"),
            )],
        ));
        bindings.push(cluster_binding(
            &format!("baton:kube-controller-manager:{name}"),
            &role,
            vec![user(CONTROLLER_MANAGER)],
        ));
    }
    bindings
}

/// The namespaced Roles of the policy.
pub fn roles() -> Vec<Value> {
    let lock = |name: &str| {
        vec![
            rule(&["watch"], &[""], &["configmaps"]),
            named(&["get", "update"], &[""], &["configmaps"], &[name]),
            rule(&["watch"], &["coordination.k8s.io"], &["leases"]),
            named(
                &["get", "update"],
                &["coordination.k8s.io"],
                &["leases"],
                &[name],
            ),
        ]
    };
    vec![
        role(
            "kube-system",
            "extension-apiserver-authentication-reader",
            vec![named(
                READ,
                &[""],
                &["configmaps"],
                &["extension-apiserver-authentication"],
            )],
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            lock("kube-controller-manager"),
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            lock("kube-scheduler"),
        ),
        role(
            "kube-system",
            "system:controller:token-cleaner",
            vec![
                rule(&["delete", "get", "list", "watch"], &[""], &["secrets"]),
                events(),
            ],
        ),
    ]
}

/// The namespaced RoleBindings of the policy.
pub fn role_bindings() -> Vec<Value> {
    let user = |u: &str| subject("User", u);
    let account = |a: &str| {
        subject(
            "ServiceAccount",
            &format!("system:serviceaccount:kube-system:{a}"),
        )
    };
    vec![
        role_binding(
            "kube-system",
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            vec![user(CONTROLLER_MANAGER), user(SCHEDULER)],
        ),
        role_binding(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            vec![user(CONTROLLER_MANAGER), account("kube-controller-manager")],
        ),
        role_binding(
            "kube-system",
            "system:controller:token-cleaner",
            "system:controller:token-cleaner",
            vec![account("token-cleaner"), user(CONTROLLER_MANAGER)],
        ),
        role_binding(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            vec![user(SCHEDULER), account("kube-scheduler")],
        ),
    ]
}

/// `existing` brought back to cover `desired`: missing rules, subjects,
/// labels and annotations added, nothing taken away (upstream's
/// reconciliation in its default, non-removing mode). `None` when it
/// already does, or when it asks not to be updated.
pub fn reconciled(existing: &Value, desired: &Value) -> Option<Value> {
    let annotations = existing.pointer("/metadata/annotations");
    if annotations
        .and_then(|a| a.get(AUTOUPDATE))
        .and_then(Value::as_str)
        == Some("false")
    {
        return None;
    }
    let mut next = existing.clone();
    for map in ["labels", "annotations"] {
        let want = desired["metadata"][map]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let have = next["metadata"]
            .as_object_mut()
            .map(|m| m.entry(map).or_insert_with(|| Value::Object(Map::new())));
        if let Some(Value::Object(have)) = have {
            for (k, v) in want {
                have.entry(k).or_insert(v);
            }
        }
    }
    for list in ["rules", "subjects"] {
        if let Some(want) = desired.get(list).and_then(Value::as_array) {
            let have = next
                .as_object_mut()
                .expect("an object")
                .entry(list)
                .or_insert_with(|| json!([]));
            if !have.is_array() {
                *have = json!([]);
            }
            let items = have.as_array_mut().expect("an array");
            for item in want {
                if !items.contains(item) {
                    items.push(item.clone());
                }
            }
        }
    }
    if let Some(rule) = desired.get("aggregationRule")
        && existing.get("aggregationRule").is_none()
    {
        next["aggregationRule"] = rule.clone();
    }
    (next != *existing).then_some(next)
}

impl Registry {
    /// Writes the bootstrap policy: creates what is missing, reconciles
    /// what drifted.
    pub async fn ensure_policy(&self, ctx: &WriteContext) -> Result<(), ApiError> {
        let sets = [
            ("clusterroles", cluster_roles()),
            ("clusterrolebindings", cluster_role_bindings()),
            ("roles", roles()),
            ("rolebindings", role_bindings()),
        ];
        for (plural, objects) in sets {
            let r = kinds::find(RBAC, "v1", plural).expect("rbac served");
            for desired in objects {
                let namespace = desired
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let name = desired["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                match self.get(r, &namespace, &name).await {
                    Ok(existing) => {
                        if reconciled(&existing, &desired).is_none() {
                            continue;
                        }
                        let result = self
                            .update(r, &namespace, &name, ctx, |cur| match cur {
                                Some(cur) => {
                                    Ok(reconciled(cur, &desired).unwrap_or_else(|| cur.clone()))
                                }
                                None => Ok(desired.clone()),
                            })
                            .await;
                        match result {
                            Ok(_) => {}
                            Err(e) if e.code == 409 => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) if e.code == 404 => match self.create(r, &namespace, desired, ctx).await
                    {
                        Ok(_) => {}
                        Err(e) if e.code == 409 => {}
                        Err(e) => return Err(e),
                    },
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciling_adds_what_is_missing_and_keeps_what_was_added() {
        let desired = cluster_role("r", vec![rule(&["get"], &[""], &["pods"])]);
        let mut existing = desired.clone();
        existing["rules"] = json!([rule(&["list"], &[""], &["secrets"])]);
        existing["metadata"]["labels"]["team"] = json!("a");
        let next = reconciled(&existing, &desired).expect("drifted");
        assert_eq!(next["rules"].as_array().unwrap().len(), 2);
        assert_eq!(next["metadata"]["labels"]["team"], "a");
        assert_eq!(reconciled(&next, &desired), None);
        existing["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        assert_eq!(reconciled(&existing, &desired), None);
    }

    #[test]
    fn every_binding_names_a_role_of_the_policy() {
        let names: Vec<String> = cluster_roles()
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        for b in cluster_role_bindings() {
            let role = b["roleRef"]["name"].as_str().unwrap();
            assert!(names.iter().any(|n| n == role), "{role}");
        }
        let namespaced: Vec<String> = roles()
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        for b in role_bindings() {
            let role = b["roleRef"]["name"].as_str().unwrap();
            assert!(namespaced.iter().any(|n| n == role), "{role}");
        }
        // Every object passes the kind's own validation.
        for (plural, objects) in [
            ("clusterroles", cluster_roles()),
            ("clusterrolebindings", cluster_role_bindings()),
            ("roles", roles()),
            ("rolebindings", role_bindings()),
        ] {
            let r = kinds::find(RBAC, "v1", plural).unwrap();
            for o in objects {
                assert!(r.strategy.validate_create(&o).is_empty(), "{o}");
            }
        }
    }
}
