//! core/v1 PersistentVolumeClaims: `Pending` on create, spec and status
//! validated apart.

use serde_json::{Map, Value, json};

use crate::api::resource::{Resource, Strategy, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct PersistentVolumeClaims;

pub static RESOURCE: Resource = Resource {
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
        &PersistentVolumeClaims,
    )
};

impl Strategy for PersistentVolumeClaims {
    fn default(&self, obj: &mut Map<String, Value>) {
        validation::storage::default_pvc(obj);
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending"});
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::storage::validate_pvc)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, |n, o| {
            validation::storage::validate_pvc_update(n, o, new, old)
        })
    }

    fn validate_subresource_update(
        &self,
        subresource: &str,
        new: &Value,
        old: &Value,
    ) -> Vec<Cause> {
        match subresource {
            "status" => check2(new, old, validation::storage::validate_pvc_status_update),
            _ => self.validate_update(new, old),
        }
    }

    fn printer(&self) -> &'static Printer {
        &printers::storage::PERSISTENT_VOLUME_CLAIM
    }
}
