//! managedFields: which field manager owns which fields. Every write
//! records its manager; `Update` writes take ownership of what they changed
//! (no conflicts), `Apply` writes (server-side apply, in `apply`) own
//! exactly their applied configuration and conflict with other owners.

pub mod apply;
pub mod fieldset;

use serde_json::{Value, json};

use crate::kinds;
use crate::schema::{self, Node};
use fieldset::{FieldSet, Step, from_fields_v1, of_object, to_fields_v1, value_at};

/// The operation of a managedFields entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Update,
    Apply,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Update => "Update",
            Operation::Apply => "Apply",
        }
    }
}

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    pub time: String,
    pub fields: FieldSet,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut e = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&self.fields),
        });
        if !self.subresource.is_empty() {
            e["subresource"] = json!(self.subresource);
        }
        e
    }

    fn same_slot(&self, manager: &str, op: Operation, api_version: &str, sub: &str) -> bool {
        self.manager == manager
            && self.operation == op.as_str()
            && self.subresource == sub
            && (op == Operation::Apply || self.api_version == api_version)
    }
}

/// Reads the entries of an object.
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    Entry {
                        manager: s("manager"),
                        operation: s("operation"),
                        api_version: s("apiVersion"),
                        subresource: s("subresource"),
                        time: s("time"),
                        fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes entries back (dropping empty ones; none at all removes the field).
pub fn set_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// The schema root of an object's kind.
pub fn schema_of(obj: &Value) -> Option<Node<'static>> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
    schema::schemas().kind(g, v, kind)
}

fn has_status(obj: &Value) -> bool {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
    kinds::find_kind(g, v, kind).is_some_and(|r| r.subresource("status").is_some())
}

/// Records an `Update` write of `manager` turning `old` into `new`: the
/// manager takes every field it set or changed; other managers lose the
/// fields it changed or removed. `Apply` writes set managedFields
/// themselves and are left alone here.
pub fn record(
    new: &mut Value,
    old: Option<&Value>,
    manager: &str,
    op: Operation,
    subresource: Option<&str>,
    api_version: &str,
) {
    if op == Operation::Apply {
        return;
    }
    let node = schema_of(new);
    let status = has_status(new);
    let mut list = match old {
        Some(o) => entries(o),
        None => entries(new),
    };
    if old.is_none() {
        list.retain(|e| e.operation == "Apply");
    }
    let new_set = of_object(node, new, subresource, status);
    let old_all = old
        .map(|o| of_object(node, o, subresource, status))
        .unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| {
            let Some(o) = old else { return true };
            match value_at(o, p) {
                None => true,
                Some(ov) => {
                    let leaf = !new_set
                        .iter()
                        .any(|q| q.len() > p.len() && q.starts_with(p));
                    leaf && Some(ov) != value_at(new, p)
                }
            }
        })
        .cloned()
        .collect();
    let removed: FieldSet = old_all.difference(&new_set).cloned().collect();
    let sub = subresource.unwrap_or("");
    for e in list.iter_mut() {
        e.fields.retain(|p| !removed.contains(p));
        if !e.same_slot(manager, op, api_version, sub) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    let now = crate::registry::metadata::now();
    match list
        .iter_mut()
        .find(|e| e.same_slot(manager, op, api_version, sub))
    {
        Some(e) => {
            let before = e.fields.len();
            e.fields.extend(changed.iter().cloned());
            if e.fields.len() != before {
                e.time = now;
            }
        }
        None if !changed.is_empty() => list.push(Entry {
            manager: manager.to_string(),
            operation: op.as_str().to_string(),
            api_version: api_version.to_string(),
            subresource: sub.to_string(),
            time: now,
            fields: changed,
        }),
        None => {}
    }
    // Fields that no longer exist are owned by nobody.
    let all = of_object(node, new, None, false);
    for e in list.iter_mut() {
        e.fields.retain(|p| {
            all.contains(p) || p.first() == Some(&Step::Field("status".into())) && all.contains(p)
        });
    }
    set_entries(new, &list);
}

/// The field manager kube-apiserver records when a client names none: the
/// User-Agent's program name (`kubectl-edit`, `kube-controller-manager`).
pub fn default_manager(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or("unknown");
    let prog = ua.split('/').next().unwrap_or(ua);
    let prog: String = prog.chars().take(128).collect();
    if prog.is_empty() {
        "unknown".into()
    } else {
        prog
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_take_ownership_of_changes() {
        let mut created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        record(
            &mut created,
            None,
            "kubectl-create",
            Operation::Update,
            None,
            "v1",
        );
        let e = entries(&created);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].manager, "kubectl-create");
        let mut edited = created.clone();
        edited["data"]["a"] = json!("changed");
        record(
            &mut edited,
            Some(&created),
            "kubectl-edit",
            Operation::Update,
            None,
            "v1",
        );
        let e = entries(&edited);
        assert_eq!(e.len(), 2);
        let edit = e.iter().find(|x| x.manager == "kubectl-edit").unwrap();
        assert_eq!(edit.fields.len(), 1);
        let create = e.iter().find(|x| x.manager == "kubectl-create").unwrap();
        assert!(
            !create
                .fields
                .contains(&vec![Step::Field("data".into()), Step::Field("a".into())])
        );
        assert!(edited["metadata"]["managedFields"][0]["fieldsV1"]["f:data"].is_object());
    }

    #[test]
    fn manager_from_user_agent() {
        assert_eq!(
            default_manager(Some("kubectl-edit/v1.33.0 (linux/amd64) kubernetes/abc")),
            "kubectl-edit"
        );
        assert_eq!(default_manager(None), "unknown");
    }
}
