//! The roles of the controller manager's controllers
//! (`system:controller:<name>`).

use serde_json::Value;

use super::builders::{RBAC, READ, events, named, rule};

/// Each controller the controller manager runs, with its role's rules
/// (upstream's, with `patch` where baton's controllers patch a status or
/// an annotation that upstream's update).
pub(super) fn controller_roles() -> Vec<(&'static str, Vec<Value>)> {
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
            "daemon-set-controller",
            vec![
                rule(&["get", "list", "watch"], apps, &["daemonsets"]),
                rule(&["update", "patch"], apps, &["daemonsets/status"]),
                rule(&["update"], apps, &["daemonsets/finalizers"]),
                rule(&["list", "watch"], &[""], &["nodes"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                rule(&["create"], &[""], &["pods/binding"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "delete", "update", "patch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                events(),
            ],
        ),
        (
            "pod-garbage-collector",
            vec![
                rule(&["list", "watch", "delete"], &[""], &["pods"]),
                rule(&["get", "list"], &[""], &["nodes"]),
                rule(&["patch"], &[""], &["pods/status"]),
            ],
        ),
        (
            "job-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    &["batch"],
                    &["jobs"],
                ),
                rule(&["update", "patch"], &["batch"], &["jobs/status"]),
                rule(&["update"], &["batch"], &["jobs/finalizers"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                events(),
            ],
        ),
        (
            "cronjob-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &["batch"],
                    &["cronjobs"],
                ),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "delete", "patch",
                    ],
                    &["batch"],
                    &["jobs"],
                ),
                rule(&["update", "patch"], &["batch"], &["cronjobs/status"]),
                rule(&["update"], &["batch"], &["cronjobs/finalizers"]),
                rule(&["list", "delete"], &[""], &["pods"]),
                events(),
            ],
        ),
        (
            "disruption-controller",
            vec![
                rule(
                    &["get", "list", "watch"],
                    &["extensions", "apps"],
                    &["deployments"],
                ),
                rule(&["get", "list", "watch"], apps, &["replicasets"]),
                rule(
                    &["get", "list", "watch"],
                    &[""],
                    &["replicationcontrollers"],
                ),
                rule(
                    &["get", "list", "watch"],
                    &["policy"],
                    &["poddisruptionbudgets"],
                ),
                rule(&["get", "list", "watch"], &["apps"], &["statefulsets"]),
                rule(&["update"], &["policy"], &["poddisruptionbudgets/status"]),
                rule(&["get"], &["*"], &["*/scale"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                events(),
            ],
        ),
        (
            "ttl-after-finished-controller",
            vec![
                rule(&["get", "list", "watch", "delete"], &["batch"], &["jobs"]),
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
