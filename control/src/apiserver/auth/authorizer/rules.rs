//! RBAC policy rules and subjects as the authorizer evaluates them: the
//! matching functions of rbac/v1 (`VerbMatches`, `APIGroupMatches`,
//! `ResourceMatches`, `ResourceNameMatches`, `NonResourceURLMatches`) and
//! which users a binding's subjects name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Attributes;
use crate::apiserver::auth::User;

/// One `rules[]` entry of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

impl Rule {
    /// The rules of a role object (`rules`, entries that do not parse are
    /// skipped as they can grant nothing).
    pub fn of(role: &Value) -> Vec<Rule> {
        role.get("rules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter_map(|r| serde_json::from_value(r.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether this rule grants the request `attrs` describes.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !self.verb_matches(&attrs.verb) {
            return false;
        }
        if !attrs.resource_request {
            return self.non_resource_url_matches(&attrs.path);
        }
        self.api_group_matches(&attrs.api_group)
            && self.resource_matches(&attrs.resource, &attrs.subresource)
            && self.resource_name_matches(&attrs.name)
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
    }

    fn api_group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == "*" || g == group)
    }

    fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            if r == "*" {
                return true;
            }
            if subresource.is_empty() {
                return r == resource;
            }
            // `pods/log`, or `*/log` for that subresource of any resource.
            r.split_once('/')
                .is_some_and(|(res, sub)| sub == subresource && (res == resource || res == "*"))
        })
    }

    fn resource_name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    fn non_resource_url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == "*"
                || u == path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
    }

    /// Whether `self` grants at least everything `other` grants (the
    /// escalation check's covering test, for one rule by one rule).
    pub fn covers(&self, other: &Rule) -> bool {
        let has = |mine: &[String], theirs: &str| mine.iter().any(|m| m == "*" || m == theirs);
        if !other.verbs.iter().all(|v| has(&self.verbs, v)) {
            return false;
        }
        if !other.non_resource_urls.is_empty() {
            return other.non_resource_urls.iter().all(|u| {
                self.non_resource_urls.iter().any(|m| {
                    m == "*" || m == u || m.strip_suffix('*').is_some_and(|p| u.starts_with(p))
                })
            });
        }
        if !other.api_groups.iter().all(|g| has(&self.api_groups, g)) {
            return false;
        }
        let resource_covered = |theirs: &str| {
            self.resources.iter().any(|m| {
                m == "*"
                    || m == theirs
                    || (m.ends_with("/*") && theirs.starts_with(m.trim_end_matches('*')))
                    || m.strip_prefix("*/")
                        .is_some_and(|sub| theirs.split_once('/').is_some_and(|(_, s)| s == sub))
            })
        };
        if !other.resources.iter().all(|r| resource_covered(r)) {
            return false;
        }
        self.resource_names.is_empty()
            || (!other.resource_names.is_empty()
                && other
                    .resource_names
                    .iter()
                    .all(|n| self.resource_names.contains(n)))
    }
}

/// A binding's `subjects[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subject {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

impl Subject {
    /// The subjects of a binding object.
    pub fn of(binding: &Value) -> Vec<Subject> {
        binding
            .get("subjects")
            .and_then(Value::as_array)
            .map(|s| {
                s.iter()
                    .filter_map(|s| serde_json::from_value(s.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether this subject names `user`; a ServiceAccount subject without
    /// a namespace means one in the binding's own namespace.
    pub fn applies_to(&self, user: &User, binding_namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => self.name == user.name,
            "Group" => user.groups.contains(&self.name),
            "ServiceAccount" => {
                let namespace = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                user.name
                    .strip_prefix("system:serviceaccount:")
                    .and_then(|rest| rest.split_once(':'))
                    .is_some_and(|(ns, name)| ns == namespace && name == self.name)
            }
            _ => false,
        }
    }
}

/// A binding's `roleRef`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoleRef {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

impl RoleRef {
    pub fn of(binding: &Value) -> Option<RoleRef> {
        serde_json::from_value(binding.get("roleRef")?.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> Rule {
        serde_json::from_value(v).unwrap()
    }

    fn resource(verb: &str, group: &str, res: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            api_group: group.into(),
            resource: res.into(),
            subresource: sub.into(),
            name: name.into(),
            resource_request: true,
            ..Attributes::default()
        }
    }

    #[test]
    fn resource_rules_match_as_rbac_does() {
        let r = rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}),
        );
        assert!(r.allows(&resource("get", "", "pods", "", "x")));
        assert!(r.allows(&resource("get", "", "pods", "log", "x")));
        assert!(!r.allows(&resource("get", "", "pods", "exec", "x")));
        assert!(!r.allows(&resource("delete", "", "pods", "", "x")));
        assert!(!r.allows(&resource("get", "apps", "pods", "", "x")));
        let star = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        assert!(star.allows(&resource(
            "escalate",
            "rbac.authorization.k8s.io",
            "roles",
            "",
            ""
        )));
        let any_status =
            rule(json!({"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/status"]}));
        assert!(any_status.allows(&resource("update", "apps", "deployments", "status", "d")));
        assert!(!any_status.allows(&resource("update", "apps", "deployments", "", "d")));
        let named = rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}),
        );
        assert!(named.allows(&resource("get", "", "configmaps", "", "a")));
        assert!(!named.allows(&resource("get", "", "configmaps", "", "b")));
        assert!(!named.allows(&resource("get", "", "configmaps", "", "")));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let r = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]}));
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Attributes::default()
        };
        assert!(r.allows(&path("/healthz")));
        assert!(r.allows(&path("/api/v1")));
        assert!(!r.allows(&path("/apis")));
        assert!(!r.allows(&path("/healthz/etcd")));
    }

    #[test]
    fn covering_rules() {
        let all = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        let pods = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}));
        let named = rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}),
        );
        assert!(all.covers(&pods));
        assert!(!pods.covers(&all));
        assert!(pods.covers(&named));
        assert!(!named.covers(&pods));
        let status = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/status"]}));
        assert!(status.covers(&rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/status"]})
        )));
    }

    #[test]
    fn subjects_name_users_groups_and_service_accounts() {
        let user = User {
            name: "system:serviceaccount:team:builder".into(),
            groups: vec!["system:serviceaccounts".into()],
            ..User::default()
        };
        let sa = |ns: &str| Subject {
            kind: "ServiceAccount".into(),
            name: "builder".into(),
            namespace: ns.into(),
        };
        assert!(sa("").applies_to(&user, "team"));
        assert!(!sa("").applies_to(&user, "other"));
        assert!(sa("team").applies_to(&user, "other"));
        let group = Subject {
            kind: "Group".into(),
            name: "system:serviceaccounts".into(),
            namespace: String::new(),
        };
        assert!(group.applies_to(&user, ""));
        let named = Subject {
            kind: "User".into(),
            name: "jane".into(),
            namespace: String::new(),
        };
        assert!(!named.applies_to(&user, ""));
    }
}
