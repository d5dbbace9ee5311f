//! JSON → protobuf message, the inverse of `convert`, driven by the same
//! field table and JSON names. Fields are written in tag order, repeated
//! scalars unpacked and map entries sorted by key, as the gogo-generated
//! marshalers of k8s.io/api write them. Well-known types take their
//! protobuf forms: Time and MicroTime seconds + nanos, Duration
//! nanoseconds, Quantity its string, IntOrString type + intVal + strVal,
//! RawExtension and FieldsV1 the embedded JSON's bytes, `[]byte` from
//! base64. JSON fields the message does not have (apiVersion, kind) and
//! nulls are left out.

use base64::Engine as _;
use serde_json::Value;

use super::convert::{JsonField, plan};
use super::error::ProtobufError;
use super::table::{Cardinality, Field, Kind};
use super::wire::{self, put_bytes, put_key, put_varint_field};

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

fn field_error(message: &str, field: &str, problem: impl Into<String>) -> ProtobufError {
    ProtobufError::Field {
        message: message.to_string(),
        field: field.to_string(),
        problem: problem.into(),
    }
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_u64().map(|n| n as i64))
        .or_else(|| v.as_f64().map(|f| f as i64))
}

/// Nanoseconds of a Go duration string (`1h2m3.5s`, `300ms`, `-1us`).
pub(super) fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
    }
    let ns = total.round() as i64;
    Some(if neg { -ns } else { ns })
}

/// A well-known message's protobuf form; None when `message` is ordinary.
fn special(message: &str, v: &Value) -> Option<Result<Vec<u8>, ProtobufError>> {
    let mut out = Vec::new();
    let time = message == format!("{META}.Time") || message == format!("{META}.MicroTime");
    if time {
        let Some(s) = v.as_str() else {
            return Some(Err(field_error(message, "", "time is not a string")));
        };
        let t: jiff::Timestamp = match s.parse() {
            Ok(t) => t,
            Err(e) => return Some(Err(field_error(message, "", e.to_string()))),
        };
        put_varint_field(&mut out, 1, t.as_second() as u64);
        put_varint_field(&mut out, 2, i64::from(t.subsec_nanosecond()) as u64);
        return Some(Ok(out));
    }
    match message {
        m if m == format!("{META}.Duration") => {
            let ns = match v {
                Value::String(s) => parse_go_duration(s),
                other => int(other),
            };
            let Some(ns) = ns else {
                return Some(Err(field_error(message, "duration", "not a Go duration")));
            };
            put_varint_field(&mut out, 1, ns as u64);
        }
        "io.k8s.apimachinery.pkg.api.resource.Quantity" => {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            put_bytes(&mut out, 1, s.as_bytes());
        }
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => match v {
            Value::String(s) => {
                put_varint_field(&mut out, 1, 1);
                put_varint_field(&mut out, 2, 0);
                put_bytes(&mut out, 3, s.as_bytes());
            }
            other => {
                let Some(n) = int(other) else {
                    return Some(Err(field_error(message, "", "neither int nor string")));
                };
                put_varint_field(&mut out, 1, 0);
                put_varint_field(&mut out, 2, n as i32 as i64 as u64);
                put_bytes(&mut out, 3, b"");
            }
        },
        "io.k8s.apimachinery.pkg.runtime.RawExtension" => {
            put_bytes(&mut out, 1, &serde_json::to_vec(v).unwrap_or_default());
        }
        m if m == format!("{META}.FieldsV1") => {
            put_bytes(&mut out, 1, &serde_json::to_vec(v).unwrap_or_default());
        }
        _ => return None,
    }
    Some(Ok(out))
}

