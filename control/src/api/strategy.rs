//! What the generic registry and the API server ask of a kind, behind one
//! trait: kube-apiserver's REST strategies (defaulting, `PrepareForCreate`,
//! `PrepareForUpdate`, `Validate`, `ValidateUpdate`, `AllowCreateOnUpdate`),
//! its admission mutations, selectable fields, table printer and the parts
//! of the registry's machinery a kind takes part in. Each kind's module under
//! `kinds/` implements it; generic code asks the trait and never names a
//! kind, so a kind known only at run time is the same interface.

use serde_json::{Map, Value};

use super::resource::Resource;
use super::table::Printer;
use crate::validation::{AdmissionError, Cause, PriorityClassInfo};

/// One field a field selector may name beyond `metadata.name` and
/// `metadata.namespace`, and where its value is in the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectableField {
    /// The selector's path (`spec.nodeName`).
    pub name: &'static str,
    /// JSON pointer to the value (`/spec/nodeName`).
    pub pointer: &'static str,
    /// The value when the object leaves the field out (`false` for a
    /// boolean kube-apiserver always sets).
    pub absent: &'static str,
}

impl SelectableField {
    pub const fn at(name: &'static str, pointer: &'static str) -> Self {
        SelectableField {
            name,
            pointer,
            absent: "",
        }
    }

    /// A boolean field whose absence reads as `false`.
    pub const fn flag(name: &'static str, pointer: &'static str) -> Self {
        SelectableField {
            name,
            pointer,
            absent: "false",
        }
    }

    /// The field's value in `obj`, as a field selector compares it.
    pub fn value(&self, obj: &Value) -> String {
        match obj.pointer(self.pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => self.absent.to_string(),
        }
    }
}

/// The values of `fields` in `obj`, as the storage layer keeps them.
pub fn field_values(fields: &[SelectableField], obj: &Value) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| (f.name.to_string(), f.value(obj)))
        .collect()
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

    /// What a main-resource update keeps of the old object besides its
    /// status, which the generic code keeps for every kind with one.
    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

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
