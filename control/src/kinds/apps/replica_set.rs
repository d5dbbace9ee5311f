//! apps/v1 ReplicaSets: generation follows the spec, the status starts
//! empty, and `status.replicas` is selectable.

use serde_json::{Map, Value, json};

use crate::api::fields::SelectableField;
use crate::api::resource::{PodSecurity, Resource, SCALE, Strategy, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct ReplicaSets;

pub static RESOURCE: Resource = Resource {
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
        &ReplicaSets,
    )
};

/// Fields a field selector may name.
const FIELDS: &[SelectableField] = &[SelectableField::at("status.replicas", "/status/replicas")];

impl Strategy for ReplicaSets {
    fn pod_security(&self) -> PodSecurity {
        PodSecurity::Template("/spec/template")
    }

    fn default(&self, obj: &mut Map<String, Value>) {
        validation::apps::default_replica_set(obj);
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::apps::validate_replica_set)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::apps::validate_replica_set_update)
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
                validation::apps::validate_replica_set_status_update,
            ),
            _ => self.validate_update(new, old),
        }
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printers::workloads::REPLICA_SET
    }
}
