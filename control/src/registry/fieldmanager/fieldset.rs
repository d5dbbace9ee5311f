//! Field sets in structured-merge-diff's terms: the set of paths an object
//! sets, built by walking the object with its schema (struct fields, map
//! keys, associative list items by key, set items by value), and its
//! `FieldsV1` encoding (`{"f:spec":{"f:replicas":{}}}`).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::schema::{ApplyStrategy, Node, Shape};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// `f:<name>`
    Field(String),
    /// `k:<json of key fields>`
    Key(String),
    /// `v:<json value>`
    Value(String),
    /// `i:<index>`
    Index(usize),
}

pub type Path = Vec<Step>;
pub type FieldSet = BTreeSet<Path>;

/// Top-level and metadata fields nobody owns.
fn ignored(path: &[Step]) -> bool {
    match path {
        [Step::Field(f)] => matches!(f.as_str(), "apiVersion" | "kind"),
        [Step::Field(m), Step::Field(f)] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "selfLink"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "generateName"
        ),
        _ => false,
    }
}

/// Key fields the built-in schemas give a default: `protocol` of container,
/// service and endpoint ports (`default: "TCP"` in Kubernetes' OpenAPI). As
/// structured-merge-diff does, a missing key field counts as its default,
/// so `{containerPort: 80}` applied over a stored
/// `{containerPort: 80, protocol: TCP}` is the same item, and managedFields
/// name it `k:{"containerPort":80,"protocol":"TCP"}`.
const KEY_DEFAULTS: &[(&str, &str)] = &[("protocol", "TCP")];

/// JSON of an associative list item's key fields.
pub fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        let value = item.get(*k).cloned().or_else(|| {
            KEY_DEFAULTS
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, default)| Value::from(*default))
        });
        if let Some(v) = value {
            m.insert((*k).to_string(), v);
        }
    }
    Value::Object(m).to_string()
}

