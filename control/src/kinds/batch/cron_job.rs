//! batch/v1 CronJobs: generation follows the spec and the status starts
//! empty.

use serde_json::{Map, Value, json};

use crate::api::resource::{PodSecurity, Resource, Strategy, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct CronJobs;

pub static RESOURCE: Resource = Resource {
    short_names: &["cj"],
    categories: &["all"],
    subresources: &[status("CronJob")],
    ..resource(
        "batch",
        "v1",
        "CronJob",
        "CronJobList",
        "cronjobs",
        "cronjob",
        true,
        &CronJobs,
    )
};

impl Strategy for CronJobs {
    fn pod_security(&self) -> PodSecurity {
        PodSecurity::Template("/spec/jobTemplate/spec/template")
    }

    fn default(&self, obj: &mut Map<String, Value>) {
        validation::batch::default_cron_job(obj);
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::batch::validate_cron_job)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::batch::validate_cron_job_update)
    }

    fn validate_subresource_update(
        &self,
        subresource: &str,
        new: &Value,
        old: &Value,
    ) -> Vec<Cause> {
        match subresource {
            "status" => check2(new, old, validation::batch::validate_cron_job_status_update),
            _ => self.validate_update(new, old),
        }
    }

    fn printer(&self) -> &'static Printer {
        &printers::batch::CRON_JOB
    }
}
