//! Protobuf message → JSON, driven by the field table. Field names are the
//! schemas' JSON names (k8s protobuf field names are the JSON names; prost
//! snake-cases them, so they are matched ignoring case and underscores).
//! Well-known types become their JSON forms: Time and MicroTime RFC 3339,
//! Quantity and IntOrString scalars, RawExtension and FieldsV1 embedded
//! JSON, `[]byte` base64. Empty strings and zero times are left out, as Go's
//! `omitempty` JSON encoding leaves them out.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::error::ProtobufError;
use super::table::{Cardinality, Field, Kind, TABLE};
use super::wire::{self, Value as Wire};
use crate::schema;

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn camel(s: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// JSON names of each message's fields, by prost name.
static NAMES: LazyLock<Mutex<HashMap<String, HashMap<String, String>>>> =
    LazyLock::new(Default::default);

/// How a field of a message appears in JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JsonField {
    /// Under its JSON name.
    Named(String),
    /// A Go embedded struct (`Probe.handler`, `Volume.volumeSource`): the
    /// message's fields sit in the parent's JSON object, so the schema has
    /// no field of that name.
    Inline,
}

/// The message's schema field names, by normalised name.
fn with_names<R>(message: &str, f: impl FnOnce(&HashMap<String, String>) -> R) -> R {
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let map = names.entry(message.to_string()).or_insert_with(|| {
        // prost renames some types (AWSElasticBlockStoreVolumeSource →
        // AwsElasticBlockStoreVolumeSource): match schema names ignoring case.
        let schemas = schema::schemas();
        let name = schemas
            .definitions()
            .keys()
            .find(|k| k.eq_ignore_ascii_case(message))
            .cloned()
            .unwrap_or_else(|| message.to_string());
        schemas
            .named(&name)
            .map(|n| n.field_names().map(|f| (norm(f), f.to_string())).collect())
            .unwrap_or_default()
    });
    f(map)
}

fn json_field(message: &str, field: &Field) -> JsonField {
    let key = norm(&field.name);
    let (known, parent) = with_names(message, |m| {
        (
            m.get(&key).cloned(),
            m.keys().cloned().collect::<std::collections::HashSet<_>>(),
        )
    });
    if let Some(name) = known {
        return JsonField::Named(name);
    }
    // A field the schema lacks is an embedded struct when the parent's
    // schema has the embedded message's fields (all of its own schema's,
    // or most of its table fields when OpenAPI flattened it away, as it
    // does ProbeHandler and VolumeSource, and the table may be newer);
    // otherwise the field is newer than the schema and keeps its
    // camelCase name.
    if let (Kind::Message(sub), Cardinality::Single) = (&field.kind, field.cardinality) {
        let own: Vec<String> = with_names(sub, |m| m.keys().cloned().collect());
        let embedded = if own.is_empty() {
            let table: Vec<String> = TABLE
                .fields(sub)
                .unwrap_or_default()
                .iter()
                .map(|f| norm(&f.name))
                .collect();
            let present = table.iter().filter(|k| parent.contains(*k)).count();
            present * 2 > table.len()
        } else {
            own.iter().all(|k| parent.contains(k))
        };
        if embedded && !parent.is_empty() {
            return JsonField::Inline;
        }
    }
    JsonField::Named(camel(&field.name))
}

/// A message's fields in tag order, each with its JSON form.
pub(super) type Plan = Arc<Vec<(Field, JsonField)>>;

/// Plans by message, computed once.
static PLANS: LazyLock<Mutex<HashMap<String, Plan>>> = LazyLock::new(Default::default);

/// A message's fields in tag order with how each appears in JSON.
pub(super) fn plan(message: &str) -> Option<Plan> {
    if let Some(p) = PLANS.lock().unwrap_or_else(|e| e.into_inner()).get(message) {
        return Some(p.clone());
    }
    let mut fields: Vec<Field> = TABLE.fields(message)?.to_vec();
    fields.sort_by_key(|f| f.tag);
    let p: Plan = Arc::new(
        fields
            .into_iter()
            .map(|f| {
                let j = json_field(message, &f);
                (f, j)
            })
            .collect(),
    );
    PLANS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(message.to_string(), p.clone());
    Some(p)
}

