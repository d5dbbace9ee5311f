//! core/v1 Events: a PUT may create them, and their involved object,
//! reason, source and type are selectable (`kubectl get events
//! --field-selector`).

use serde_json::Value;

use crate::api::fields::SelectableField;
use crate::api::resource::{Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct Events;

pub static RESOURCE: Resource = Resource {
    short_names: &["ev"],
    ..resource(
        "",
        "v1",
        "Event",
        "EventList",
        "events",
        "event",
        true,
        &Events,
    )
};

/// Fields a field selector may name, the same for events.k8s.io/v1 Events
/// (one store holds both).
pub const FIELDS: &[SelectableField] = &[
    SelectableField::at("involvedObject.kind", "/involvedObject/kind"),
    SelectableField::at("involvedObject.namespace", "/involvedObject/namespace"),
    SelectableField::at("involvedObject.name", "/involvedObject/name"),
    SelectableField::at("involvedObject.uid", "/involvedObject/uid"),
    SelectableField::at("involvedObject.apiVersion", "/involvedObject/apiVersion"),
    SelectableField::at(
        "involvedObject.resourceVersion",
        "/involvedObject/resourceVersion",
    ),
    SelectableField::at("involvedObject.fieldPath", "/involvedObject/fieldPath"),
    SelectableField::at("reason", "/reason"),
    SelectableField::at("reportingComponent", "/reportingComponent"),
    SelectableField::at("source", "/source/component"),
    SelectableField::at("type", "/type"),
];

impl Strategy for Events {
    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::event::validate_core_event)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::event::validate_core_event_update)
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::EVENT
    }
}
