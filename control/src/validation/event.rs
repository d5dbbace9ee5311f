//! Events through core/v1 and events.k8s.io/v1 (core validation:
//! `legacyValidateEvent`, `ValidateEventCreate`, `ValidateEventUpdate`).
//! Both versions are checked on one view of the internal `core.Event`, as
//! upstream converts both to it; field paths are the internal names.

use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event as EventsEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::field::{self, Cause, Path};
use super::formats::{NameRule, is_dns1123_subdomain, validate_qualified_name};
use super::metadata::{FIELD_IMMUTABLE, validate_object_meta, validate_object_meta_update};

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

/// The internal `core.Event` fields validation reads.
#[derive(Debug, Clone, PartialEq)]
struct View {
    meta: ObjectMeta,
    involved: serde_json::Value,
    involved_namespace: String,
    event_time_set: bool,
    reporting_controller: String,
    reporting_instance: String,
    action: String,
    reason: String,
    message: String,
    type_: String,
    first_timestamp_set: bool,
    last_timestamp_set: bool,
    count: i32,
    source: (String, String),
    series: Option<(i32, bool)>,
}

fn from_core(e: &CoreEvent) -> View {
    View {
        meta: e.metadata.clone(),
        involved: serde_json::to_value(&e.involved_object).unwrap_or_default(),
        involved_namespace: e.involved_object.namespace.clone().unwrap_or_default(),
        event_time_set: e.event_time.is_some(),
        reporting_controller: e.reporting_component.clone().unwrap_or_default(),
        reporting_instance: e.reporting_instance.clone().unwrap_or_default(),
        action: e.action.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.message.clone().unwrap_or_default(),
        type_: e.type_.clone().unwrap_or_default(),
        first_timestamp_set: e.first_timestamp.is_some(),
        last_timestamp_set: e.last_timestamp.is_some(),
        count: e.count.unwrap_or(0),
        source: e
            .source
            .as_ref()
            .map(|s| {
                (
                    s.component.clone().unwrap_or_default(),
                    s.host.clone().unwrap_or_default(),
                )
            })
            .unwrap_or_default(),
        series: e
            .series
            .as_ref()
            .map(|s| (s.count.unwrap_or(0), s.last_observed_time.is_some())),
    }
}

fn from_events(e: &EventsEvent) -> View {
    let regarding = e.regarding.clone().unwrap_or_default();
    View {
        meta: e.metadata.clone(),
        involved: serde_json::to_value(&regarding).unwrap_or_default(),
        involved_namespace: regarding.namespace.clone().unwrap_or_default(),
        event_time_set: true,
        reporting_controller: e.reporting_controller.clone().unwrap_or_default(),
        reporting_instance: e.reporting_instance.clone().unwrap_or_default(),
        action: e.action.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.note.clone().unwrap_or_default(),
        type_: e.type_.clone().unwrap_or_default(),
        first_timestamp_set: e.deprecated_first_timestamp.is_some(),
        last_timestamp_set: e.deprecated_last_timestamp.is_some(),
        count: e.deprecated_count.unwrap_or(0),
        source: e
            .deprecated_source
            .as_ref()
            .map(|s| {
                (
                    s.component.clone().unwrap_or_default(),
                    s.host.clone().unwrap_or_default(),
                )
            })
            .unwrap_or_default(),
        series: e.series.as_ref().map(|s| (s.count, true)),
    }
}

