//! A served resource as kube-apiserver reports it in discovery (names,
//! scope, verbs, subresources, short names, categories), and the
//! [`Strategy`] of its kind: what the generic registry and the API server
//! ask of a kind — kube-apiserver's REST strategies (defaulting,
//! `PrepareForCreate`, `PrepareForUpdate`, `Validate`, `ValidateUpdate`,
//! `AllowCreateOnUpdate`), its admission mutations, selectable fields, table
//! printer and the parts of the registry's machinery a kind takes part in.
//! Each kind's module under `kinds/` declares its entry and implements the
//! strategy; the catalog of them is `kinds::RESOURCES`. Generic code asks
//! the trait and never names a kind, so a kind known only at run time is the
//! same interface.

use std::fmt;

use serde_json::{Map, Value};

use super::fields::SelectableField;
use super::table::Printer;
use crate::validation::{AdmissionError, Cause, PriorityClassInfo};

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

/// How a delete of an object of this kind proceeds beyond finalizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deletion {
    /// Removed at once (after its finalizers).
    #[default]
    Immediate,
    /// Graceful: a bound, unfinished object first gets a deletion timestamp
    /// and grace period, and its node removes it (Pods).
    Graceful,
    /// Its contents are removed first: the object turns `Terminating` and
    /// keeps the `kubernetes` spec finalizer until they are (Namespaces).
    Contents,
}

/// What answers a request for a kind besides the generic registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handler {
    /// The generic registry stores and serves the objects.
    #[default]
    Registry,
    /// A question to the authorizer, answered in the response
    /// (authorization.k8s.io reviews).
    AccessReview,
    /// The requesting user, as authentication saw it (SelfSubjectReview).
    SelfSubjectReview,
    /// A token checked by the API server's authenticator (TokenReview).
    TokenReview,
}

/// What the PodSecurity admission plugin reads in a kind's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodSecurity {
    /// Nothing.
    #[default]
    None,
    /// The object is a pod: its namespace's enforce level refuses it, its
    /// warn level warns.
    Pod,
    /// The object holds a pod template at this JSON pointer (workload
    /// controllers): warned about, never refused.
    Template(&'static str),
    /// The object's labels are a namespace's policy (Namespaces).
    NamespacePolicy,
}

/// The rules of one kind. Every method has the default of a kind without
/// that rule, so a kind's module states only what makes it differ.
pub trait Strategy: Sync + Send {
    /// Defaults kube-apiserver sets on decode. Idempotent: it runs on every
    /// object a client sends, before validation.
    fn default(&self, _obj: &mut Map<String, Value>) {}

    /// Whether `metadata.generation` follows changes of everything but
    /// metadata and status.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Whether a PUT may create the object when it does not exist.
    fn allow_create_on_update(&self) -> bool {
        false
    }

    /// Resets what a create may not set (mostly the status).
    fn prepare_create(&self, _obj: &mut Value) {}

    /// Whether a create records the requesting user in `spec.username`,
    /// `uid`, `groups` and `extra` (CertificateSigningRequests).
    fn records_requester(&self) -> bool {
        false
    }

    /// What a main-resource update keeps of the old object besides its
    /// status, which the generic code keeps for every kind with one.
    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    /// What a `status` update keeps of the old status beyond what the
    /// generic code keeps (the spec and most metadata).
    fn prepare_status_update(&self, _new: &mut Value, _old: &Value) {}

    /// The mutations of kube-apiserver's default admission plugins on
    /// create. `priority_class` is the class the object names (or the
    /// global default), looked up when [`Strategy::uses_priority_class`].
    fn admit_create(
        &self,
        _obj: &mut Value,
        _priority_class: Option<&PriorityClassInfo>,
    ) -> Result<(), AdmissionError> {
        Ok(())
    }

    /// Whether admission needs the PriorityClass the object names, and the
    /// ServiceAccount admission plugin mounts the account's token into it.
    fn runs_pod_admission(&self) -> bool {
        false
    }

    /// What PodSecurity admission evaluates in the kind's objects.
    fn pod_security(&self) -> PodSecurity {
        PodSecurity::None
    }

    /// Validation of a new object.
    fn validate_create(&self, _obj: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// Validation of an update of the main resource.
    fn validate_update(&self, _new: &Value, _old: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// Validation of a write through a subresource that writes the object
    /// (`status`, a Namespace's `finalize`, a Pod's `ephemeralcontainers`).
    fn validate_subresource_update(
        &self,
        _subresource: &str,
        new: &Value,
        old: &Value,
    ) -> Vec<Cause> {
        self.validate_update(new, old)
    }

    /// Whether created objects are stored and so need names that are valid
    /// path segments (the generic registry's `BeforeCreate` check). Kinds
    /// only posted to act (bindings, evictions, reviews) say no.
    fn is_stored(&self) -> bool {
        true
    }

    /// What answers requests for the kind.
    fn handler(&self) -> Handler {
        Handler::Registry
    }

    /// Whether the object's Service addresses and ports are allocated by
    /// the registry (clusterIP, nodePorts, health-check node port).
    fn allocates_service_addresses(&self) -> bool {
        false
    }

    /// How a delete proceeds.
    fn deletion(&self) -> Deletion {
        Deletion::Immediate
    }

    /// The resource whose store holds this kind's objects, when it is
    /// another version's view of them (events.k8s.io/v1 Events are core/v1
    /// Events); `None` for a kind stored under its own name.
    fn stored_as(&self) -> Option<&'static Resource> {
        None
    }

    /// The stored form of an object this kind's clients send (identity
    /// unless [`Strategy::stored_as`] names another resource).
    fn stored_form(&self, obj: Value) -> Value {
        obj
    }

    /// The object as this kind serves it, from its stored form.
    fn served_form(&self, obj: Value) -> Value {
        obj
    }

    /// Fields a field selector may name besides `metadata.name` and
    /// `metadata.namespace`.
    fn selectable_fields(&self) -> &'static [SelectableField] {
        &[]
    }

    /// The columns and cells of the kind's table (`kubectl get`).
    fn printer(&self) -> &'static Printer;
}
