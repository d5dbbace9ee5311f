//! Selectable fields: the fields a field selector may name beyond
//! `metadata.name` and `metadata.namespace`, and where their values are.

use serde_json::Value;

/// One field a field selector may name beyond `metadata.name` and
/// `metadata.namespace`, and where its value is in the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectableField {
    /// The selector's path (`spec.nodeName`).
    pub name: &'static str,
    /// JSON pointer to the value (`/spec/nodeName`).
    pub pointer: &'static str,
    /// The value when the object leaves the field out (`false` for a
    /// boolean kube-apiserver always sets).
    pub absent: &'static str,
}

impl SelectableField {
    pub const fn at(name: &'static str, pointer: &'static str) -> Self {
        SelectableField {
            name,
            pointer,
            absent: "",
        }
    }

    /// A boolean field whose absence reads as `false`.
    pub const fn flag(name: &'static str, pointer: &'static str) -> Self {
        SelectableField {
            name,
            pointer,
            absent: "false",
        }
    }

    /// The field's value in `obj`, as a field selector compares it.
    pub fn value(&self, obj: &Value) -> String {
        match obj.pointer(self.pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => self.absent.to_string(),
        }
    }
}

/// The values of `fields` in `obj`, as the storage layer keeps them.
pub fn field_values(fields: &[SelectableField], obj: &Value) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| (f.name.to_string(), f.value(obj)))
        .collect()
}
