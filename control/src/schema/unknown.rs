//! Unknown fields of a request body, named as kube-apiserver names them.
//!
//! kube-apiserver decodes built-in kinds with sigs.k8s.io/json's strict,
//! case-sensitive decoder, which records every key no struct field takes as
//! `unknown field "<path>"`: field names joined with `.`, list items as
//! `[i]`, map keys as `.key` (`spec.template.spec.containers[0].foo`). Keys
//! inside raw values (RawExtension, FieldsV1) are never checked, nor are
//! values of the wrong type (those are decode errors, not unknown fields).

use serde_json::Value;

use super::{Node, Shape, schemas};

/// Paths of the fields of `object` that kind `group/version/kind` does not
/// have, in the order the object's map yields them. Empty for a kind that is
/// not served.
pub fn unknown_fields(group: &str, version: &str, kind: &str, object: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(root) = schemas().kind(group, version, kind) {
        let mut path = String::new();
        walk(root, object, &mut path, &mut out);
    }
    out
}

/// The text of kube-apiserver's strict decoding error for these paths
/// (apimachinery `runtime.NewStrictDecodingError`):
/// `strict decoding error: unknown field "spec.foo", unknown field "x"`.
pub fn strict_decoding_message(unknown: &[String]) -> String {
    let fields: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    format!("strict decoding error: {}", fields.join(", "))
}

fn walk(node: Node<'_>, value: &Value, path: &mut String, out: &mut Vec<String>) {
    match (node.shape(), value) {
        (Shape::Struct, Value::Object(fields)) => {
            for (key, child) in fields {
                let len = path.len();
                push_key(path, key);
                match node.field(key) {
                    Some(field) => walk(field, child, path, out),
                    None => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Shape::Map, Value::Object(entries)) => {
            let Some(values) = node.values() else { return };
            for (key, child) in entries {
                let len = path.len();
                push_key(path, key);
                walk(values, child, path, out);
                path.truncate(len);
            }
        }
        (Shape::List, Value::Array(items)) => {
            let Some(item) = node.items() else { return };
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, child, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}
