//! core/v1 Services: defaults, an empty load-balancer status on create, and
//! cluster IPs and node ports allocated by the registry.

use serde_json::{Map, Value, json};

use crate::api::fields::SelectableField;
use crate::api::resource::{Resource, Strategy, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct Services;

pub static RESOURCE: Resource = Resource {
    verbs: &[
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ],
    short_names: &["svc"],
    categories: &["all"],
    subresources: &[status("Service")],
    ..resource(
        "",
        "v1",
        "Service",
        "ServiceList",
        "services",
        "service",
        true,
        &Services,
    )
};

/// Fields a field selector may name.
const FIELDS: &[SelectableField] = &[
    SelectableField::at("spec.clusterIP", "/spec/clusterIP"),
    SelectableField::at("spec.type", "/spec/type"),
];

impl Strategy for Services {
    fn default(&self, obj: &mut Map<String, Value>) {
        validation::service::default_service(obj);
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({"loadBalancer": {}});
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::service_validation::validate_service)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(
            new,
            old,
            validation::service_validation::validate_service_update,
        )
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
                validation::service_validation::validate_service_status_update,
            ),
            _ => self.validate_update(new, old),
        }
    }

    fn allocates_service_addresses(&self) -> bool {
        true
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printers::network::SERVICE
    }
}
