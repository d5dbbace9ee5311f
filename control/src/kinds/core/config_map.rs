//! core/v1 ConfigMaps: validated keys and size, no status.

use serde_json::Value;

use crate::api::resource::{Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct ConfigMaps;

pub static RESOURCE: Resource = Resource {
    short_names: &["cm"],
    ..resource(
        "",
        "v1",
        "ConfigMap",
        "ConfigMapList",
        "configmaps",
        "configmap",
        true,
        &ConfigMaps,
    )
};

impl Strategy for ConfigMaps {
    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::config::validate_config_map)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::config::validate_config_map_update)
    }

    fn printer(&self) -> &'static Printer {
        &printers::storage::CONFIG_MAP
    }
}
