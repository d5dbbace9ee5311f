//! The catalog of resources the API server serves: names, scope, verbs,
//! subresources, short names and categories, as kube-apiserver reports them in
//! discovery. Every other part of the API server (routing, storage keys,
//! discovery, OpenAPI, tables) looks resources up here.

/// A subresource of a resource (`pods/status`, `deployments/scale`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// Path segment after the object name (`status`, `scale`, `log`, …).
    pub name: &'static str,
    /// Kind the subresource takes and returns (`Pod` for `pods/status`,
    /// `Scale` for `deployments/scale`).
    pub kind: &'static str,
    /// Group of that kind when it differs from the parent's (`autoscaling`
    /// for Scale); empty for the parent's group.
    pub group: &'static str,
    /// Version of that kind when it differs from the parent's.
    pub version: &'static str,
    pub verbs: &'static [&'static str],
}

/// One resource of one group-version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group; empty for the legacy core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    /// Lower-case plural, the URL segment (`pods`).
    pub plural: &'static str,
    /// Lower-case singular (`pod`).
    pub singular: &'static str,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
}

impl Resource {
    /// `v1` for the core group, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` for the core group, `deployments.apps` otherwise: the name
    /// kube-apiserver uses in Status details and error messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }
}

/// The verbs of an ordinary read-write resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
const CREATE: &[&str] = &["create"];
const GET: &[&str] = &["get"];

const fn status(kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        kind,
        group: "",
        version: "",
        verbs: GET_PATCH_UPDATE,
    }
}

const SCALE: Subresource = Subresource {
    name: "scale",
    kind: "Scale",
    group: "autoscaling",
    version: "v1",
    verbs: GET_PATCH_UPDATE,
};

/// Builds a [`Resource`] with every verb; fields that differ are set after.
const fn resource(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    list_kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group,
        version,
        kind,
        list_kind,
        plural,
        singular,
        namespaced,
        verbs: ALL_VERBS,
        short_names: &[],
        categories: &[],
        subresources: &[],
    }
}

/// An authorization.k8s.io/v1 review: created only, never listed.
const fn review(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        verbs: CREATE,
        ..resource(
            "authorization.k8s.io",
            "v1",
            kind,
            "",
            plural,
            singular,
            namespaced,
        )
    }
}