#[cfg(test)]
fn json_name(message: &str, field: &str) -> String {
    with_names(message, |m| m.get(&norm(field)).cloned()).unwrap_or_else(|| camel(field))
}

fn time(secs: i64, nanos: i64, micro: bool) -> Option<Value> {
    if secs == 0 && nanos == 0 {
        return None;
    }
    let t = jiff::Timestamp::new(secs, nanos as i32).ok()?;
    let s = if micro {
        t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    Some(Value::String(s))
}

pub(super) fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let mut rest = ns.unsigned_abs();
    let h = rest / 3_600_000_000_000;
    rest %= 3_600_000_000_000;
    let m = rest / 60_000_000_000;
    rest %= 60_000_000_000;
    let secs = rest as f64 / 1e9;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{secs}s"));
    out
}

/// A well-known message's JSON form; None when it is "empty".
fn special(message: &str, bytes: &[u8]) -> Result<Option<Option<Value>>, ProtobufError> {
    let f = || wire::fields(bytes);
    let int = |fs: &[(u32, Wire<'_>)], tag: u32| {
        fs.iter()
            .find_map(|(t, v)| match (t, v) {
                (t, Wire::Varint(n)) if *t == tag => Some(*n as i64),
                _ => None,
            })
            .unwrap_or(0)
    };
    let text = |fs: &[(u32, Wire<'_>)], tag: u32| {
        fs.iter().find_map(|(t, v)| match (t, v) {
            (t, Wire::Bytes(b)) if *t == tag => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
    };
    Ok(Some(match message {
        m if m == format!("{META}.Time") => {
            let fs = f()?;
            time(int(&fs, 1), int(&fs, 2), false)
        }
        m if m == format!("{META}.MicroTime") => {
            let fs = f()?;
            time(int(&fs, 1), int(&fs, 2), true)
        }
        m if m == format!("{META}.Duration") => Some(Value::String(go_duration(int(&f()?, 1)))),
        "io.k8s.apimachinery.pkg.api.resource.Quantity" => text(&f()?, 1).map(Value::String),
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => {
            let fs = f()?;
            if int(&fs, 1) == 1 {
                Some(Value::String(text(&fs, 3).unwrap_or_default()))
            } else {
                Some(Value::from(int(&fs, 2) as i32))
            }
        }
        "io.k8s.apimachinery.pkg.runtime.RawExtension" => {
            let raw = text(&f()?, 1).unwrap_or_default();
            serde_json::from_str(&raw).ok()
        }
        m if m == format!("{META}.FieldsV1") => {
            let raw = text(&f()?, 1).unwrap_or_default();
            serde_json::from_str(&raw).ok()
        }
        _ => return Ok(None),
    }))
}

fn scalar(kind: &Kind, v: Wire<'_>) -> Result<Option<Value>, ProtobufError> {
    Ok(match (kind, v) {
        (Kind::String, Wire::Bytes(b)) => {
            let s = String::from_utf8_lossy(b).into_owned();
            Some(Value::String(s))
        }
        (Kind::Bool, Wire::Varint(n)) => Some(Value::Bool(n != 0)),
        (Kind::Int32, Wire::Varint(n)) => Some(Value::from(n as i64 as i32)),
        (Kind::Int64, Wire::Varint(n)) => Some(Value::from(n as i64)),
        (Kind::Double, Wire::Fixed64(n)) => {
            serde_json::Number::from_f64(f64::from_bits(n)).map(Value::Number)
        }
        (Kind::Float, Wire::Fixed32(n)) => {
            serde_json::Number::from_f64(f64::from(f32::from_bits(n))).map(Value::Number)
        }
        (Kind::Bytes, Wire::Bytes(b)) => Some(Value::String(
            base64::engine::general_purpose::STANDARD.encode(b),
        )),
        (Kind::Message(m), Wire::Bytes(b)) => message_value(m, b)?,
        _ => None,
    })
}

fn message_value(message: &str, bytes: &[u8]) -> Result<Option<Value>, ProtobufError> {
    if let Some(v) = special(message, bytes)? {
        return Ok(v);
    }
    Ok(Some(decode_message(message, bytes)?))
}

fn packed_scalars(kind: &Kind, b: &[u8]) -> Result<Vec<Value>, ProtobufError> {
    Ok(wire::packed(b)?
        .into_iter()
        .filter_map(|n| match kind {
            Kind::Int32 => Some(Value::from(n as i64 as i32)),
            Kind::Int64 => Some(Value::from(n as i64)),
            Kind::Bool => Some(Value::Bool(n != 0)),
            _ => None,
        })
        .collect())
}

fn map_entry(field: &Field, b: &[u8]) -> Result<Option<(String, Value)>, ProtobufError> {
    let mut key = String::new();
    let mut val = None;
    for (t, v) in wire::fields(b)? {
        match (t, v) {
            (1, Wire::Bytes(k)) => key = String::from_utf8_lossy(k).into_owned(),
            (2, v) => val = scalar(&field.kind, v)?,
            _ => {}
        }
    }
    let val = val.unwrap_or(match field.kind {
        Kind::String | Kind::Bytes => Value::String(String::new()),
        _ => Value::Object(Map::new()),
    });
    Ok(Some((key, val)))
}

/// Decodes one message of the table into JSON.
pub fn decode_message(message: &str, bytes: &[u8]) -> Result<Value, ProtobufError> {
    let plan = plan(message).ok_or_else(|| ProtobufError::UnknownMessage(message.to_string()))?;
    let mut out = Map::new();
    for (tag, v) in wire::fields(bytes)? {
        let Some((field, json)) = plan.iter().find(|(f, _)| f.tag == tag) else {
            continue;
        };
        let name = match json {
            JsonField::Named(n) => n.clone(),
            JsonField::Inline => {
                if let (Kind::Message(m), Wire::Bytes(b)) = (&field.kind, v)
                    && let Value::Object(inner) = decode_message(m, b)?
                {
                    out.extend(inner);
                }
                continue;
            }
        };
        match field.cardinality {
            Cardinality::Single => {
                if let Some(val) = scalar(&field.kind, v)? {
                    if val == Value::String(String::new()) {
                        continue;
                    }
                    out.insert(name, val);
                }
            }
            Cardinality::Repeated => {
                let list = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
                let Some(arr) = list.as_array_mut() else {
                    continue;
                };
                match (&field.kind, v) {
                    (Kind::Int32 | Kind::Int64 | Kind::Bool, Wire::Bytes(b)) => {
                        arr.extend(packed_scalars(&field.kind, b)?)
                    }
                    (kind, v) => {
                        if let Some(val) = scalar(kind, v)? {
                            arr.push(val);
                        }
                    }
                }
            }
            Cardinality::Map => {
                if let Wire::Bytes(b) = v
                    && let Some((k, val)) = map_entry(field, b)?
                {
                    let m = out.entry(name).or_insert_with(|| Value::Object(Map::new()));
                    if let Some(m) = m.as_object_mut() {
                        m.insert(k, val);
                    }
                }
            }
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_durations() {
        assert_eq!(
            json_name("io.k8s.api.core.v1.PodStatus", "host_ips"),
            "hostIPs"
        );
        assert_eq!(
            json_name("io.k8s.api.core.v1.ServiceSpec", "cluster_ip"),
            "clusterIP"
        );
        assert_eq!(
            camel("termination_grace_period_seconds"),
            "terminationGracePeriodSeconds"
        );
        assert_eq!(
            json_name(
                "io.k8s.api.core.v1.AwsElasticBlockStoreVolumeSource",
                "volume_id"
            ),
            "volumeID"
        );
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(
            time(1_700_000_000, 0, false),
            Some(Value::String("2023-11-14T22:13:20Z".into()))
        );
    }
}
