//! apps/v1 Deployments: generation follows the spec, and the status starts
//! empty.

use serde_json::{Map, Value, json};

use crate::api::resource::{PodSecurity, Resource, SCALE, Strategy, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct Deployments;

pub static RESOURCE: Resource = Resource {
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
        &Deployments,
    )
};

impl Strategy for Deployments {
    fn pod_security(&self) -> PodSecurity {
        PodSecurity::Template("/spec/template")
    }

    fn default(&self, obj: &mut Map<String, Value>) {
        validation::apps::default_deployment(obj);
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::apps::validate_deployment)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::apps::validate_deployment_update)
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
                validation::apps::validate_deployment_status_update,
            ),
            _ => self.validate_update(new, old),
        }
    }

    fn printer(&self) -> &'static Printer {
        &printers::workloads::DEPLOYMENT
    }
}
