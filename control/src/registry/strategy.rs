//! Per-kind rules of the generic registry (kube-apiserver's "strategies"):
//! what is reset on create, what a main-resource or status write may
//! change, which kinds track generation, and the selectable fields.

use serde_json::{Value, json};

use crate::apiserver::resources::Resource;
use crate::storage::FieldsFn;

/// Kinds whose metadata.generation follows spec changes.
pub fn tracks_generation(r: &Resource) -> bool {
    matches!(r.kind, "Deployment" | "ReplicaSet")
}

/// Kinds a PUT may create when absent (kube-apiserver's AllowCreateOnUpdate).
pub fn allow_create_on_update(r: &Resource) -> bool {
    matches!(
        r.kind,
        "Endpoints"
            | "Event"
            | "Lease"
            | "Role"
            | "RoleBinding"
            | "ClusterRole"
            | "ClusterRoleBinding"
    )
}

/// Subresources read and written as the object itself, through the
/// generic get, update and patch: `status`, a namespace's `finalize` and a
/// pod's `ephemeralcontainers`. [`prepare_update`] keeps to each one's part.
pub fn writes_the_object(subresource: &str) -> bool {
    matches!(subresource, "status" | "finalize" | "ephemeralcontainers")
}

pub fn has_status(r: &Resource) -> bool {
    r.subresource("status").is_some()
}

/// Pod QoS class from its containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        let relevant = |m: Option<&serde_json::Map<String, Value>>| {
            m.map(|m| m.keys().any(|k| k == "cpu" || k == "memory"))
                .unwrap_or(false)
        };
        if relevant(req) || relevant(lim) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(res));
            let r = req.and_then(|m| m.get(res)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Resets what a create may not set (status of most kinds).
pub fn prepare_create(r: &Resource, obj: &mut Value) {
    match r.kind {
        "Pod" => {
            let qos = qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        "Service" => obj["status"] = json!({"loadBalancer": {}}),
        "Deployment" | "ReplicaSet" => obj["status"] = json!({}),
        "Namespace" => {
            obj["status"] = json!({"phase": "Active"});
            if !obj.get("spec").is_some_and(Value::is_object) {
                obj["spec"] = json!({});
            }
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
        }
        "PersistentVolume" | "PersistentVolumeClaim" => obj["status"] = json!({"phase": "Pending"}),
        _ => {}
    }
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
/// the old status; a status write keeps the old spec and metadata except
/// labels and annotations; a namespace finalize changes only
/// spec.finalizers; a pod's ephemeralcontainers write changes only
/// spec.ephemeralContainers (`dropNonEphemeralContainerUpdates`).
pub fn prepare_update(r: &Resource, subresource: Option<&str>, new: &mut Value, old: &Value) {
    match subresource {
        None => {
            if has_status(r) {
                copy_field(new, old, "status");
            }
            if r.kind == "Namespace" {
                let fin = old.pointer("/spec/finalizers").cloned();
                if let Some(f) = fin {
                    if !new.get("spec").is_some_and(Value::is_object) {
                        new["spec"] = json!({});
                    }
                    new["spec"]["finalizers"] = f;
                }
            }
        }
        Some("status") => {
            copy_field(new, old, "spec");
            keep_metadata_except_labels(new, old);
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

fn s(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn pod_fields(v: &Value) -> Vec<(String, String)> {
    [
        ("spec.nodeName", "/spec/nodeName"),
        ("spec.restartPolicy", "/spec/restartPolicy"),
        ("spec.schedulerName", "/spec/schedulerName"),
        ("spec.serviceAccountName", "/spec/serviceAccountName"),
        ("spec.hostNetwork", "/spec/hostNetwork"),
        ("status.phase", "/status/phase"),
        ("status.podIP", "/status/podIP"),
        ("status.nominatedNodeName", "/status/nominatedNodeName"),
    ]
    .iter()
    .map(|(k, p)| {
        let mut val = s(v, p);
        if *k == "spec.hostNetwork" && val.is_empty() {
            val = "false".into();
        }
        (k.to_string(), val)
    })
    .collect()
}

fn event_fields(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = [
        "kind",
        "namespace",
        "name",
        "uid",
        "apiVersion",
        "resourceVersion",
        "fieldPath",
    ]
    .iter()
    .map(|f| {
        (
            format!("involvedObject.{f}"),
            s(v, &format!("/involvedObject/{f}")),
        )
    })
    .collect();
    out.push(("reason".into(), s(v, "/reason")));
    out.push(("reportingComponent".into(), s(v, "/reportingComponent")));
    out.push(("source".into(), s(v, "/source/component")));
    out.push(("type".into(), s(v, "/type")));
    out
}

fn node_fields(v: &Value) -> Vec<(String, String)> {
    let mut u = s(v, "/spec/unschedulable");
    if u.is_empty() {
        u = "false".into();
    }
    vec![("spec.unschedulable".into(), u)]
}

fn secret_fields(v: &Value) -> Vec<(String, String)> {
    vec![("type".into(), s(v, "/type"))]
}

fn namespace_fields(v: &Value) -> Vec<(String, String)> {
    vec![("status.phase".into(), s(v, "/status/phase"))]
}

fn replicaset_fields(v: &Value) -> Vec<(String, String)> {
    vec![("status.replicas".into(), s(v, "/status/replicas"))]
}

fn service_fields(v: &Value) -> Vec<(String, String)> {
    vec![
        ("spec.clusterIP".into(), s(v, "/spec/clusterIP")),
        ("spec.type".into(), s(v, "/spec/type")),
    ]
}

fn no_fields(_: &Value) -> Vec<(String, String)> {
    Vec::new()
}

/// Extractor of a resource's selectable fields.
pub fn fields_for(r: &Resource) -> FieldsFn {
    match r.kind {
        "Pod" => pod_fields,
        "Event" => event_fields,
        "Node" => node_fields,
        "Secret" => secret_fields,
        "Namespace" => namespace_fields,
        "ReplicaSet" => replicaset_fields,
        "Service" => service_fields,
        _ => no_fields,
    }
}

/// Field selector paths a resource accepts besides metadata.name/namespace.
pub fn selectable_fields(r: &Resource) -> &'static [&'static str] {
    match r.kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Node" => &["spec.unschedulable"],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" => &["status.replicas"],
        "Service" => &["spec.clusterIP", "spec.type"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::find;

    #[test]
    fn qos_classes() {
        let be = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(qos_class(&be), "BestEffort");
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }

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
        prepare_create(ns, &mut o);
        assert_eq!(o["spec"]["finalizers"][0], "kubernetes");
        assert_eq!(o["status"]["phase"], "Active");
    }
}
