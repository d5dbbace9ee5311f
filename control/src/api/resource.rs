//! A served resource as kube-apiserver reports it in discovery (names,
//! scope, verbs, subresources, short names, categories), with the
//! [`Strategy`] that holds its kind's rules. Each kind's module under
//! `kinds/` declares its entry; the catalog of them is `kinds::RESOURCES`.

use std::fmt;

use super::strategy::Strategy;

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
#[derive(Clone, Copy)]
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
    /// The kind's rules, asked by the generic registry and API server.
    pub strategy: &'static dyn Strategy,
}

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        self.group == other.group && self.version == other.version && self.plural == other.plural
    }
}

impl Eq for Resource {}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .field("plural", &self.plural)
            .finish_non_exhaustive()
    }
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
pub const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
pub const CREATE: &[&str] = &["create"];
pub const GET: &[&str] = &["get"];

pub const fn status(kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        kind,
        group: "",
        version: "",
        verbs: GET_PATCH_UPDATE,
    }
}

pub const SCALE: Subresource = Subresource {
    name: "scale",
    kind: "Scale",
    group: "autoscaling",
    version: "v1",
    verbs: GET_PATCH_UPDATE,
};

/// Builds a [`Resource`] with every verb; fields that differ are set after.
/// Positional, as the discovery document lists them, so a kind's entry
/// reads as one line of the catalog.
#[allow(clippy::too_many_arguments)]
pub const fn resource(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    list_kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    strategy: &'static dyn Strategy,
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
        strategy,
    }
}