/// Appends one value of a field with its key.
fn put_value(
    out: &mut Vec<u8>,
    message: &str,
    field: &Field,
    tag: u32,
    v: &Value,
) -> Result<(), ProtobufError> {
    let wrong = |what: &str| field_error(message, &field.name, format!("expected {what}, got {v}"));
    match &field.kind {
        Kind::String => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(wrong("a string")),
            };
            put_bytes(out, tag, s.as_bytes());
        }
        Kind::Bool => {
            let b = v.as_bool().ok_or_else(|| wrong("a boolean"))?;
            put_varint_field(out, tag, u64::from(b));
        }
        Kind::Int32 => {
            let n = int(v).ok_or_else(|| wrong("an integer"))?;
            // Negative int32s are sign-extended to ten bytes.
            put_varint_field(out, tag, n as i32 as i64 as u64);
        }
        Kind::Int64 => {
            let n = int(v).ok_or_else(|| wrong("an integer"))?;
            put_varint_field(out, tag, n as u64);
        }
        Kind::Double => {
            let f = v.as_f64().ok_or_else(|| wrong("a number"))?;
            put_key(out, tag, wire::FIXED64);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Kind::Float => {
            let f = v.as_f64().ok_or_else(|| wrong("a number"))? as f32;
            put_key(out, tag, wire::FIXED32);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Kind::Bytes => {
            let s = v.as_str().ok_or_else(|| wrong("base64"))?;
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| wrong("base64"))?;
            put_bytes(out, tag, &b);
        }
        Kind::Message(m) => {
            let b = match special(m, v) {
                Some(r) => r?,
                None => encode_message(m, v)?,
            };
            put_bytes(out, tag, &b);
        }
    }
    Ok(())
}

/// Encodes a JSON object as one message of the table.
pub fn encode_message(message: &str, v: &Value) -> Result<Vec<u8>, ProtobufError> {
    let plan = plan(message).ok_or_else(|| ProtobufError::UnknownMessage(message.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| field_error(message, "", format!("expected an object, got {v}")))?;
    let mut out = Vec::new();
    for (field, json) in plan.iter() {
        let name = match json {
            JsonField::Named(n) => n,
            JsonField::Inline => {
                // An embedded struct: encoded from the parent's own fields.
                if let Kind::Message(m) = &field.kind {
                    put_bytes(&mut out, field.tag, &encode_message(m, v)?);
                }
                continue;
            }
        };
        let Some(val) = obj.get(name) else {
            continue;
        };
        if val.is_null() {
            continue;
        }
        match field.cardinality {
            Cardinality::Single => put_value(&mut out, message, field, field.tag, val)?,
            Cardinality::Repeated => {
                let items = val.as_array().ok_or_else(|| {
                    field_error(message, &field.name, format!("expected a list, got {val}"))
                })?;
                for item in items.iter().filter(|i| !i.is_null()) {
                    put_value(&mut out, message, field, field.tag, item)?;
                }
            }
            Cardinality::Map => {
                let entries = val.as_object().ok_or_else(|| {
                    field_error(message, &field.name, format!("expected a map, got {val}"))
                })?;
                let mut keys: Vec<&String> = entries.keys().collect();
                keys.sort();
                for k in keys {
                    let mut entry = Vec::new();
                    put_bytes(&mut entry, 1, k.as_bytes());
                    let ev = &entries[k];
                    if !ev.is_null() {
                        put_value(&mut entry, message, field, 2, ev)?;
                    }
                    put_bytes(&mut out, field.tag, &entry);
                }
            }
        }
    }
    Ok(out)
}

/// The `k8s\0` + `runtime.Unknown` envelope around a message's bytes.
pub fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::new();
    put_bytes(&mut type_meta, 1, api_version.as_bytes());
    put_bytes(&mut type_meta, 2, kind.as_bytes());
    let mut out = Vec::with_capacity(raw.len() + type_meta.len() + 24);
    out.extend_from_slice(super::MAGIC);
    put_bytes(&mut out, 1, &type_meta);
    put_bytes(&mut out, 2, raw);
    // contentEncoding and contentType: empty, written as Go writes them.
    put_bytes(&mut out, 3, b"");
    put_bytes(&mut out, 4, b"");
    out
}

/// A `meta.v1.WatchEvent` whose object is already encoded (with its own
/// envelope), as a watch stream carries it.
pub fn watch_event(kind: &str, object: &[u8]) -> Vec<u8> {
    let mut raw_ext = Vec::with_capacity(object.len() + 8);
    put_bytes(&mut raw_ext, 1, object);
    let mut out = Vec::with_capacity(raw_ext.len() + kind.len() + 8);
    put_bytes(&mut out, 1, kind.as_bytes());
    put_bytes(&mut out, 2, &raw_ext);
    out
}

/// One frame of a protobuf watch stream: the length, 4 bytes big-endian,
/// then the event.
pub fn frame(event: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.len() + 4);
    out.extend_from_slice(&(event.len() as u32).to_be_bytes());
    out.extend_from_slice(event);
    out
}
