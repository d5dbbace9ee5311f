//! events.k8s.io/v1 Events: the core/v1 Events seen through another version
//! (one store, as in kube-apiserver), with the renamed fields converted on
//! the way in and out.

use serde_json::{Map, Value, json};

use crate::api::fields::SelectableField;
use crate::api::resource::{Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

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

    fn stored_as(&self) -> Option<&'static Resource> {
        Some(&super::core::event::RESOURCE)
    }

    fn stored_form(&self, obj: Value) -> Value {
        to_core(&obj)
    }

    fn served_form(&self, obj: Value) -> Value {
        to_events_v1(&obj)
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::EVENTS_V1_EVENT
    }
}

/// (events.k8s.io/v1 field, core/v1 field) pairs that are renamed.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, to_core: bool) -> Value {
    let Some(m) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let nk = RENAMES
            .iter()
            .find_map(|(ev, core)| {
                if to_core && k == ev {
                    Some(*core)
                } else if !to_core && k == core {
                    Some(*ev)
                } else {
                    None
                }
            })
            .unwrap_or(k.as_str());
        out.insert(nk.to_string(), v.clone());
    }
    Value::Object(out)
}

/// events.k8s.io/v1 → core/v1.
fn to_core(obj: &Value) -> Value {
    let mut v = rename(obj, true);
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Event");
    v
}

/// core/v1 → events.k8s.io/v1.
fn to_events_v1(obj: &Value) -> Value {
    let mut v = rename(obj, false);
    v["apiVersion"] = json!("events.k8s.io/v1");
    v["kind"] = json!("Event");
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_renames_fields() {
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "regarding": {"name": "p"}, "note": "hi", "reason": "Started", "reportingController": "kubelet"});
        let core = to_core(&ev);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["reportingComponent"], "kubelet");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(to_events_v1(&core), ev);
    }
}
