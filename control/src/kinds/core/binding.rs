//! core/v1 Bindings (`pods/binding` and `bindings`): posted to bind a pod
//! to a node, never stored.

use serde_json::Value;

use crate::api::resource::{CREATE, Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check};

pub struct Bindings;

pub static RESOURCE: Resource = Resource {
    verbs: CREATE,
    ..resource(
        "", "v1", "Binding", "", "bindings", "binding", true, &Bindings,
    )
};

impl Strategy for Bindings {
    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::pod::validate_binding)
    }

    fn is_stored(&self) -> bool {
        false
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::DEFAULT
    }
}
