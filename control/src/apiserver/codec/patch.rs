//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
//! strategic merge patch with the schema's merge keys and strategies and
//! the `$patch`, `$retainKeys`, `$deleteFromPrimitiveList` and
//! `$setElementOrder` directives, as apimachinery's strategicpatch applies
//! them.

use serde_json::{Map, Value};

use crate::api::status::ApiError;
use crate::schema::{Node, Shape};

/// The patch types kube-apiserver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: Option<&str>) -> Result<Self, ApiError> {
        let essence = ct.unwrap_or("").split(';').next().unwrap_or("").trim();
        match essence {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other})"
                ),
            )),
        }
    }
}

/// Applies a JSON patch document.
pub fn json_patch(target: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    let ops: json_patch::Patch = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut out = target.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| {
        ApiError::new(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {e}"),
        )
    })?;
    Ok(out)
}

/// Applies a JSON merge patch.
pub fn merge_patch(target: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    let p: Value = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !p.is_object() {
        return Err(ApiError::bad_request(
            "unable to find api field in struct Unstructured for the json field \"\"",
        ));
    }
    let mut out = target.clone();
    json_patch::merge(&mut out, &p);
    Ok(out)
}

/// Applies a strategic merge patch for an object of schema `node`.
pub fn strategic_patch(
    target: &Value,
    patch: &[u8],
    node: Option<Node<'static>>,
) -> Result<Value, ApiError> {
    let p: Value = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let Value::Object(pm) = p else {
        return Err(ApiError::bad_request(
            "strategic merge patch must be a JSON object",
        ));
    };
    let mut out = target.clone();
    merge_map(&mut out, &pm, node)?;
    Ok(out)
}

fn child(node: Option<Node<'static>>, key: &str) -> Option<Node<'static>> {
    let n = node?;
    match n.shape() {
        Shape::Map => n.values(),
        Shape::Struct => n.field(key),
        _ => None,
    }
}

fn merge_map(
    target: &mut Value,
    patch: &Map<String, Value>,
    node: Option<Node<'static>>,
) -> Result<(), ApiError> {
    if let Some(d) = patch.get("$patch").and_then(Value::as_str) {
        match d {
            "replace" => {
                let mut m = patch.clone();
                m.remove("$patch");
                *target = Value::Object(m);
                return Ok(());
            }
            "delete" => {
                *target = Value::Null;
                return Ok(());
            }
            "merge" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unknown patch type: {other}"
                )));
            }
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        if let Some(t) = target.as_object_mut() {
            t.retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    for (k, pv) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(del)) = (
                target.get_mut(field).and_then(Value::as_array_mut),
                pv.as_array(),
            ) {
                list.retain(|v| !del.contains(v));
            }
            continue;
        }
        let n = child(node, k);
        let t = target.as_object_mut().expect("target is an object");
        match pv {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(pm) if !matches!(n.map(|x| x.shape()), Some(Shape::Opaque)) => {
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                merge_map(entry, pm, n)?;
                if entry.is_null() {
                    t.remove(k);
                }
            }
            Value::Array(pa) => {
                let strategy = n.map(|x| x.patch_strategy()).unwrap_or_default();
                if strategy.merge {
                    let entry = t
                        .entry(k.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if !entry.is_array() {
                        *entry = Value::Array(Vec::new());
                    }
                    merge_list(entry, pa, strategy.merge_key, n.and_then(|x| x.items()))?;
                    if let Some(order) = patch
                        .get(&format!("$setElementOrder/{k}"))
                        .and_then(Value::as_array)
                    {
                        reorder(entry, order, strategy.merge_key);
                    }
                } else {
                    let cleaned: Vec<Value> = pa
                        .iter()
                        .filter(|v| v.get("$patch").is_none())
                        .cloned()
                        .collect();
                    t.insert(k.clone(), Value::Array(cleaned));
                }
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(
    target: &mut Value,
    patch: &[Value],
    key: Option<&str>,
    item_node: Option<Node<'static>>,
) -> Result<(), ApiError> {
    if patch.iter().any(|p| {
        p.get("$patch").and_then(Value::as_str) == Some("replace")
            && p.as_object().is_some_and(|m| m.len() == 1)
    }) {
        *target = Value::Array(
            patch
                .iter()
                .filter(|p| p.get("$patch").is_none())
                .cloned()
                .collect(),
        );
        return Ok(());
    }
    let list = target.as_array_mut().expect("target is a list");
    match key {
        Some(key) => {
            for p in patch {
                let Some(pm) = p.as_object() else {
                    continue;
                };
                let Some(kv) = pm.get(key) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {p} does not contain declared merge key: {key}"
                    )));
                };
                let pos = list.iter().position(|t| t.get(key) == Some(kv));
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        list.remove(i);
                    }
                    continue;
                }
                match pos {
                    Some(i) => merge_map(&mut list[i], pm, item_node)?,
                    None => {
                        let mut fresh = Value::Object(Map::new());
                        merge_map(&mut fresh, pm, item_node)?;
                        list.push(fresh);
                    }
                }
            }
        }
        None => {
            // A merging list of scalars: union.
            for p in patch {
                if !list.contains(p) {
                    list.push(p.clone());
                }
            }
        }
    }
    Ok(())
}

fn reorder(list: &mut Value, order: &[Value], key: Option<&str>) {
    let Some(items) = list.as_array_mut() else {
        return;
    };
    let pos = |v: &Value| {
        let id = match key {
            Some(k) => v.get(k),
            None => Some(v),
        };
        order
            .iter()
            .position(|o| match key {
                Some(k) => o.get(k) == id,
                None => Some(o) == id,
            })
            .unwrap_or(usize::MAX)
    };
    items.sort_by_key(pos);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::schemas;
    use serde_json::json;

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}},
               "spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]}, {"name": "b", "image": "y"}]}})
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let node = schemas().kind("", "v1", "Pod");
        let patch = br#"{"spec":{"containers":[{"name":"b","image":"z"},{"name":"c","image":"w"}]},"metadata":{"labels":{"a":null,"b":"2"}}}"#;
        let out = strategic_patch(&pod(), patch, node).unwrap();
        let cs = out["spec"]["containers"].as_array().unwrap();
        assert_eq!(cs.len(), 3);
        assert_eq!(cs[0]["image"], "x");
        assert_eq!(cs[1]["image"], "z");
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
    }

    #[test]
    fn strategic_directives() {
        let node = schemas().kind("", "v1", "Pod");
        let del = br#"{"spec":{"containers":[{"name":"a","$patch":"delete"}]}}"#;
        let out = strategic_patch(&pod(), del, node).unwrap();
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
        let rep = br#"{"spec":{"containers":[{"name":"only","image":"i"},{"$patch":"replace"}]}}"#;
        let out = strategic_patch(&pod(), rep, node).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "only", "image": "i"}])
        );
        let env = br#"{"spec":{"containers":[{"name":"a","env":[{"name":"K2","value":"2"}]}]}}"#;
        let out = strategic_patch(&pod(), env, node).unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn json_and_merge_patches() {
        let out = json_patch(
            &pod(),
            br#"[{"op":"replace","path":"/metadata/labels/a","value":"9"}]"#,
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"]["a"], "9");
        let out = merge_patch(&pod(), br#"{"spec":{"containers":[{"name":"only"}]}}"#).unwrap();
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(
            json_patch(&pod(), br#"[{"op":"remove","path":"/nope"}]"#)
                .unwrap_err()
                .code,
            422
        );
    }
}