/// `legacyValidateEvent`; `core_v1` names the reporting field as v1 does.
fn legacy(e: &View, core_v1: bool) -> Vec<Cause> {
    let mut errs = Vec::new();
    let rc_field = if core_v1 {
        "reportingComponent"
    } else {
        "reportingController"
    };
    let namespace = e.meta.namespace.clone().unwrap_or_default();
    let ino = Path::new("involvedObject").child("namespace");
    if !e.event_time_set {
        let ok = if e.involved_namespace.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == e.involved_namespace
        };
        if !ok {
            errs.push(field::invalid(
                &ino,
                &e.involved_namespace,
                "does not match event.namespace",
            ));
        }
    } else {
        if e.involved_namespace.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(field::invalid(
                &ino,
                &e.involved_namespace,
                "does not match event.namespace",
            ));
        }
        if e.reporting_controller.is_empty() {
            errs.push(field::required(&Path::new(rc_field), ""));
        }
        errs.extend(validate_qualified_name(
            &e.reporting_controller,
            &Path::new(rc_field),
        ));
        if e.reporting_instance.is_empty() {
            errs.push(field::required(&Path::new("reportingInstance"), ""));
        }
        for (name, value, limit) in [
            (
                "reportingInstance",
                &e.reporting_instance,
                REPORTING_INSTANCE_LIMIT,
            ),
            ("action", &e.action, ACTION_LIMIT),
            ("reason", &e.reason, REASON_LIMIT),
        ] {
            if name != "reportingInstance" && value.is_empty() {
                errs.push(field::required(&Path::new(name), ""));
            }
            if value.len() > limit {
                errs.push(field::invalid(
                    &Path::new(name),
                    "",
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
        if e.message.len() > NOTE_LIMIT {
            errs.push(field::invalid(
                &Path::new("message"),
                "",
                &format!("can have at most {NOTE_LIMIT} characters"),
            ));
        }
    }
    for m in is_dns1123_subdomain(&namespace) {
        errs.push(field::invalid(&Path::new("namespace"), &namespace, &m));
    }
    errs
}

fn series(e: &View) -> Vec<Cause> {
    let mut errs = Vec::new();
    if let Some((count, last_observed)) = e.series {
        if count < 2 {
            errs.push(field::invalid(
                &Path::new("series.count"),
                "",
                "should be at least 2",
            ));
        }
        if !last_observed {
            errs.push(field::required(&Path::new("series.lastObservedTime"), ""));
        }
    }
    errs
}

/// `ValidateEventCreate` through core/v1: legacy rules only.
pub fn validate_core_event(e: &CoreEvent) -> Vec<Cause> {
    legacy(&from_core(e), true)
}

/// `ValidateEventUpdate` through core/v1.
pub fn validate_core_event_update(new: &CoreEvent, old: &CoreEvent) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(legacy(&from_core(new), true));
    errs
}

/// `ValidateEventCreate` through events.k8s.io/v1: legacy plus strict rules.
pub fn validate_events_event(e: &EventsEvent) -> Vec<Cause> {
    let v = from_events(e);
    let mut errs = legacy(&v, false);
    errs.extend(validate_object_meta(
        &v.meta,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    ));
    errs.extend(series(&v));
    if v.type_ != "Normal" && v.type_ != "Warning" {
        errs.push(field::invalid(
            &Path::new("type"),
            "",
            &format!("has invalid value: {}", v.type_),
        ));
    }
    for (name, set) in [
        ("firstTimestamp", v.first_timestamp_set),
        ("lastTimestamp", v.last_timestamp_set),
        ("count", v.count != 0),
        ("source", !v.source.0.is_empty() || !v.source.1.is_empty()),
    ] {
        if set {
            errs.push(field::invalid(&Path::new(name), "", "needs to be unset"));
        }
    }
    errs
}

/// `ValidateEventUpdate` through events.k8s.io/v1: what happened is
/// immutable.
pub fn validate_events_event_update(new: &EventsEvent, old: &EventsEvent) -> Vec<Cause> {
    let (n, o) = (from_events(new), from_events(old));
    let mut errs = legacy(&n, false);
    errs.extend(validate_object_meta_update(
        &n.meta,
        &o.meta,
        &Path::new("metadata"),
    ));
    if n.series != o.series {
        errs.extend(series(&n));
    }
    let imm = |changed: bool, name: &str, value: &str, errs: &mut Vec<Cause>| {
        if changed {
            errs.push(field::invalid(&Path::new(name), value, FIELD_IMMUTABLE));
        }
    };
    imm(
        n.involved != o.involved,
        "involvedObject",
        &n.involved.to_string(),
        &mut errs,
    );
    imm(n.reason != o.reason, "reason", &n.reason, &mut errs);
    imm(n.message != o.message, "note", &n.message, &mut errs);
    imm(n.source != o.source, "source", &n.source.0, &mut errs);
    imm(n.count != o.count, "count", &n.count.to_string(), &mut errs);
    imm(n.type_ != o.type_, "type", &n.type_, &mut errs);
    imm(n.action != o.action, "action", &n.action, &mut errs);
    imm(
        n.reporting_controller != o.reporting_controller,
        "reportingController",
        &n.reporting_controller,
        &mut errs,
    );
    imm(
        n.reporting_instance != o.reporting_instance,
        "reportingInstance",
        &n.reporting_instance,
        &mut errs,
    );
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: &[Cause]) -> Vec<String> {
        errs.iter().map(Cause::error_string).collect()
    }

    // legacyValidateEvent for core/v1 events.
    #[test]
    fn core_event() {
        let ok: CoreEvent = serde_json::from_value(json!({"metadata": {"name": "p.1", "namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"}, "reason": "Started"})).unwrap();
        assert!(validate_core_event(&ok).is_empty());
        let bad: CoreEvent = serde_json::from_value(json!({"metadata": {"name": "p.1", "namespace": "a"}, "involvedObject": {"kind": "Pod", "namespace": "b", "name": "p"}})).unwrap();
        assert_eq!(
            msgs(&validate_core_event(&bad)),
            vec!["involvedObject.namespace: Invalid value: \"b\": does not match event.namespace"]
        );
        let new_style: CoreEvent = serde_json::from_value(json!({"metadata": {"name": "p.1", "namespace": "default"}, "involvedObject": {"namespace": "default"}, "eventTime": "2024-01-01T00:00:00.000000Z"})).unwrap();
        assert_eq!(
            msgs(&validate_core_event(&new_style)),
            vec![
                "reportingComponent: Required value",
                "reportingComponent: Invalid value: \"\": name part must be non-empty",
                "reportingComponent: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "reportingInstance: Required value",
                "action: Required value",
                "reason: Required value",
            ]
        );
    }

    // ValidateEventCreate / ValidateEventUpdate for events.k8s.io/v1.
    #[test]
    fn events_event() {
        let v = json!({"metadata": {"name": "e", "namespace": "default"}, "eventTime": "2024-01-01T00:00:00.000000Z",
            "regarding": {"kind": "Pod", "namespace": "default", "name": "p"}, "reportingController": "example.com/ctl",
            "reportingInstance": "i", "action": "Scheduled", "reason": "Scheduled", "type": "Normal", "note": "hi"});
        let ok: EventsEvent = serde_json::from_value(v.clone()).unwrap();
        assert!(
            validate_events_event(&ok).is_empty(),
            "{:?}",
            msgs(&validate_events_event(&ok))
        );
        let mut bad = v.clone();
        bad["type"] = json!("Bad");
        bad["deprecatedCount"] = json!(3);
        let bad: EventsEvent = serde_json::from_value(bad).unwrap();
        assert_eq!(
            msgs(&validate_events_event(&bad)),
            vec![
                "type: Invalid value: \"\": has invalid value: Bad",
                "count: Invalid value: \"\": needs to be unset"
            ]
        );
        let mut old = v.clone();
        old["metadata"]["resourceVersion"] = json!("1");
        let mut new = old.clone();
        new["note"] = json!("changed");
        let errs = validate_events_event_update(
            &serde_json::from_value(new).unwrap(),
            &serde_json::from_value(old).unwrap(),
        );
        assert_eq!(
            msgs(&errs),
            vec!["note: Invalid value: \"changed\": field is immutable"]
        );
    }
}
