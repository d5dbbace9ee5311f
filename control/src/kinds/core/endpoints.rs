//! core/v1 Endpoints: port defaults, and a PUT may create them (the
//! endpoints controllers write them whether or not they exist).

use serde_json::{Map, Value};

use crate::api::resource::{Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct EndpointsStrategy;

pub static RESOURCE: Resource = Resource {
    short_names: &["ep"],
    ..resource(
        "",
        "v1",
        "Endpoints",
        "EndpointsList",
        "endpoints",
        "endpoints",
        true,
        &EndpointsStrategy,
    )
};

impl Strategy for EndpointsStrategy {
    fn default(&self, obj: &mut Map<String, Value>) {
        validation::endpoints::default_endpoints(obj);
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::endpoints::validate_endpoints)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::endpoints::validate_endpoints_update)
    }

    fn printer(&self) -> &'static Printer {
        &printers::network::ENDPOINTS
    }
}
