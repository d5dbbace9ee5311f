//! scheduling.k8s.io/v1 PriorityClasses.

use serde_json::{Map, Value};

use crate::api::resource::Strategy;
use crate::api::resource::{Resource, resource};
use crate::api::table::Printer;
use crate::validation::{self, Cause, check, check2};

use crate::kinds::printers;

pub struct PriorityClasses;

pub static RESOURCE: Resource = Resource {
    short_names: &["pc"],
    ..resource(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "PriorityClassList",
        "priorityclasses",
        "priorityclass",
        false,
        &PriorityClasses,
    )
};

impl Strategy for PriorityClasses {
    fn default(&self, obj: &mut Map<String, Value>) {
        validation::scheduling::default_priority_class(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::scheduling::validate_priority_class)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(
            new,
            old,
            validation::scheduling::validate_priority_class_update,
        )
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::PRIORITY_CLASS
    }
}
