//! Authorization: who may do what. kube-apiserver's chain: members of
//! `system:masters` may do anything, then each mode of
//! `--authorization-mode` in order (`Node`, `RBAC`, or `AlwaysAllow` /
//! `AlwaysDeny` as explicit choices) until one allows or denies; when none
//! does the request is refused with upstream's 403.

pub mod node;
pub mod rbac;
pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::User;
use crate::api::status::ApiError;
use crate::apiserver::router::{ResourceRequest, Verb};
use crate::registry::Registry;
use rules::Rule;

/// The group whose members may do anything.
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// What a request asks to do, as kube-apiserver's `authorizer.Attributes`.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub user: User,
    pub verb: String,
    pub resource_request: bool,
    pub namespace: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The URL path of a non-resource request.
    pub path: String,
}

impl Attributes {
    /// The attributes of a resource request.
    pub fn of_resource(user: User, rr: &ResourceRequest, query: &HashMap<String, String>) -> Self {
        let subresource = rr.subresource.clone().unwrap_or_default();
        let verb = match rr.verb {
            // Streams are authorized as their POST is, whatever method
            // opened them (a websocket's GET included).
            _ if matches!(subresource.as_str(), "exec" | "attach" | "portforward") => "create",
            v => v.as_str(),
        };
        let mut name = rr.name().to_owned();
        if name.is_empty() && matches!(rr.verb, Verb::List | Verb::Watch) {
            // A list or watch of one object by `metadata.name`.
            if let Some(selector) = query.get("fieldSelector") {
                for term in selector.split(',') {
                    if let Some(n) = term
                        .strip_prefix("metadata.name==")
                        .or_else(|| term.strip_prefix("metadata.name="))
                    {
                        name = n.to_owned();
                    }
                }
            }
        }
        let namespace = match rr.namespace.as_deref() {
            Some(ns) => ns.to_owned(),
            // A namespace is in itself.
            None if rr.resource.plural == "namespaces" => rr.name().to_owned(),
            None => String::new(),
        };
        Attributes {
            user,
            verb: verb.to_owned(),
            resource_request: true,
            namespace,
            api_group: rr.resource.group.to_owned(),
            resource: rr.resource.plural.to_owned(),
            subresource,
            name,
            path: String::new(),
        }
    }

    /// The attributes of a non-resource request: its path and its method
    /// in lower case as the verb.
    pub fn of_path(user: User, method: &http::Method, path: &str) -> Self {
        Attributes {
            user,
            verb: method.as_str().to_ascii_lowercase(),
            path: path.to_owned(),
            ..Attributes::default()
        }
    }
}

/// An authorizer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    NoOpinion,
}

/// One authorization mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    AlwaysAllow,
    AlwaysDeny,
    Node,
    Rbac,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "AlwaysAllow" => Ok(Mode::AlwaysAllow),
            "AlwaysDeny" => Ok(Mode::AlwaysDeny),
            "Node" => Ok(Mode::Node),
            "RBAC" => Ok(Mode::Rbac),
            other => Err(format!(
                "authorization-mode {other:?} is not a valid mode (AlwaysAllow, AlwaysDeny, Node, RBAC)"
            )),
        }
    }
}

/// The rules a user has in a namespace (a SelfSubjectRulesReview's answer).
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub incomplete: bool,
}

/// The authorization chain.
pub struct Authorizer {
    modes: Vec<Mode>,
    rbac: rbac::Rbac,
    node: node::NodeAuthorizer,
}

impl Authorizer {
    pub fn new(modes: Vec<Mode>, registry: Arc<Registry>) -> Self {
        Self {
            modes,
            rbac: rbac::Rbac::new(registry.clone()),
            node: node::NodeAuthorizer::new(registry),
        }
    }

