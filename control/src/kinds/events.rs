//! events.k8s.io/v1 Events: the same objects as core/v1 Events, in the newer shape.

use serde_json::Value;

use crate::api::resource::{Resource, resource};
use crate::api::strategy::{SelectableField, Strategy};
use crate::api::table::Printer;
use crate::validation::{self, Cause, check, check2};

use crate::kinds::printers;

pub struct Events;

pub static RESOURCE: Resource = Resource {
    short_names: &["ev"],
    ..resource(
        "events.k8s.io",
        "v1",
        "Event",
        "EventList",
        "events",
        "event",
        true,
        &Events,
    )
};

impl Strategy for Events {
    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::event::validate_events_event)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::event::validate_events_event_update)
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        super::core::event::FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::EVENTS_V1_EVENT
    }
}
