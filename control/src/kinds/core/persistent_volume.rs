//! core/v1 PersistentVolumes: `Pending` on create, spec and status
//! validated apart.

use serde_json::{Map, Value, json};

use crate::api::resource::{Resource, Strategy, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct PersistentVolumes;

pub static RESOURCE: Resource = Resource {
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
        &PersistentVolumes,
    )
};

impl Strategy for PersistentVolumes {
    fn default(&self, obj: &mut Map<String, Value>) {
        validation::storage::default_pv(obj);
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending"});
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::storage::validate_pv)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, |n, o| {
            validation::storage::validate_pv_update(n, o, new, old)
        })
    }

    fn validate_subresource_update(
        &self,
        subresource: &str,
        new: &Value,
        old: &Value,
    ) -> Vec<Cause> {
        match subresource {
            "status" => check2(new, old, validation::storage::validate_pv_status_update),
            _ => self.validate_update(new, old),
        }
    }

    fn printer(&self) -> &'static Printer {
        &printers::storage::PERSISTENT_VOLUME
    }
}
