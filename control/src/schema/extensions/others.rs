//! Markers of the other served groups, from `k8s.io/apimachinery/pkg/apis/meta/v1`,
//! `k8s.io/api/{apps,batch,discovery,policy,rbac}/v1` `types.go` (v1.33). The
//! events, coordination, scheduling and autoscaling kinds served carry none.

use super::{List, MapType, Patch};

/// `+patchStrategy` / `+patchMergeKey`.
pub(super) static PATCH: &[(&str, &str, Patch)] = &[
    (meta!("ObjectMeta"), "finalizers", Patch::MergeScalars),
    (meta!("ObjectMeta"), "ownerReferences", Patch::Merge("uid")),
    (apps!("DeploymentSpec"), "strategy", Patch::RetainKeys),
    (
        apps!("DeploymentStatus"),
        "conditions",
        Patch::Merge("type"),
    ),
    (
        apps!("ReplicaSetStatus"),
        "conditions",
        Patch::Merge("type"),
    ),
    (batch!("JobStatus"), "conditions", Patch::Merge("type")),
    (apps!("DaemonSetStatus"), "conditions", Patch::Merge("type")),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        Patch::Merge("type"),
    ),
];

/// `+listType` / `+listMapKey`.
pub(super) static LIST: &[(&str, &str, List)] = &[
    (meta!("APIResource"), "categories", List::Atomic),
    (meta!("APIResource"), "shortNames", List::Atomic),
    (meta!("APIResource"), "verbs", List::Atomic),
    (meta!("APIResourceList"), "resources", List::Atomic),
    (meta!("DeleteOptions"), "dryRun", List::Atomic),
    (meta!("LabelSelector"), "matchExpressions", List::Atomic),
    (meta!("LabelSelectorRequirement"), "values", List::Atomic),
    (meta!("ObjectMeta"), "finalizers", List::Set),
    (meta!("ObjectMeta"), "managedFields", List::Atomic),
    (meta!("ObjectMeta"), "ownerReferences", List::Map(&["uid"])),
    (meta!("StatusDetails"), "causes", List::Atomic),
    (
        apps!("DeploymentStatus"),
        "conditions",
        List::Map(&["type"]),
    ),
    (
        apps!("ReplicaSetStatus"),
        "conditions",
        List::Map(&["type"]),
    ),
    (batch!("CronJobStatus"), "active", List::Atomic),
    (batch!("JobStatus"), "conditions", List::Atomic),
    (batch!("PodFailurePolicy"), "rules", List::Atomic),
    (
        batch!("PodFailurePolicyOnExitCodesRequirement"),
        "values",
        List::Set,
    ),
    (
        batch!("PodFailurePolicyRule"),
        "onPodConditions",
        List::Atomic,
    ),
    (batch!("SuccessPolicy"), "rules", List::Atomic),
    (batch!("UncountedTerminatedPods"), "failed", List::Set),
    (batch!("UncountedTerminatedPods"), "succeeded", List::Set),
    (apps!("DaemonSetStatus"), "conditions", List::Map(&["type"])),
    (discovery!("Endpoint"), "addresses", List::Set),
    (discovery!("EndpointHints"), "forNodes", List::Atomic),
    (discovery!("EndpointHints"), "forZones", List::Atomic),
    (discovery!("EndpointSlice"), "endpoints", List::Atomic),
    (discovery!("EndpointSlice"), "ports", List::Atomic),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        List::Map(&["type"]),
    ),
    (
        rbac!("AggregationRule"),
        "clusterRoleSelectors",
        List::Atomic,
    ),
    (rbac!("ClusterRole"), "rules", List::Atomic),
    (rbac!("ClusterRoleBinding"), "subjects", List::Atomic),
    (rbac!("PolicyRule"), "apiGroups", List::Atomic),
    (rbac!("PolicyRule"), "nonResourceURLs", List::Atomic),
    (rbac!("PolicyRule"), "resourceNames", List::Atomic),
    (rbac!("PolicyRule"), "resources", List::Atomic),
    (rbac!("PolicyRule"), "verbs", List::Atomic),
    (rbac!("Role"), "rules", List::Atomic),
    (rbac!("RoleBinding"), "subjects", List::Atomic),
];

/// `+structType` on a type.
pub(super) static TYPE_MAP: &[(&str, MapType)] = &[
    (meta!("LabelSelector"), MapType::Atomic),
    (meta!("OwnerReference"), MapType::Atomic),
    (discovery!("EndpointPort"), MapType::Atomic),
    (rbac!("RoleRef"), MapType::Atomic),
];
