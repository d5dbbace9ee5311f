//! ConfigMaps.

use serde_json::Value;

use crate::api::resource::Strategy;
use crate::api::resource::{Resource, resource};
use crate::api::table::Printer;
use crate::validation::{self, Cause, check, check2};

use crate::kinds::printers;

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
