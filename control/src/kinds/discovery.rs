//! discovery.k8s.io/v1 EndpointSlices: port defaults and validation.

use serde_json::{Map, Value};

use crate::api::resource::{Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct EndpointSlices;

pub static RESOURCE: Resource = resource(
    "discovery.k8s.io",
    "v1",
    "EndpointSlice",
    "EndpointSliceList",
    "endpointslices",
    "endpointslice",
    true,
    &EndpointSlices,
);

impl Strategy for EndpointSlices {
    fn default(&self, obj: &mut Map<String, Value>) {
        validation::endpoints::default_endpoint_slice(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::endpoints::validate_endpoint_slice)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(
            new,
            old,
            validation::endpoints::validate_endpoint_slice_update,
        )
    }

    fn printer(&self) -> &'static Printer {
        &printers::network::ENDPOINT_SLICE
    }
}