/// Every resource served, in discovery order per group-version.
pub static RESOURCES: &[Resource] = &[
    // core/v1
    Resource {
        verbs: &[
            "create", "get", "list", "patch", "update", "watch", "delete",
        ],
        short_names: &["ns"],
        subresources: &[
            status("Namespace"),
            Subresource {
                name: "finalize",
                kind: "Namespace",
                group: "",
                version: "",
                verbs: &["update"],
            },
        ],
        ..resource(
            "",
            "v1",
            "Namespace",
            "NamespaceList",
            "namespaces",
            "namespace",
            false,
        )
    },
    Resource {
        short_names: &["po"],
        categories: &["all"],
        subresources: &[
            status("Pod"),
            Subresource {
                name: "binding",
                kind: "Binding",
                group: "",
                version: "",
                verbs: CREATE,
            },
            Subresource {
                name: "ephemeralcontainers",
                kind: "Pod",
                group: "",
                version: "",
                verbs: GET_PATCH_UPDATE,
            },
            Subresource {
                name: "eviction",
                kind: "Eviction",
                group: "policy",
                version: "v1",
                verbs: CREATE,
            },
            Subresource {
                name: "log",
                kind: "Pod",
                group: "",
                version: "",
                verbs: GET,
            },
            Subresource {
                name: "exec",
                kind: "PodExecOptions",
                group: "",
                version: "",
                verbs: &["create", "get"],
            },
            Subresource {
                name: "attach",
                kind: "PodAttachOptions",
                group: "",
                version: "",
                verbs: &["create", "get"],
            },
            Subresource {
                name: "portforward",
                kind: "PodPortForwardOptions",
                group: "",
                version: "",
                verbs: &["create", "get"],
            },
        ],
        ..resource("", "v1", "Pod", "PodList", "pods", "pod", true)
    },
    Resource {
        verbs: CREATE,
        ..resource("", "v1", "Binding", "", "bindings", "binding", true)
    },
    Resource {
        verbs: &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[status("Service")],
        ..resource(
            "",
            "v1",
            "Service",
            "ServiceList",
            "services",
            "service",
            true,
        )
    },
    Resource {
        short_names: &["ep"],
        ..resource(
            "",
            "v1",
            "Endpoints",
            "EndpointsList",
            "endpoints",
            "endpoints",
            true,
        )
    },
    Resource {
        short_names: &["no"],
        subresources: &[
            status("Node"),
            Subresource {
                name: "proxy",
                kind: "NodeProxyOptions",
                group: "",
                version: "",
                verbs: &["create", "delete", "get", "patch", "update"],
            },
        ],
        ..resource("", "v1", "Node", "NodeList", "nodes", "node", false)
    },
    Resource {
        short_names: &["cm"],
        ..resource(
            "",
            "v1",
            "ConfigMap",
            "ConfigMapList",
            "configmaps",
            "configmap",
            true,
        )
    },
    resource("", "v1", "Secret", "SecretList", "secrets", "secret", true),
    Resource {
        short_names: &["sa"],
        subresources: &[Subresource {
            name: "token",
            kind: "TokenRequest",
            group: "authentication.k8s.io",
            version: "v1",
            verbs: CREATE,
        }],
        ..resource(
            "",
            "v1",
            "ServiceAccount",
            "ServiceAccountList",
            "serviceaccounts",
            "serviceaccount",
            true,
        )
    },
    Resource {
        short_names: &["ev"],
        ..resource("", "v1", "Event", "EventList", "events", "event", true)
    },
    Resource {
        short_names: &["pv"],
        subresources: &[status("PersistentVolume")],
        ..resource(
            "",
            "v1",
            "PersistentVolume",
            "PersistentVolumeList",
            "persistentvolumes",
            "persistentvolume",
            false,
        )
    },
    Resource {
        short_names: &["pvc"],
        subresources: &[status("PersistentVolumeClaim")],
        ..resource(
            "",
            "v1",
            "PersistentVolumeClaim",
            "PersistentVolumeClaimList",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            true,
        )
    },
    // apps/v1
    Resource {
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &[status("Deployment"), SCALE],
        ..resource(
            "apps",
            "v1",
            "Deployment",
            "DeploymentList",
            "deployments",
            "deployment",
            true,
        )
    },
    Resource {
        short_names: &["rs"],
        categories: &["all"],
        subresources: &[status("ReplicaSet"), SCALE],
        ..resource(
            "apps",
            "v1",
            "ReplicaSet",
            "ReplicaSetList",
            "replicasets",
            "replicaset",
            true,
        )
    },
    // discovery.k8s.io/v1
    resource(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "EndpointSliceList",
        "endpointslices",
        "endpointslice",
        true,
    ),
    // coordination.k8s.io/v1
    resource(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "LeaseList",
        "leases",
        "lease",
        true,
    ),
    // events.k8s.io/v1
    Resource {
        short_names: &["ev"],
        ..resource(
            "events.k8s.io",
            "v1",
            "Event",
            "EventList",
            "events",
            "event",
            true,
        )
    },
    // authentication.k8s.io/v1 (`kubectl auth whoami`)
    Resource {
        verbs: CREATE,
        ..resource(
            "authentication.k8s.io",
            "v1",
            "SelfSubjectReview",
            "",
            "selfsubjectreviews",
            "selfsubjectreview",
            false,
        )
    },
    // authorization.k8s.io/v1 (`kubectl auth can-i`): questions to the
    // authorizer, answered and not stored.
    review(
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        false,
    ),
    review(
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        false,
    ),
    review(
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        false,
    ),
    review(
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        true,
    ),
    // rbac.authorization.k8s.io/v1
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "RoleList",
        "roles",
        "role",
        true,
    ),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "RoleBindingList",
        "rolebindings",
        "rolebinding",
        true,
    ),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "ClusterRoleList",
        "clusterroles",
        "clusterrole",
        false,
    ),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "ClusterRoleBindingList",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
    ),
    // scheduling.k8s.io/v1
    Resource {
        short_names: &["pc"],
        ..resource(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "PriorityClassList",
            "priorityclasses",
            "priorityclass",
            false,
        )
    },
];

/// Looks a resource up by group, version and plural as they appear in a URL.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by group, version and kind.
pub fn find_kind(group: &str, version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Group-versions served, in discovery order (core `v1` first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_are_unique_per_group_version() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} listed twice",
                    a.group_resource()
                );
            }
        }
    }

    #[test]
    fn core_group_comes_first_and_names_resolve() {
        assert_eq!(group_versions()[0], ("", "v1"));
        let deploy = find("apps", "v1", "deployments").expect("deployments");
        assert_eq!(deploy.group_resource(), "deployments.apps");
        assert_eq!(deploy.subresource("scale").map(|s| s.kind), Some("Scale"));
        assert_eq!(find_kind("", "v1", "Pod").map(|r| r.plural), Some("pods"));
    }
}
