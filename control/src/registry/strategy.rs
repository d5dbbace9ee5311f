//! The generic half of the registry's write rules (kube-apiserver's
//! `rest.BeforeCreate`/`BeforeUpdate` around the kinds' strategies): which
//! subresources write the object, and what a main-resource or subresource
//! write may change. What differs by kind is asked of its
//! [`Strategy`](crate::api::resource::Strategy).

use serde_json::{Value, json};

use crate::api::resource::Resource;

/// Subresources read and written as the object itself, through the
/// generic get, update and patch: `status`, a namespace's `finalize` and a
/// pod's `ephemeralcontainers`. [`prepare_update`] keeps to each one's part.
pub fn writes_the_object(subresource: &str) -> bool {
    matches!(
        subresource,
        "status" | "finalize" | "ephemeralcontainers" | "approval"
    )
}

pub fn has_status(r: &Resource) -> bool {
    r.subresource("status").is_some()
}

fn copy_field(new: &mut Value, old: &Value, field: &str) {
    match old.get(field) {
        Some(v) => new[field] = v.clone(),
        None => {
            if let Some(m) = new.as_object_mut() {
                m.remove(field);
            }
        }
    }
}

/// Applies the subresource rules of an update: a main-resource write keeps
/// the old status and what the kind's strategy keeps; a status write keeps the old spec and metadata except
/// labels and annotations; a namespace finalize changes only
/// spec.finalizers; a pod's ephemeralcontainers write changes only
/// spec.ephemeralContainers (`dropNonEphemeralContainerUpdates`).
pub fn prepare_update(r: &Resource, subresource: Option<&str>, new: &mut Value, old: &Value) {
    match subresource {
        None => {
            if has_status(r) {
                copy_field(new, old, "status");
            }
            r.strategy.prepare_update(new, old);
        }
        Some("status") => {
            copy_field(new, old, "spec");
            keep_metadata_except_labels(new, old);
            r.strategy.prepare_status_update(new, old);
        }
        Some("ephemeralcontainers") => {
            let ephemeral = new.pointer("/spec/ephemeralContainers").cloned();
            let managed = new.pointer("/metadata/managedFields").cloned();
            let mut next = old.clone();
            if let Some(spec) = next.get_mut("spec").and_then(Value::as_object_mut) {
                match ephemeral {
                    Some(e) => spec.insert("ephemeralContainers".into(), e),
                    None => spec.remove("ephemeralContainers"),
                };
            }
            if let (Some(meta), Some(m)) = (
                next.get_mut("metadata").and_then(Value::as_object_mut),
                managed,
            ) {
                meta.insert("managedFields".into(), m);
            }
            *new = next;
        }
        // A CSR's approval writes its conditions, nothing else.
        Some("approval") => {
            let conditions = new.pointer("/status/conditions").cloned();
            let managed = new.pointer("/metadata/managedFields").cloned();
            let mut next = old.clone();
            if !next.get("status").is_some_and(Value::is_object) {
                next["status"] = json!({});
            }
            match conditions {
                Some(c) => next["status"]["conditions"] = c,
                None => {
                    if let Some(status) = next["status"].as_object_mut() {
                        status.remove("conditions");
                    }
                }
            }
            if let Some(m) = managed {
                next["metadata"]["managedFields"] = m;
            }
            *new = next;
        }
        Some("finalize") => {
            let fin = new.pointer("/spec/finalizers").cloned();
            let mut next = old.clone();
            if !next.get("spec").is_some_and(Value::is_object) {
                next["spec"] = json!({});
            }
            next["spec"]["finalizers"] = fin.unwrap_or_else(|| json!([]));
            *new = next;
        }
        Some(_) => {}
    }
}

fn keep_metadata_except_labels(new: &mut Value, old: &Value) {
    let labels = new.pointer("/metadata/labels").cloned();
    let annotations = new.pointer("/metadata/annotations").cloned();
    let managed = new.pointer("/metadata/managedFields").cloned();
    let mut meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    for (k, v) in [
        ("labels", labels),
        ("annotations", annotations),
        ("managedFields", managed),
    ] {
        match v {
            Some(v) => meta[k] = v,
            None => {
                if let Some(m) = meta.as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    new["metadata"] = meta;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::find;

    #[test]
    fn status_and_spec_writes_are_separated() {
        let pods = find("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"name": "p", "labels": {"a": "1"}, "ownerReferences": [1]}, "spec": {"nodeName": ""}, "status": {"phase": "Pending"}});
        let mut main = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n"}, "status": {"phase": "Running"}});
        prepare_update(pods, None, &mut main, &old);
        assert_eq!(main["status"]["phase"], "Pending");
        assert_eq!(main["spec"]["nodeName"], "n");
        let mut st = json!({"metadata": {"name": "p", "labels": {"a": "2"}}, "spec": {"nodeName": "x"}, "status": {"phase": "Running"}});
        prepare_update(pods, Some("status"), &mut st, &old);
        assert_eq!(st["spec"]["nodeName"], "");
        assert_eq!(st["status"]["phase"], "Running");
        assert_eq!(st["metadata"]["labels"]["a"], "2");
        assert_eq!(st["metadata"]["ownerReferences"][0], 1);
    }

    #[test]
    fn an_ephemeralcontainers_write_changes_only_the_ephemeral_containers() {
        let pods = find("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"containers": [{"name": "app", "image": "i"}]}, "status": {"phase": "Running"}});
        let mut new = json!({"metadata": {"name": "p", "labels": {"a": "2"}}, "spec": {"containers": [{"name": "app", "image": "j"}], "ephemeralContainers": [{"name": "dbg", "image": "d"}]}, "status": {"phase": "Failed"}});
        prepare_update(pods, Some("ephemeralcontainers"), &mut new, &old);
        assert_eq!(new["spec"]["ephemeralContainers"][0]["name"], "dbg");
        assert_eq!(new["spec"]["containers"][0]["image"], "i");
        assert_eq!(new["metadata"]["labels"]["a"], "1");
        assert_eq!(new["status"]["phase"], "Running");
        assert!(writes_the_object("ephemeralcontainers") && !writes_the_object("eviction"));
    }

    #[test]
    fn namespace_create_gets_kubernetes_finalizer() {
        let ns = find("", "v1", "namespaces").unwrap();
        let mut o = json!({"metadata": {"name": "x"}});
        ns.strategy.prepare_create(&mut o);
        assert_eq!(o["spec"]["finalizers"][0], "kubernetes");
        assert_eq!(o["status"]["phase"], "Active");
    }
}
