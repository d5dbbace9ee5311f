//! The Node authorizer: a kubelet (`system:node:<name>` in `system:nodes`)
//! reads only the Secrets, ConfigMaps, PersistentVolumeClaims and
//! PersistentVolumes of pods bound to its node, requests tokens only for
//! those pods' ServiceAccounts, writes only its own Node and Lease, and
//! otherwise gets the fixed rules of kube-apiserver's `NodeRules`. The
//! relation "pod on this node refers to object" is read from the pods'
//! watch cache on each request, where kube-apiserver keeps a graph.

use std::sync::Arc;

use serde_json::Value;

use super::rules::Rule;
use super::{Attributes, Decision};
use crate::kinds;
use crate::registry::Registry;
use crate::registry::bootstrap_policy;
use crate::storage::keys;

/// The group every node is in.
pub const NODES_GROUP: &str = "system:nodes";
/// The user name prefix of a node.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The node a user is, when it is one.
pub fn node_name(user: &crate::apiserver::auth::User) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.groups.iter().any(|g| g == NODES_GROUP).then_some(name)
}

/// The rules every node has (upstream's `NodeRules`, the `system:node`
/// role's); for the kinds the graph covers, the graph decides first.
pub fn node_rules() -> Vec<Rule> {
    Rule::of(&serde_json::json!({"rules": bootstrap_policy::node_rules()}))
}

/// The Node authorizer.
pub struct NodeAuthorizer {
    registry: Arc<Registry>,
    rules: Vec<Rule>,
}

