//! batch/v1 Jobs: generation follows the spec, the status starts empty, a
//! create generates the selector and the template's job labels unless
//! `spec.manualSelector`, and `status.successful` is selectable.

use serde_json::{Map, Value, json};

use crate::api::fields::SelectableField;
use crate::api::resource::{PodSecurity, Resource, Strategy, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct Jobs;

pub static RESOURCE: Resource = Resource {
    short_names: &[],
    categories: &["all"],
    subresources: &[status("Job")],
    ..resource("batch", "v1", "Job", "JobList", "jobs", "job", true, &Jobs)
};

/// Fields a field selector may name (`JobToSelectableFields`); an unset
/// count reads as upstream's zero.
const FIELDS: &[SelectableField] = &[SelectableField {
    name: "status.successful",
    pointer: "/status/succeeded",
    absent: "0",
}];

impl Strategy for Jobs {
    fn pod_security(&self) -> PodSecurity {
        PodSecurity::Template("/spec/template")
    }

    fn default(&self, obj: &mut Map<String, Value>) {
        validation::batch::default_job(obj);
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        validation::batch::generate_job_selector(obj);
        obj["status"] = json!({});
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::batch::validate_job)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::batch::validate_job_update)
    }

    fn validate_subresource_update(
        &self,
        subresource: &str,
        new: &Value,
        old: &Value,
    ) -> Vec<Cause> {
        match subresource {
            "status" => check2(new, old, validation::batch::validate_job_status_update),
            _ => self.validate_update(new, old),
        }
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printers::batch::JOB
    }
}
