//! core/v1 Nodes: defaults, validation of spec and status writes alike,
//! and `spec.unschedulable` selectable.

use serde_json::{Map, Value};

use crate::api::fields::SelectableField;
use crate::api::resource::{Resource, Strategy, Subresource, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct Nodes;

pub static RESOURCE: Resource = Resource {
    short_names: &["no"],
    subresources: &[
        status("Node"),
        Subresource {
            name: "proxy",
            kind: "NodeProxyOptions",
            group: "",
            version: "",
            verbs: &["create", "delete", "get", "patch", "update"],
        },
    ],
    ..resource("", "v1", "Node", "NodeList", "nodes", "node", false, &Nodes)
};

/// Fields a field selector may name.
const FIELDS: &[SelectableField] = &[SelectableField::flag(
    "spec.unschedulable",
    "/spec/unschedulable",
)];

impl Strategy for Nodes {
    fn default(&self, obj: &mut Map<String, Value>) {
        validation::cluster::default_node(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::cluster::validate_node)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, |n, o| {
            validation::cluster::validate_node_update(n, o, new, old)
        })
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::NODE
    }
}