impl NodeAuthorizer {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            rules: node_rules(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn authorize(&self, attrs: &Attributes) -> (Decision, String) {
        let Some(node) = node_name(&attrs.user) else {
            return (Decision::NoOpinion, String::new());
        };
        if node.is_empty() {
            return (
                Decision::NoOpinion,
                format!("unknown node for user {:?}", attrs.user.name),
            );
        }
        if attrs.resource_request {
            let sub = attrs.subresource.as_str();
            match (attrs.api_group.as_str(), attrs.resource.as_str()) {
                ("", "secrets") => return self.read_referenced(node, Ref::Secret, attrs),
                ("", "configmaps") => return self.read_referenced(node, Ref::ConfigMap, attrs),
                ("", "persistentvolumeclaims") if sub == "status" => {
                    return self.write_status(node, attrs);
                }
                ("", "persistentvolumeclaims") => {
                    return self.get_referenced(node, Ref::Claim, attrs);
                }
                ("", "persistentvolumes") => return self.get_referenced(node, Ref::Volume, attrs),
                ("", "serviceaccounts") => return self.create_token(node, attrs),
                ("coordination.k8s.io", "leases") => return lease(node, attrs),
                ("", "nodes") => return own_node(node, attrs, &self.rules),
                _ => {}
            }
        }
        if self.rules.iter().any(|r| r.allows(attrs)) {
            (Decision::Allow, String::new())
        } else {
            (Decision::NoOpinion, String::new())
        }
    }

    fn read_referenced(&self, node: &str, kind: Ref, attrs: &Attributes) -> (Decision, String) {
        if !matches!(attrs.verb.as_str(), "get" | "list" | "watch") {
            return no_opinion("can only read resources of this type");
        }
        if !attrs.subresource.is_empty() {
            return no_opinion("cannot read subresource");
        }
        if attrs.namespace.is_empty() {
            return no_opinion("can only read namespaced object of this type");
        }
        self.related(node, kind, attrs)
    }

    fn get_referenced(&self, node: &str, kind: Ref, attrs: &Attributes) -> (Decision, String) {
        if attrs.verb != "get" {
            return no_opinion("can only get individual resources of this type");
        }
        if !attrs.subresource.is_empty() {
            return no_opinion("cannot get subresource");
        }
        self.related(node, kind, attrs)
    }

    fn write_status(&self, node: &str, attrs: &Attributes) -> (Decision, String) {
        if !matches!(attrs.verb.as_str(), "update" | "patch") {
            return no_opinion("can only get/update/patch this type");
        }
        self.related(node, Ref::Claim, attrs)
    }

    fn create_token(&self, node: &str, attrs: &Attributes) -> (Decision, String) {
        if attrs.verb != "create" || attrs.subresource != "token" {
            return no_opinion("can only create tokens for individual service accounts");
        }
        self.related(node, Ref::ServiceAccount, attrs)
    }

    /// Allowed when a pod bound to `node` refers to the named object.
    fn related(&self, node: &str, kind: Ref, attrs: &Attributes) -> (Decision, String) {
        if attrs.name.is_empty() {
            return no_opinion("No Object name found");
        }
        if self.refers(node, kind, &attrs.namespace, &attrs.name) {
            (Decision::Allow, String::new())
        } else {
            no_opinion(&format!(
                "no relationship found between node '{node}' and this object"
            ))
        }
    }

    fn refers(&self, node: &str, kind: Ref, namespace: &str, name: &str) -> bool {
        if let Ref::Volume = kind {
            // A volume is reachable through a claim bound to it.
            let claims = kinds::find("", "v1", "persistentvolumeclaims").expect("served");
            let Some(cache) = self.registry.store.cache(claims) else {
                return false;
            };
            let Some((_, items)) = cache.snapshot(&keys::list_prefix(claims, None)) else {
                return false;
            };
            return items.iter().any(|claim| {
                let claim = claim.value();
                claim.pointer("/spec/volumeName").and_then(Value::as_str) == Some(name)
                    && self.refers(
                        node,
                        Ref::Claim,
                        claim
                            .pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                        claim
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    )
            });
        }
        let pods = kinds::find("", "v1", "pods").expect("served");
        let Some(cache) = self.registry.store.cache(pods) else {
            return false;
        };
        let Some((_, items)) = cache.snapshot(&keys::list_prefix(pods, Some(namespace))) else {
            return false;
        };
        items
            .iter()
            .filter(|pod| pod.field("spec.nodeName") == Some(node))
            .any(|pod| references(&pod.value(), kind).iter().any(|n| n == name))
    }
}

fn no_opinion(reason: &str) -> (Decision, String) {
    (Decision::NoOpinion, reason.to_owned())
}

/// A node's own Lease in `kube-node-lease`.
fn lease(node: &str, attrs: &Attributes) -> (Decision, String) {
    if !matches!(
        attrs.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return no_opinion("can only get, create, update, patch, or delete a node lease");
    }
    if attrs.namespace != "kube-node-lease" {
        return no_opinion("can only access leases in the kube-node-lease namespace");
    }
    if attrs.name != node && attrs.verb != "create" {
        return no_opinion("can only access node lease with the same name as the requesting node");
    }
    (Decision::Allow, String::new())
}

/// Writes to Node objects: only the node's own.
fn own_node(node: &str, attrs: &Attributes, rules: &[Rule]) -> (Decision, String) {
    let writes = matches!(attrs.verb.as_str(), "update" | "patch" | "delete");
    if writes && attrs.name != node {
        return no_opinion("can only modify its own Node object");
    }
    if attrs.verb == "delete" && attrs.subresource.is_empty() {
        return (Decision::Allow, String::new());
    }
    if rules.iter().any(|r| r.allows(attrs)) {
        (Decision::Allow, String::new())
    } else {
        (Decision::NoOpinion, String::new())
    }
}

/// The kinds of object a pod refers to.
#[derive(Debug, Clone, Copy)]
enum Ref {
    Secret,
    ConfigMap,
    Claim,
    Volume,
    ServiceAccount,
}

/// The names of the objects of `kind` a pod refers to.
fn references(pod: &Value, kind: Ref) -> Vec<String> {
    let mut out = Vec::new();
    let spec = &pod["spec"];
    let push = |out: &mut Vec<String>, v: &Value| {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            out.push(s.to_owned());
        }
    };
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten());
    let volumes: Vec<&Value> = spec["volumes"].as_array().into_iter().flatten().collect();
    let projected = volumes.iter().flat_map(|v| {
        v.pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    });
    match kind {
        Ref::Secret => {
            for s in spec["imagePullSecrets"].as_array().into_iter().flatten() {
                push(&mut out, &s["name"]);
            }
            for v in &volumes {
                push(&mut out, &v["secret"]["secretName"]);
                for driver in [
                    "csi",
                    "flexVolume",
                    "cephfs",
                    "rbd",
                    "iscsi",
                    "scaleIO",
                    "storageos",
                    "azureFile",
                ] {
                    push(&mut out, &v[driver]["nodePublishSecretRef"]["name"]);
                    push(&mut out, &v[driver]["secretRef"]["name"]);
                }
                push(&mut out, &v["azureFile"]["secretName"]);
            }
            for p in projected {
                push(&mut out, &p["secret"]["name"]);
            }
            for c in containers {
                for e in c["env"].as_array().into_iter().flatten() {
                    push(&mut out, &e["valueFrom"]["secretKeyRef"]["name"]);
                }
                for e in c["envFrom"].as_array().into_iter().flatten() {
                    push(&mut out, &e["secretRef"]["name"]);
                }
            }
        }
        Ref::ConfigMap => {
            for v in &volumes {
                push(&mut out, &v["configMap"]["name"]);
            }
            for p in projected {
                push(&mut out, &p["configMap"]["name"]);
            }
            for c in containers {
                for e in c["env"].as_array().into_iter().flatten() {
                    push(&mut out, &e["valueFrom"]["configMapKeyRef"]["name"]);
                }
                for e in c["envFrom"].as_array().into_iter().flatten() {
                    push(&mut out, &e["configMapRef"]["name"]);
                }
            }
        }
        Ref::Claim => {
            let pod_name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            for v in &volumes {
                push(&mut out, &v["persistentVolumeClaim"]["claimName"]);
                if v.get("ephemeral").is_some()
                    && let Some(volume) = v["name"].as_str()
                {
                    out.push(format!("{pod_name}-{volume}"));
                }
            }
        }
        Ref::ServiceAccount => push(&mut out, &spec["serviceAccountName"]),
        Ref::Volume => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_refers_to_its_secrets_configmaps_claims_and_account() {
        let pod = json!({
            "metadata": {"name": "web"},
            "spec": {
                "serviceAccountName": "builder",
                "imagePullSecrets": [{"name": "pull"}],
                "volumes": [
                    {"name": "a", "secret": {"secretName": "vol"}},
                    {"name": "b", "configMap": {"name": "cfg"}},
                    {"name": "c", "projected": {"sources": [{"secret": {"name": "proj"}}, {"configMap": {"name": "kube-root-ca.crt"}}]}},
                    {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "e", "ephemeral": {"volumeClaimTemplate": {}}},
                ],
                "initContainers": [{"envFrom": [{"secretRef": {"name": "init-env"}}]}],
                "containers": [{"env": [
                    {"name": "X", "valueFrom": {"secretKeyRef": {"name": "env", "key": "k"}}},
                    {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                ]}],
            },
        });
        let mut secrets = references(&pod, Ref::Secret);
        secrets.sort();
        assert_eq!(secrets, ["env", "init-env", "proj", "pull", "vol"]);
        let mut maps = references(&pod, Ref::ConfigMap);
        maps.sort();
        assert_eq!(maps, ["cfg", "env-cm", "kube-root-ca.crt"]);
        assert_eq!(references(&pod, Ref::Claim), ["data", "web-e"]);
        assert_eq!(references(&pod, Ref::ServiceAccount), ["builder"]);
    }

    fn node_user(name: &str) -> crate::apiserver::auth::User {
        crate::apiserver::auth::User {
            name: format!("system:node:{name}"),
            groups: vec![NODES_GROUP.into(), "system:authenticated".into()],
            ..Default::default()
        }
    }

    #[test]
    fn nodes_write_only_their_own_node_and_lease() {
        let ask = |verb: &str, group: &str, resource: &str, ns: &str, name: &str| Attributes {
            user: node_user("n1"),
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            namespace: ns.into(),
            name: name.into(),
            resource_request: true,
            ..Attributes::default()
        };
        let rules = node_rules();
        assert_eq!(
            own_node("n1", &ask("patch", "", "nodes", "", "n1"), &rules).0,
            Decision::Allow
        );
        assert_eq!(
            own_node("n1", &ask("patch", "", "nodes", "", "n2"), &rules).0,
            Decision::NoOpinion
        );
        assert_eq!(
            own_node("n1", &ask("delete", "", "nodes", "", "n2"), &rules).0,
            Decision::NoOpinion
        );
        assert_eq!(
            own_node("n1", &ask("list", "", "nodes", "", ""), &rules).0,
            Decision::Allow
        );
        let l = |verb, name| {
            lease(
                "n1",
                &ask(
                    verb,
                    "coordination.k8s.io",
                    "leases",
                    "kube-node-lease",
                    name,
                ),
            )
            .0
        };
        assert_eq!(l("update", "n1"), Decision::Allow);
        assert_eq!(l("update", "n2"), Decision::NoOpinion);
        assert_eq!(l("list", ""), Decision::NoOpinion);
        assert_eq!(node_name(&node_user("n1")), Some("n1"));
        let mut not_in_group = node_user("n1");
        not_in_group.groups.clear();
        assert_eq!(node_name(&not_in_group), None);
    }
}
