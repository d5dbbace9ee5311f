//! NodeRestriction admission: what a node's credentials may write beyond
//! what the Node authorizer lets through. A node creates only mirror pods
//! bound to itself, updates the status of and deletes only pods bound to
//! itself, evicts only its own pods, and writes only its own Node object,
//! without the `node-restriction.kubernetes.io/` labels reserved to
//! administrators. Messages as kube-apiserver's plugin gives them.

use serde_json::Value;

use super::User;
use super::authorizer::node::node_name;
use crate::api::resource::Resource;
use crate::api::status::ApiError;
use crate::apiserver::router::Verb;

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const RESTRICTED_LABEL_PREFIX: &str = "node-restriction.kubernetes.io/";

/// Whether the plugin has something to say about `user` writing `r`.
pub fn applies(user: &User, r: &Resource) -> bool {
    r.group.is_empty() && matches!(r.plural, "pods" | "nodes") && node_name(user).is_some()
}

fn forbidden(r: &Resource, name: &str, why: String) -> ApiError {
    ApiError::forbidden(r, name, &why)
}

/// Checks `object`, about to be written by `user` with `verb` on `r` (or
/// its `subresource`).
pub fn check_write(
    user: &User,
    r: &Resource,
    verb: Verb,
    subresource: Option<&str>,
    object: &Value,
) -> Result<(), ApiError> {
    let Some(node) = node_name(user) else {
        return Ok(());
    };
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bound_to = object
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match (r.plural, subresource) {
        ("pods", None) => {
            if verb != Verb::Create {
                return Err(forbidden(
                    r,
                    name,
                    format!(
                        "unexpected operation {:?}, node {node:?} can only create and delete mirror pods",
                        operation(verb)
                    ),
                ));
            }
            if object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(MIRROR_ANNOTATION))
                .is_none()
            {
                return Err(forbidden(
                    r,
                    name,
                    format!(
                        "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node {node:?} can only create mirror pods"
                    ),
                ));
            }
            if bound_to != node {
                return Err(forbidden(
                    r,
                    name,
                    format!("node {node:?} can only create pods with spec.nodeName set to itself"),
                ));
            }
            Ok(())
        }
        ("pods", Some("status")) if bound_to != node => Err(forbidden(
            r,
            name,
            format!(
                "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
            ),
        )),
        ("pods", _) => Ok(()),
        ("nodes", _) => {
            if name != node {
                return Err(forbidden(
                    r,
                    name,
                    format!("node {node:?} is not allowed to modify node {name:?}"),
                ));
            }
            let restricted: Vec<&String> = object
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|l| l.keys())
                .filter(|k| {
                    label_domain(k).is_some_and(|d| {
                        d == RESTRICTED_LABEL_PREFIX.trim_end_matches('/')
                            || d.ends_with(".node-restriction.kubernetes.io")
                    })
                })
                .collect();
            if verb == Verb::Create && !restricted.is_empty() {
                return Err(forbidden(
                    r,
                    name,
                    format!(
                        "is not allowed to set the following labels: {}",
                        restricted
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Checks that `user` may delete (or evict) the pod `existing`.
pub fn check_pod_removal(
    user: &User,
    r: &Resource,
    existing: &Value,
    eviction: bool,
) -> Result<(), ApiError> {
    let Some(node) = node_name(user) else {
        return Ok(());
    };
    let name = existing
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bound_to = existing
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if bound_to == node {
        return Ok(());
    }
    let why = if eviction {
        format!("node {node:?} can only evict pods with spec.nodeName set to itself")
    } else {
        format!("node {node:?} can only delete pods with spec.nodeName set to itself")
    };
    Err(forbidden(r, name, why))
}

fn label_domain(key: &str) -> Option<&str> {
    key.split_once('/').map(|(domain, _)| domain)
}

fn operation(verb: Verb) -> &'static str {
    match verb {
        Verb::Create => "CREATE",
        Verb::Delete | Verb::DeleteCollection => "DELETE",
        _ => "UPDATE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds;
    use serde_json::json;

    fn node(name: &str) -> User {
        User {
            name: format!("system:node:{name}"),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            ..User::default()
        }
    }

    #[test]
    fn a_node_writes_only_its_own_pods_and_node() {
        let pods = kinds::find("", "v1", "pods").unwrap();
        let nodes = kinds::find("", "v1", "nodes").unwrap();
        let pod = |on: &str| json!({"metadata": {"name": "p"}, "spec": {"nodeName": on}});
        assert!(check_write(&node("n1"), pods, Verb::Update, Some("status"), &pod("n1")).is_ok());
        let err =
            check_write(&node("n1"), pods, Verb::Update, Some("status"), &pod("n2")).unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            r#"pods "p" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself"#
        );
        let err = check_write(&node("n1"), pods, Verb::Create, None, &pod("n1")).unwrap_err();
        assert!(
            err.message.contains("can only create mirror pods"),
            "{}",
            err.message
        );
        let mut mirror = pod("n1");
        mirror["metadata"]["annotations"] = json!({MIRROR_ANNOTATION: "x"});
        assert!(check_write(&node("n1"), pods, Verb::Create, None, &mirror).is_ok());
        let other = json!({"metadata": {"name": "n2"}});
        let err = check_write(&node("n1"), nodes, Verb::Patch, None, &other).unwrap_err();
        assert_eq!(
            err.message,
            r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#
        );
        assert!(
            check_write(
                &node("n1"),
                nodes,
                Verb::Patch,
                Some("status"),
                &json!({"metadata": {"name": "n1"}})
            )
            .is_ok()
        );
        let err = check_pod_removal(&node("n1"), pods, &pod("n2"), false).unwrap_err();
        assert_eq!(
            err.message,
            r#"pods "p" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself"#
        );
        assert!(check_pod_removal(&node("n1"), pods, &pod("n1"), false).is_ok());
        let admin = User {
            name: "admin".into(),
            ..User::default()
        };
        assert!(check_pod_removal(&admin, pods, &pod("n2"), false).is_ok());
    }
}