    /// The chain's decision on `attrs`, with the reasons the authorizers
    /// gave (joined as kube-apiserver's union authorizer joins them).
    pub fn authorize(&self, attrs: &Attributes) -> (Decision, String) {
        if attrs.user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
            return (Decision::Allow, String::new());
        }
        let mut reasons = Vec::new();
        for mode in &self.modes {
            let (decision, reason) = match mode {
                Mode::AlwaysAllow => (Decision::Allow, String::new()),
                Mode::AlwaysDeny => (Decision::Deny, "Everything is forbidden.".to_owned()),
                Mode::Node => self.node.authorize(attrs),
                Mode::Rbac if self.rbac.policy().allows(attrs) => (Decision::Allow, String::new()),
                Mode::Rbac => (Decision::NoOpinion, String::new()),
            };
            if !reason.is_empty() {
                reasons.push(reason);
            }
            if decision != Decision::NoOpinion {
                return (decision, reasons.join(", "));
            }
        }
        (Decision::NoOpinion, reasons.join(", "))
    }

    /// Ok when the chain allows `attrs`, else upstream's 403.
    pub fn check(&self, attrs: &Attributes) -> Result<(), ApiError> {
        match self.authorize(attrs) {
            (Decision::Allow, _) => Ok(()),
            (_, reason) => Err(forbidden(attrs, &reason)),
        }
    }

    /// The rules RBAC grants `user` in `namespace` (cluster-wide ones too).
    pub fn rbac_rules_for(&self, user: &User, namespace: &str) -> Vec<Rule> {
        self.rbac
            .policy()
            .rules_for(user, namespace)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The rules of the Role (in `namespace`) or ClusterRole `name`, when
    /// it exists.
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<Vec<Rule>> {
        self.rbac.policy().role_rules(kind, namespace, name)
    }

    /// The rules `user` has in `namespace`, as the modes can list them.
    pub fn rules_for(&self, user: &User, namespace: &str) -> RuleSet {
        let everything = || RuleSet {
            rules: vec![
                Rule {
                    verbs: vec!["*".into()],
                    api_groups: vec!["*".into()],
                    resources: vec!["*".into()],
                    ..Rule::default()
                },
                Rule {
                    verbs: vec!["*".into()],
                    non_resource_urls: vec!["*".into()],
                    ..Rule::default()
                },
            ],
            incomplete: false,
        };
        if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
            return everything();
        }
        let mut set = RuleSet::default();
        for mode in &self.modes {
            match mode {
                Mode::AlwaysAllow => return everything(),
                Mode::AlwaysDeny => {}
                Mode::Node => {
                    if node::node_name(user).is_some() {
                        // The graph's relations cannot be listed as rules.
                        set.rules.extend(self.node.rules().iter().cloned());
                        set.incomplete = true;
                    }
                }
                Mode::Rbac => set.rules.extend(
                    self.rbac
                        .policy()
                        .rules_for(user, namespace)
                        .into_iter()
                        .cloned(),
                ),
            }
        }
        set
    }
}

/// The resource as a Forbidden error names it: `pods`, `deployments.apps`.
fn group_resource(attrs: &Attributes) -> String {
    if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    }
}

/// kube-apiserver's refusal of `attrs`: 403 with `forbiddenMessage` and
/// the authorizers' reasons.
pub fn forbidden(attrs: &Attributes, reason: &str) -> ApiError {
    let user = &attrs.user.name;
    let mut message = if !attrs.resource_request {
        format!("User {user:?} cannot {} path {:?}", attrs.verb, attrs.path)
    } else {
        let mut resource = attrs.resource.clone();
        if !attrs.subresource.is_empty() {
            resource = format!("{resource}/{}", attrs.subresource);
        }
        let scope = if attrs.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {:?}", attrs.namespace)
        };
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
            attrs.verb, attrs.api_group
        )
    };
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    if !attrs.resource_request {
        return ApiError::new(403, "Forbidden", format!("forbidden: {message}"))
            .with_details(json!({}));
    }
    let qualified = group_resource(attrs);
    let full = if attrs.name.is_empty() {
        format!("{qualified} is forbidden: {message}")
    } else {
        format!("{qualified} {:?} is forbidden: {message}", attrs.name)
    };
    let mut details = serde_json::Map::new();
    for (key, value) in [
        ("name", &attrs.name),
        ("group", &attrs.api_group),
        ("kind", &attrs.resource),
    ] {
        if !value.is_empty() {
            details.insert(key.into(), Value::String(value.clone()));
        }
    }
    ApiError::new(403, "Forbidden", full).with_details(Value::Object(details))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> User {
        User {
            name: "jane".into(),
            groups: vec!["system:authenticated".into()],
            ..User::default()
        }
    }

    #[test]
    fn refusals_read_as_upstream_s() {
        let attrs = Attributes {
            user: jane(),
            verb: "list".into(),
            resource_request: true,
            namespace: "default".into(),
            resource: "pods".into(),
            ..Attributes::default()
        };
        assert_eq!(
            forbidden(&attrs, "").message,
            r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let attrs = Attributes {
            verb: "create".into(),
            api_group: "apps".into(),
            resource: "deployments".into(),
            subresource: "scale".into(),
            name: "web".into(),
            namespace: String::new(),
            ..attrs
        };
        assert_eq!(
            forbidden(&attrs, "no relationship").message,
            r#"deployments.apps "web" is forbidden: User "jane" cannot create resource "deployments/scale" in API group "apps" at the cluster scope: no relationship"#
        );
        let path = Attributes::of_path(jane(), &http::Method::GET, "/metrics");
        let err = forbidden(&path, "");
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            r#"forbidden: User "jane" cannot get path "/metrics""#
        );
    }

    #[test]
    fn modes_parse_by_upstream_names() {
        assert_eq!("RBAC".parse::<Mode>(), Ok(Mode::Rbac));
        assert_eq!("Node".parse::<Mode>(), Ok(Mode::Node));
        assert!("rbac".parse::<Mode>().is_err());
    }
}
