//! Small helpers to apply defaults on the wire form (`serde_json::Value`)
//! with Go's zero-value semantics: a string default replaces a missing,
//! null or empty string; a pointer default replaces only a missing or null
//! value; a non-pointer number default also replaces 0.

use serde_json::{Map, Value};

pub type Obj = Map<String, Value>;

/// The object at `key`, created empty if missing or null (Go structs are
/// never nil).
pub fn child<'a>(obj: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    let slot = obj.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// The object at `key` only if present (Go pointers to structs).
pub fn present<'a>(obj: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    obj.get_mut(key).and_then(Value::as_object_mut)
}

/// Every object element of the array at `key`.
pub fn each<'a>(obj: &'a mut Obj, key: &str) -> impl Iterator<Item = &'a mut Obj> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn absent(obj: &Obj, key: &str) -> bool {
    obj.get(key).is_none_or(Value::is_null)
}

/// Sets a string field when missing, null or "".
pub fn default_str(obj: &mut Obj, key: &str, value: &str) {
    if absent(obj, key) || obj.get(key).and_then(Value::as_str) == Some("") {
        obj.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// Sets a field when missing or null (a Go pointer field).
pub fn default_value(obj: &mut Obj, key: &str, value: Value) {
    if absent(obj, key) {
        obj.insert(key.to_string(), value);
    }
}

/// Sets a number when missing, null or 0 (a Go non-pointer number).
pub fn default_nonzero(obj: &mut Obj, key: &str, value: i64) {
    if absent(obj, key) || obj.get(key).and_then(Value::as_i64) == Some(0) {
        obj.insert(key.to_string(), Value::from(value));
    }
}

/// The string at `key`, "" if missing.
pub fn str_of<'a>(obj: &'a Obj, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zero_value_semantics() {
        let mut o = json!({"a": "", "b": 0, "c": null, "d": 0})
            .as_object()
            .unwrap()
            .clone();
        default_str(&mut o, "a", "x");
        default_nonzero(&mut o, "b", 3);
        default_value(&mut o, "c", json!(true));
        default_value(&mut o, "d", json!(5));
        assert_eq!(
            Value::Object(o),
            json!({"a": "x", "b": 3, "c": true, "d": 0})
        );
    }
}
