//! The RBAC authorizer: Roles, ClusterRoles and their bindings, read from
//! the watch caches into a compiled [`Policy`] that is rebuilt when any of
//! the four caches moves on. Like kube-apiserver's RBAC authorizer it only
//! ever allows (or has no opinion); a refusal comes from no authorizer
//! allowing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use super::Attributes;
use super::rules::{RoleRef, Rule, Subject};
use crate::apiserver::auth::User;
use crate::kinds;
use crate::registry::Registry;
use crate::storage::keys;

/// A binding compiled: who it names and the rules of the role it refers to.
#[derive(Debug)]
struct Binding {
    namespace: String,
    subjects: Vec<Subject>,
    role: RoleRef,
}

/// The RBAC objects at one set of cache revisions.
#[derive(Debug, Default)]
pub struct Policy {
    revisions: [i64; 4],
    cluster_roles: HashMap<String, Vec<Rule>>,
    roles: HashMap<(String, String), Vec<Rule>>,
    cluster_bindings: Vec<Binding>,
    bindings: HashMap<String, Vec<Binding>>,
}

impl Policy {
    fn rules_of(&self, binding: &Binding) -> &[Rule] {
        let rules = match binding.role.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&binding.role.name),
            "Role" => self
                .roles
                .get(&(binding.namespace.clone(), binding.role.name.clone())),
            _ => None,
        };
        rules.map(Vec::as_slice).unwrap_or_default()
    }

    /// The rules of a role by kind, namespace (for a Role) and name.
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<Vec<Rule>> {
        match kind {
            "ClusterRole" => self.cluster_roles.get(name).cloned(),
            "Role" => self
                .roles
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned(),
            _ => None,
        }
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide
    /// rules too; only those when `namespace` is empty), as
    /// `VisitRulesFor` yields them.
    pub fn rules_for<'a>(&'a self, user: &'a User, namespace: &str) -> Vec<&'a Rule> {
        let mut out = Vec::new();
        let namespaced = if namespace.is_empty() {
            None
        } else {
            self.bindings.get(namespace)
        };
        let bindings = self
            .cluster_bindings
            .iter()
            .chain(namespaced.into_iter().flatten());
        for binding in bindings {
            if binding
                .subjects
                .iter()
                .any(|s| s.applies_to(user, &binding.namespace))
            {
                out.extend(self.rules_of(binding));
            }
        }
        out
    }

    /// Whether some rule bound to the request's user allows it.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        let bound = |binding: &&Binding| {
            binding
                .subjects
                .iter()
                .any(|s| s.applies_to(&attrs.user, &binding.namespace))
        };
        let allowed = |binding: &Binding| self.rules_of(binding).iter().any(|r| r.allows(attrs));
        if self.cluster_bindings.iter().filter(bound).any(allowed) {
            return true;
        }
        !attrs.namespace.is_empty()
            && self
                .bindings
                .get(&attrs.namespace)
                .is_some_and(|b| b.iter().filter(bound).any(allowed))
    }
}

/// The resources the policy is read from, in `Policy::revisions` order.
fn sources() -> [&'static crate::api::resource::Resource; 4] {
    let find =
        |plural| kinds::find("rbac.authorization.k8s.io", "v1", plural).expect("rbac served");
    [
        find("clusterroles"),
        find("roles"),
        find("clusterrolebindings"),
        find("rolebindings"),
    ]
}

/// Reads the policy from the watch caches, keeping the last compiled one
/// while they stand still.
pub struct Rbac {
    registry: Arc<Registry>,
    current: Mutex<Arc<Policy>>,
}