/// Key fields of a list, by the schema or (unknown schema) by convention.
pub fn list_strategy(node: Option<Node<'static>>, items: &[Value]) -> ApplyStrategy<'static> {
    if let Some(n) = node {
        return n.apply_strategy();
    }
    if items.iter().all(|i| i.get("name").is_some()) && !items.is_empty() {
        ApplyStrategy::Map(vec!["name"])
    } else {
        ApplyStrategy::Atomic
    }
}

fn child(node: Option<Node<'static>>, key: &str) -> Option<Node<'static>> {
    let n = node?;
    match n.shape() {
        Shape::Map => n.values(),
        Shape::Struct => n.field(key),
        _ => None,
    }
}

/// Every path `v` sets under `path`.
pub fn collect(node: Option<Node<'static>>, v: &Value, path: &mut Path, out: &mut FieldSet) {
    if ignored(path) {
        return;
    }
    match v {
        Value::Object(m) => {
            let shape = node.map(|n| n.shape());
            if matches!(shape, Some(Shape::Opaque | Shape::Scalar)) || m.is_empty() {
                out.insert(path.clone());
                return;
            }
            if shape == Some(Shape::Map) && !path.is_empty() {
                out.insert(path.clone());
            }
            for (k, c) in m {
                path.push(Step::Field(k.clone()));
                collect(child(node, k), c, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            let item_node = node.and_then(|n| n.items());
            match list_strategy(node, items) {
                ApplyStrategy::Map(keys) => {
                    for item in items {
                        path.push(Step::Key(item_key(item, &keys)));
                        out.insert(path.clone());
                        if let Value::Object(m) = item {
                            for (k, c) in m {
                                path.push(Step::Field(k.clone()));
                                collect(child(item_node, k), c, path, out);
                                path.pop();
                            }
                        }
                        path.pop();
                    }
                }
                ApplyStrategy::Set => {
                    out.insert(path.clone());
                    for item in items {
                        path.push(Step::Value(item.to_string()));
                        out.insert(path.clone());
                        path.pop();
                    }
                }
                _ => {
                    out.insert(path.clone());
                }
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The set of an object's fields, without `status` (`skip_status`) or
/// with only `status` and metadata labels/annotations (`only_status`).
pub fn of_object(
    node: Option<Node<'static>>,
    v: &Value,
    subresource: Option<&str>,
    has_status: bool,
) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    collect(node, v, &mut path, &mut out);
    out.retain(|p| {
        let top = match p.first() {
            Some(Step::Field(f)) => f.as_str(),
            _ => "",
        };
        match subresource {
            Some("status") => top == "status" || top == "metadata",
            _ => !(has_status && top == "status"),
        }
    });
    out
}

/// The value at `path` in `v`.
pub fn value_at<'a>(v: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut cur = v;
    for step in path {
        cur = match step {
            Step::Field(f) => cur.get(f)?,
            Step::Key(k) => {
                let want: Map<String, Value> = serde_json::from_str(k).ok()?;
                cur.as_array()?
                    .iter()
                    .find(|item| want.iter().all(|(kk, vv)| item.get(kk) == Some(vv)))?
            }
            Step::Value(j) => {
                let want: Value = serde_json::from_str(j).ok()?;
                cur.as_array()?.iter().find(|i| **i == want)?
            }
            Step::Index(i) => cur.get(*i)?,
        };
    }
    Some(cur)
}

fn step_name(s: &Step) -> String {
    match s {
        Step::Field(f) => format!("f:{f}"),
        Step::Key(k) => format!("k:{k}"),
        Step::Value(v) => format!("v:{v}"),
        Step::Index(i) => format!("i:{i}"),
    }
}

fn parse_step(s: &str) -> Option<Step> {
    let (kind, rest) = s.split_at_checked(2)?;
    Some(match kind {
        "f:" => Step::Field(rest.to_string()),
        "k:" => Step::Key(rest.to_string()),
        "v:" => Step::Value(rest.to_string()),
        "i:" => Step::Index(rest.parse().ok()?),
        _ => return None,
    })
}

/// Encodes a set as FieldsV1.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for step in path {
            let entry = node
                .entry(step_name(step))
                .or_insert_with(|| Value::Object(Map::new()));
            node = entry.as_object_mut().expect("fieldsV1 nodes are objects");
        }
        node.insert(".".into(), Value::Object(Map::new()));
    }
    // "." only marks a member that also has children.
    fn tidy(m: &mut Map<String, Value>) {
        let has_children = m.keys().any(|k| k != ".");
        if !has_children {
            m.remove(".");
        }
        for (k, v) in m.iter_mut() {
            if k != "."
                && let Some(c) = v.as_object_mut()
            {
                tidy(c);
            }
        }
    }
    tidy(&mut root);
    Value::Object(root)
}

/// Decodes FieldsV1.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(m: &Map<String, Value>, path: &mut Path, out: &mut FieldSet) {
        if (m.is_empty() || m.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, c) in m {
            if k == "." {
                continue;
            }
            if let (Some(step), Some(cm)) = (parse_step(k), c.as_object()) {
                path.push(step);
                walk(cm, path, out);
                path.pop();
            }
        }
    }
    let mut out = FieldSet::new();
    if let Some(m) = v.as_object() {
        walk(m, &mut Vec::new(), &mut out);
    }
    out
}

/// `.spec.replicas`, `.spec.containers[name="x"].image` for messages.
pub fn display(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Step::Key(k) => {
                let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = m.iter().map(|(a, b)| format!("{a}={b}")).collect();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            Step::Value(v) => s.push_str(&format!("[={v}]")),
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::schemas;
    use serde_json::json;

    #[test]
    fn deployment_fields_encode_like_kube() {
        let node = schemas().kind("apps", "v1", "Deployment");
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]}}},
            "status": {"replicas": 1}
        });
        let set = of_object(node, &d, None, true);
        let v1 = to_fields_v1(&set);
        assert_eq!(v1["f:metadata"]["f:labels"]["."], json!({}));
        assert_eq!(v1["f:spec"]["f:replicas"], json!({}));
        assert!(v1.get("f:status").is_none());
        assert!(v1["f:metadata"].get("f:name").is_none());
        let c = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(c["f:image"], json!({}));
        assert_eq!(from_fields_v1(&v1), set);
        let p = set
            .iter()
            .find(|p| p.len() == 2 && p[1] == Step::Field("replicas".into()))
            .unwrap();
        assert_eq!(value_at(&d, p), Some(&json!(3)));
        assert_eq!(display(p), ".spec.replicas");
    }
}
