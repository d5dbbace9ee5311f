//! scheduling.k8s.io/v1 PriorityClasses: defaults and validation (the
//! system classes are built in, not stored).

use serde_json::{Map, Value};

use crate::api::resource::{Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

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
