//! events.k8s.io/v1 Events are the core/v1 Events seen through another
//! version (one storage, as in kube-apiserver); these convert between the
//! two field layouts.

use serde_json::{Map, Value, json};

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
pub fn to_core(obj: &Value) -> Value {
    let mut v = rename(obj, true);
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Event");
    v
}

/// core/v1 → events.k8s.io/v1.
pub fn to_events_v1(obj: &Value) -> Value {
    let mut v = rename(obj, false);
    v["apiVersion"] = json!("events.k8s.io/v1");
    v["kind"] = json!("Event");
    v
}

/// Whether a resource is the events.k8s.io view.
pub fn is_events_v1(group: &str, plural: &str) -> bool {
    group == "events.k8s.io" && plural == "events"
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