impl Rbac {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            current: Mutex::new(Arc::new(Policy {
                revisions: [-1; 4],
                ..Policy::default()
            })),
        }
    }

    /// The policy as the caches hold it now (an empty one while they are
    /// not ready: nothing is allowed by RBAC until then).
    pub fn policy(&self) -> Arc<Policy> {
        let caches = sources().map(|r| self.registry.store.cache(r));
        let revisions = caches.each_ref().map(|c| match c {
            Some(c) if c.is_ready() => c.revision(),
            _ => -1,
        });
        {
            let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
            if current.revisions == revisions {
                return current.clone();
            }
        }
        let objects = |i: usize| -> Vec<Value> {
            let r = sources()[i];
            caches[i]
                .and_then(|c| c.snapshot(&keys::list_prefix(r, None)))
                .map(|(_, items)| items.iter().map(|o| o.value()).collect())
                .unwrap_or_default()
        };
        let mut policy = Policy {
            revisions,
            ..Policy::default()
        };
        for role in objects(0) {
            let name = meta(&role, "name");
            policy.cluster_roles.insert(name, Rule::of(&role));
        }
        for role in objects(1) {
            let key = (meta(&role, "namespace"), meta(&role, "name"));
            policy.roles.insert(key, Rule::of(&role));
        }
        let binding = |object: &Value| {
            Some(Binding {
                namespace: meta(object, "namespace"),
                subjects: Subject::of(object),
                role: RoleRef::of(object)?,
            })
        };
        policy.cluster_bindings = objects(2).iter().filter_map(binding).collect();
        for b in objects(3).iter().filter_map(binding) {
            policy
                .bindings
                .entry(b.namespace.clone())
                .or_default()
                .push(b);
        }
        let policy = Arc::new(policy);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = policy.clone();
        policy
    }
}

fn meta(object: &Value, field: &str) -> String {
    object
        .pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..User::default()
        }
    }

    fn policy() -> Policy {
        let edit = json!({"rules": [{"verbs": ["get", "create"], "apiGroups": [""], "resources": ["pods"]}]});
        let mut p = Policy::default();
        p.cluster_roles.insert("edit".into(), Rule::of(&edit));
        p.roles.insert(
            ("team".into(), "reader".into()),
            Rule::of(&json!({"rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"]}]})),
        );
        let subject = |kind: &str, name: &str| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: String::new(),
        };
        p.bindings.insert(
            "team".into(),
            vec![
                Binding {
                    namespace: "team".into(),
                    subjects: vec![subject("User", "jane")],
                    role: RoleRef {
                        kind: "ClusterRole".into(),
                        name: "edit".into(),
                    },
                },
                Binding {
                    namespace: "team".into(),
                    subjects: vec![subject("Group", "readers")],
                    role: RoleRef {
                        kind: "Role".into(),
                        name: "reader".into(),
                    },
                },
            ],
        );
        p
    }

    fn ask(user: User, verb: &str, namespace: &str, resource: &str) -> Attributes {
        Attributes {
            user,
            verb: verb.into(),
            namespace: namespace.into(),
            resource: resource.into(),
            resource_request: true,
            ..Attributes::default()
        }
    }

    #[test]
    fn a_namespaced_binding_grants_in_its_namespace_only() {
        let p = policy();
        let jane = || user("jane", &["system:authenticated"]);
        assert!(p.allows(&ask(jane(), "create", "team", "pods")));
        assert!(!p.allows(&ask(jane(), "create", "other", "pods")));
        assert!(!p.allows(&ask(jane(), "create", "", "pods")));
        assert!(!p.allows(&ask(jane(), "delete", "team", "pods")));
        assert!(p.allows(&ask(user("bob", &["readers"]), "list", "team", "secrets")));
        assert!(!p.allows(&ask(user("bob", &[]), "list", "team", "secrets")));
        assert_eq!(p.rules_for(&jane(), "team").len(), 1);
        assert!(p.rules_for(&jane(), "").is_empty());
    }

    #[test]
    fn a_binding_to_a_missing_role_grants_nothing() {
        let mut p = policy();
        p.cluster_roles.clear();
        assert!(!p.allows(&ask(user("jane", &[]), "get", "team", "pods")));
    }
}
