//! core/v1 Namespaces: `Active` on create, the `kubernetes` spec finalizer
//! kept by main writes and changed only through `finalize`, and a delete
//! that removes their contents first.

use serde_json::{Map, Value, json};

use crate::api::fields::SelectableField;
use crate::api::resource::{
    Deletion, PodSecurity, Resource, Strategy, Subresource, resource, status,
};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, AdmissionError, Cause, PriorityClassInfo, check, check2};

pub struct Namespaces;

pub static RESOURCE: Resource = Resource {
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
        &Namespaces,
    )
};

/// Fields a field selector may name.
const FIELDS: &[SelectableField] = &[SelectableField::at("status.phase", "/status/phase")];

impl Strategy for Namespaces {
    fn pod_security(&self) -> PodSecurity {
        PodSecurity::NamespacePolicy
    }

    fn default(&self, obj: &mut Map<String, Value>) {
        validation::cluster::default_namespace(obj);
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Active"});
        if !obj.get("spec").is_some_and(Value::is_object) {
            obj["spec"] = json!({});
        }
        obj["spec"]["finalizers"] = json!(["kubernetes"]);
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        if let Some(f) = old.pointer("/spec/finalizers").cloned() {
            if !new.get("spec").is_some_and(Value::is_object) {
                new["spec"] = json!({});
            }
            new["spec"]["finalizers"] = f;
        }
    }

    fn admit_create(
        &self,
        obj: &mut Value,
        _priority_class: Option<&PriorityClassInfo>,
    ) -> Result<(), AdmissionError> {
        if let Some(o) = obj.as_object_mut() {
            validation::cluster::prepare_namespace_create(o);
        }
        Ok(())
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::cluster::validate_namespace)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::cluster::validate_namespace_update)
    }

    fn validate_subresource_update(
        &self,
        subresource: &str,
        new: &Value,
        old: &Value,
    ) -> Vec<Cause> {
        match subresource {
            "status" => check2(
                new,
                old,
                validation::cluster::validate_namespace_status_update,
            ),
            "finalize" => check2(
                new,
                old,
                validation::cluster::validate_namespace_finalize_update,
            ),
            _ => self.validate_update(new, old),
        }
    }

    fn deletion(&self) -> Deletion {
        Deletion::Contents
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::NAMESPACE
    }
}
