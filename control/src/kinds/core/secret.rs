//! core/v1 Secrets: `stringData` folded into `data`, the type selectable.

use serde_json::{Map, Value};

use crate::api::fields::SelectableField;
use crate::api::resource::{Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct Secrets;

pub static RESOURCE: Resource = resource(
    "",
    "v1",
    "Secret",
    "SecretList",
    "secrets",
    "secret",
    true,
    &Secrets,
);

/// Fields a field selector may name.
const FIELDS: &[SelectableField] = &[SelectableField::at("type", "/type")];

impl Strategy for Secrets {
    fn default(&self, obj: &mut Map<String, Value>) {
        validation::config::default_secret(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::config::validate_secret)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::config::validate_secret_update)
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printers::storage::SECRET
    }
}
