//! Objects as the storage layer holds them: the JSON bytes clients receive
//! (with `metadata.resourceVersion` set to the etcd mod revision) plus the
//! few parsed fields that selectors need, so a LIST or a watch never parses
//! an object again.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::api::fields::{SelectableField, field_values};

/// The field-selector fields of a kind (`spec.nodeName`, …).
pub type Fields = &'static [SelectableField];

/// One stored object at one revision.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
    /// Selectable fields beyond `metadata.name`/`metadata.namespace`.
    pub fields: Vec<(String, String)>,
    /// etcd mod revision of this state (for a deletion: the delete revision).
    pub revision: i64,
    /// The object as served, `metadata.resourceVersion` included.
    pub json: Bytes,
}

impl CachedObject {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn field(&self, path: &str) -> Option<&str> {
        match path {
            "metadata.name" => Some(&self.name),
            "metadata.namespace" => Some(&self.namespace),
            _ => self
                .fields
                .iter()
                .find(|(k, _)| k == path)
                .map(|(_, v)| v.as_str()),
        }
    }

    /// The object parsed (for conversions and tables).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

/// Sets `metadata.resourceVersion` of an object.
pub fn set_resource_version(obj: &mut Value, revision: i64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// Builds the cached form of an object value at `revision`.
pub fn from_value(key: &str, mut obj: Value, revision: i64, fields: Fields) -> CachedObject {
    set_resource_version(&mut obj, revision);
    let meta = obj.get("metadata");
    let s = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let labels = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    CachedObject {
        key: key.to_string(),
        namespace: s("namespace"),
        name: s("name"),
        labels,
        // Empty fields read as "" anyway; not storing them saves memory.
        fields: field_values(fields, &obj)
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect(),
        revision,
        json: Bytes::from(serde_json::to_vec(&obj).unwrap_or_default()),
    }
}

/// Decodes a stored value read from etcd.
pub fn decode(key: &str, raw: &[u8], revision: i64, fields: Fields) -> Option<Arc<CachedObject>> {
    let obj: Value = serde_json::from_slice(raw).ok()?;
    Some(Arc::new(from_value(key, obj, revision, fields)))
}

/// The bytes written to etcd: the object without its resourceVersion (the
/// revision is etcd's, not part of the value), as kube-apiserver stores it.
pub fn encode_for_storage(obj: &Value) -> Vec<u8> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).unwrap_or_default()
}

/// A copy of `obj` re-stamped at another revision (a deletion's tombstone).
pub fn restamp(obj: &CachedObject, revision: i64, fields: Fields) -> CachedObject {
    let value: Value = serde_json::from_slice(&obj.json).unwrap_or(Value::Null);
    from_value(&obj.key, value, revision, fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_version_is_the_revision_and_not_stored() {
        let v = serde_json::json!({"metadata":{"name":"a","namespace":"d","labels":{"app":"x"},"resourceVersion":"9"}});
        let stored = encode_for_storage(&v);
        assert!(!String::from_utf8_lossy(&stored).contains("resourceVersion"));
        let c = decode("/registry/pods/d/a", &stored, 17, &[]).unwrap();
        assert_eq!(c.value()["metadata"]["resourceVersion"], "17");
        assert_eq!(c.label("app"), Some("x"));
        assert_eq!(c.field("metadata.namespace"), Some("d"));
    }
}
