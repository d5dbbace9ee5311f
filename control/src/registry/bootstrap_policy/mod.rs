//! The RBAC policy kube-apiserver writes at start (its `bootstrappolicy`):
//! the user-facing roles (cluster-admin, admin, edit, view and their
//! aggregation), the roles of the system's own users (discovery, basic
//! user, public info, nodes, the node proxy, the scheduler, the controller
//! manager and each controller), and their bindings. Reconciled at start
//! as upstream reconciles it: a missing object is created; one whose
//! `rbac.authorization.kubernetes.io/autoupdate` annotation is not
//! `"false"` gets back any rule, subject, label or annotation it lost,
//! and keeps what was added to it.
//!
//! baton-node is a node's kubelet and its service proxy under one identity
//! (`system:node:<name>` in `system:nodes`), so `system:node-proxier` is
//! bound to `system:nodes`. The controller manager runs every controller
//! with its own credential (upstream's
//! `--use-service-account-credentials=false`), so, as upstream's
//! documentation asks of such a setup, each controller's role is bound to
//! `system:kube-controller-manager` too.

mod builders;
mod controllers;
mod objects;

use serde_json::{Map, Value, json};

use super::{Registry, WriteContext};
use crate::api::status::ApiError;
use crate::kinds;
use builders::{AUTOUPDATE, RBAC};
pub use objects::{cluster_role_bindings, cluster_roles, node_rules, role_bindings, roles};

/// The user of the controller manager.
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
/// The user of the API server's client certificate towards kubelets.
pub const APISERVER_KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";
/// The user of the scheduler.
pub const SCHEDULER: &str = "system:kube-scheduler";

/// `existing` brought back to cover `desired`: missing rules, subjects,
/// labels and annotations added, nothing taken away (upstream's
/// reconciliation in its default, non-removing mode). `None` when it
/// already does, or when it asks not to be updated.
pub fn reconciled(existing: &Value, desired: &Value) -> Option<Value> {
    let annotations = existing.pointer("/metadata/annotations");
    if annotations
        .and_then(|a| a.get(AUTOUPDATE))
        .and_then(Value::as_str)
        == Some("false")
    {
        return None;
    }
    let mut next = existing.clone();
    for map in ["labels", "annotations"] {
        let want = desired["metadata"][map]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let have = next["metadata"]
            .as_object_mut()
            .map(|m| m.entry(map).or_insert_with(|| Value::Object(Map::new())));
        if let Some(Value::Object(have)) = have {
            for (k, v) in want {
                have.entry(k).or_insert(v);
            }
        }
    }
    for list in ["rules", "subjects"] {
        if let Some(want) = desired.get(list).and_then(Value::as_array) {
            let have = next
                .as_object_mut()
                .expect("an object")
                .entry(list)
                .or_insert_with(|| json!([]));
            if !have.is_array() {
                *have = json!([]);
            }
            let items = have.as_array_mut().expect("an array");
            for item in want {
                if !items.contains(item) {
                    items.push(item.clone());
                }
            }
        }
    }
    if let Some(rule) = desired.get("aggregationRule")
        && existing.get("aggregationRule").is_none()
    {
        next["aggregationRule"] = rule.clone();
    }
    (next != *existing).then_some(next)
}

impl Registry {
    /// Writes the bootstrap policy: creates what is missing, reconciles
    /// what drifted.
    pub async fn ensure_policy(&self, ctx: &WriteContext) -> Result<(), ApiError> {
        let sets = [
            ("clusterroles", cluster_roles()),
            ("clusterrolebindings", cluster_role_bindings()),
            ("roles", roles()),
            ("rolebindings", role_bindings()),
        ];
        for (plural, objects) in sets {
            let r = kinds::find(RBAC, "v1", plural).expect("rbac served");
            for desired in objects {
                let namespace = desired
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let name = desired["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                match self.get(r, &namespace, &name).await {
                    Ok(existing) => {
                        if reconciled(&existing, &desired).is_none() {
                            continue;
                        }
                        let result = self
                            .update(r, &namespace, &name, ctx, |cur| match cur {
                                Some(cur) => {
                                    Ok(reconciled(cur, &desired).unwrap_or_else(|| cur.clone()))
                                }
                                None => Ok(desired.clone()),
                            })
                            .await;
                        match result {
                            Ok(_) => {}
                            Err(e) if e.code == 409 => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) if e.code == 404 => match self.create(r, &namespace, desired, ctx).await
                    {
                        Ok(_) => {}
                        Err(e) if e.code == 409 => {}
                        Err(e) => return Err(e),
                    },
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::builders::{cluster_role, rule};
    use super::*;

    #[test]
    fn reconciling_adds_what_is_missing_and_keeps_what_was_added() {
        let desired = cluster_role("r", vec![rule(&["get"], &[""], &["pods"])]);
        let mut existing = desired.clone();
        existing["rules"] = json!([rule(&["list"], &[""], &["secrets"])]);
        existing["metadata"]["labels"]["team"] = json!("a");
        let next = reconciled(&existing, &desired).expect("drifted");
        assert_eq!(next["rules"].as_array().unwrap().len(), 2);
        assert_eq!(next["metadata"]["labels"]["team"], "a");
        assert_eq!(reconciled(&next, &desired), None);
        existing["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        assert_eq!(reconciled(&existing, &desired), None);
    }

    #[test]
    fn every_binding_names_a_role_of_the_policy() {
        let names: Vec<String> = cluster_roles()
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        for b in cluster_role_bindings() {
            let role = b["roleRef"]["name"].as_str().unwrap();
            assert!(names.iter().any(|n| n == role), "{role}");
        }
        let namespaced: Vec<String> = roles()
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        for b in role_bindings() {
            let role = b["roleRef"]["name"].as_str().unwrap();
            assert!(namespaced.iter().any(|n| n == role), "{role}");
        }
        // Every object passes the kind's own validation.
        for (plural, objects) in [
            ("clusterroles", cluster_roles()),
            ("clusterrolebindings", cluster_role_bindings()),
            ("roles", roles()),
            ("rolebindings", role_bindings()),
        ] {
            let r = kinds::find(RBAC, "v1", plural).unwrap();
            for o in objects {
                assert!(r.strategy.validate_create(&o).is_empty(), "{o}");
            }
        }
    }
}
