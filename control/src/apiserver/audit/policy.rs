//! The audit policy (`--audit-policy-file`): an `audit.k8s.io/v1`
//! `Policy` whose rules are tried in order; the first that matches a
//! request sets its level, the stages left out and whether managed fields
//! are dropped. A request no rule matches is not audited (level `None`),
//! as kube-apiserver's policy checker decides.

use serde::{Deserialize, Serialize};

use crate::apiserver::auth::authorizer::Attributes;

/// How much of a request an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

/// The stage of a request an event is written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

/// One group's resources a rule names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupResources {
    #[serde(default)]
    pub group: String,
    /// `pods`, `pods/log`, `*/status`, `pods/*`, `*`.
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// One rule of the policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub level: Level,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

/// The policy file's object.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: bool,
}

/// What the policy says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestConfig {
    pub level: Level,
    /// The policy's and the matching rule's omitted stages.
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

/// Errors reading a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading audit policy {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("decoding audit policy: {0}")]
    Decode(String),
    #[error("invalid audit policy: {0}")]
    Invalid(String),
}

pub const API_VERSION: &str = "audit.k8s.io/v1";

impl Policy {
    /// Reads and checks the policy in `path`.
    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let policy = Policy::parse(&text)?;
        if policy.rules.is_empty() {
            return Err(PolicyError::Invalid(format!(
                "loaded illegal policy with 0 rules from file {}",
                path.display()
            )));
        }
        Ok(policy)
    }

    /// Decodes and checks a policy (YAML or JSON).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy =
            serde_yaml_ng::from_str(text).map_err(|e| PolicyError::Decode(e.to_string()))?;
        if policy.api_version != API_VERSION || policy.kind != "Policy" {
            return Err(PolicyError::Decode(format!(
                "no kind {:?} is registered for version {:?} (want kind \"Policy\" of {API_VERSION})",
                policy.kind, policy.api_version
            )));
        }
        policy.validate()?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), PolicyError> {
        for (i, rule) in self.rules.iter().enumerate() {
            let field = format!("rules[{i}]");
            if !rule.non_resource_urls.is_empty()
                && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
            {
                return Err(PolicyError::Invalid(format!(
                    "{field}.nonResourceURLs: rules cannot apply to both regular resources and non-resource URLs"
                )));
            }
            for (j, url) in rule.non_resource_urls.iter().enumerate() {
                if url.is_empty() {
                    return Err(PolicyError::Invalid(format!(
                        "{field}.nonResourceURLs[{j}]: Required value"
                    )));
                }
                if url != "*" && !url.starts_with('/') {
                    return Err(PolicyError::Invalid(format!(
                        "{field}.nonResourceURLs[{j}]: Invalid value: {url:?}: non-resource URL rules must begin with a '/' character"
                    )));
                }
                if url.trim_end_matches('*').contains('*') {
                    return Err(PolicyError::Invalid(format!(
                        "{field}.nonResourceURLs[{j}]: Invalid value: {url:?}: non-resource URL wildcards '*' must be the final character of the rule"
                    )));
                }
            }
            for (j, gr) in rule.resources.iter().enumerate() {
                if !gr.resource_names.is_empty() && gr.resources.is_empty() {
                    return Err(PolicyError::Invalid(format!(
                        "{field}.resources[{j}].resourceNames: Invalid value: resourceNames require resources"
                    )));
                }
                for res in &gr.resources {
                    if res.starts_with("*/") && !gr.resource_names.is_empty() {
                        return Err(PolicyError::Invalid(format!(
                            "{field}.resources[{j}].resources: Invalid value: {res:?}: using resource names with a wildcard resource is not allowed"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The first matching rule's decision on `attrs`, or level `None`.
    pub fn evaluate(&self, attrs: &Attributes) -> RequestConfig {
        for rule in &self.rules {
            if rule.matches(attrs) {
                let mut omit_stages = self.omit_stages.clone();
                for s in &rule.omit_stages {
                    if !omit_stages.contains(s) {
                        omit_stages.push(*s);
                    }
                }
                return RequestConfig {
                    level: rule.level,
                    omit_stages,
                    omit_managed_fields: rule
                        .omit_managed_fields
                        .unwrap_or(self.omit_managed_fields),
                };
            }
        }
        RequestConfig {
            level: Level::None,
            omit_stages: Vec::new(),
            omit_managed_fields: false,
        }
    }
}

impl Rule {
    fn matches(&self, attrs: &Attributes) -> bool {
        if !self.users.is_empty() && !self.users.contains(&attrs.user.name) {
            return false;
        }
        if !self.user_groups.is_empty()
            && !attrs
                .user
                .groups
                .iter()
                .any(|g| self.user_groups.contains(g))
        {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.contains(&attrs.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(attrs);
        }
        if !self.non_resource_urls.is_empty() {
            return !attrs.resource_request
                && self
                    .non_resource_urls
                    .iter()
                    .any(|spec| path_matches(&attrs.path, spec));
        }
        true
    }

    fn matches_resource(&self, attrs: &Attributes) -> bool {
        if !attrs.resource_request {
            return false;
        }
        // Cluster-scoped resources have the empty namespace.
        if !self.namespaces.is_empty() && !self.namespaces.contains(&attrs.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let sub = attrs.subresource.as_str();
        let combined = if sub.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}/{sub}", attrs.resource)
        };
        self.resources
            .iter()
            .filter(|gr| gr.group == attrs.api_group)
            .any(|gr| {
                if gr.resources.is_empty() {
                    return true;
                }
                if !gr.resource_names.is_empty() && !gr.resource_names.contains(&attrs.name) {
                    return false;
                }
                gr.resources.iter().any(|res| {
                    res == &combined
                        || res == "*"
                        || (!sub.is_empty() && res.strip_prefix("*/") == Some(sub))
                        || res.strip_suffix("/*") == Some(attrs.resource.as_str())
                })
            })
    }
}

/// `spec` is a path, `*`, or a prefix ending in `*`.
fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::auth::User;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..User::default()
        }
    }

    fn resource(verb: &str, group: &str, res: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            user: user("jane", &["dev", "system:authenticated"]),
            verb: verb.into(),
            resource_request: true,
            namespace: ns.into(),
            api_group: group.into(),
            resource: res.into(),
            subresource: sub.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    fn path(verb: &str, p: &str) -> Attributes {
        Attributes {
            user: user("jane", &["dev"]),
            verb: verb.into(),
            path: p.into(),
            ..Attributes::default()
        }
    }

    fn policy(rules: &str) -> Policy {
        Policy::parse(&format!(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n{rules}"
        ))
        .unwrap()
    }

    fn level(p: &Policy, a: &Attributes) -> Level {
        p.evaluate(a).level
    }

    #[test]
    fn an_unmatched_request_is_not_audited() {
        let p = policy("- level: Metadata\n  users: [bob]\n");
        assert_eq!(
            p.evaluate(&resource("get", "", "pods", "", "default", "a")),
            RequestConfig {
                level: Level::None,
                omit_stages: vec![],
                omit_managed_fields: false
            }
        );
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let p = policy(
            "- level: None\n  resources: [{group: \"\", resources: [secrets]}]\n\
             - level: RequestResponse\n  resources: [{group: \"\", resources: [secrets, configmaps]}]\n\
             - level: Metadata\n",
        );
        let secret = resource("get", "", "secrets", "", "default", "s");
        let cm = resource("get", "", "configmaps", "", "default", "c");
        let pod = resource("get", "", "pods", "", "default", "p");
        assert_eq!(level(&p, &secret), Level::None);
        assert_eq!(level(&p, &cm), Level::RequestResponse);
        assert_eq!(level(&p, &pod), Level::Metadata);
        assert_eq!(level(&p, &path("get", "/healthz")), Level::Metadata);
    }

    #[test]
    fn users_groups_and_verbs_narrow_a_rule() {
        let p = policy(
            "- level: Request\n  users: [jane]\n  verbs: [create]\n\
             - level: Metadata\n  userGroups: [dev]\n\
             - level: None\n",
        );
        assert_eq!(
            level(&p, &resource("create", "", "pods", "", "default", "")),
            Level::Request
        );
        assert_eq!(
            level(&p, &resource("get", "", "pods", "", "default", "")),
            Level::Metadata
        );
        let mut other = resource("create", "", "pods", "", "default", "");
        other.user = user("bob", &["ops"]);
        assert_eq!(level(&p, &other), Level::None);
    }

    #[test]
    fn groups_resources_subresources_and_names() {
        let p = policy(
            "- level: Request\n  resources: [{group: \"\", resources: [pods/log]}]\n\
             - level: RequestResponse\n  resources: [{group: \"\", resources: [\"*/status\"]}]\n\
             - level: Metadata\n  resources: [{group: apps, resources: [\"deployments/*\"]}]\n\
             - level: Request\n  resources: [{group: \"\", resources: [configmaps], resourceNames: [special]}]\n\
             - level: Metadata\n  resources: [{group: batch}]\n",
        );
        assert_eq!(
            level(&p, &resource("get", "", "pods", "log", "default", "p")),
            Level::Request
        );
        assert_eq!(
            level(&p, &resource("get", "", "pods", "", "default", "p")),
            Level::None
        );
        assert_eq!(
            level(
                &p,
                &resource("update", "", "pods", "status", "default", "p")
            ),
            Level::RequestResponse
        );
        // `*/status` of the core group is not apps' deployments/status,
        // which `deployments/*` of apps matches.
        assert_eq!(
            level(
                &p,
                &resource("update", "apps", "deployments", "status", "default", "d")
            ),
            Level::Metadata
        );
        assert_eq!(
            level(
                &p,
                &resource("get", "apps", "deployments", "scale", "d", "d")
            ),
            Level::Metadata
        );
        // `deployments/*` is the resource and every subresource.
        assert_eq!(
            level(&p, &resource("get", "apps", "deployments", "", "d", "d")),
            Level::Metadata
        );
        // The group must be the same: core pods are not apps pods.
        assert_eq!(
            level(&p, &resource("get", "apps", "replicasets", "", "d", "r")),
            Level::None
        );
        assert_eq!(
            level(&p, &resource("get", "", "configmaps", "", "d", "special")),
            Level::Request
        );
        assert_eq!(
            level(&p, &resource("get", "", "configmaps", "", "d", "plain")),
            Level::None
        );
        // A group with no resources is every resource of the group.
        assert_eq!(
            level(&p, &resource("list", "batch", "jobs", "", "d", "")),
            Level::Metadata
        );
    }

    #[test]
    fn namespaces_match_resources_only() {
        let p = policy("- level: Metadata\n  namespaces: [kube-system, \"\"]\n");
        assert_eq!(
            level(&p, &resource("get", "", "pods", "", "kube-system", "p")),
            Level::Metadata
        );
        assert_eq!(
            level(&p, &resource("get", "", "pods", "", "default", "p")),
            Level::None
        );
        // The empty namespace is the cluster-scoped resources.
        assert_eq!(
            level(&p, &resource("get", "", "nodes", "", "", "n")),
            Level::Metadata
        );
        assert_eq!(level(&p, &path("get", "/healthz")), Level::None);
    }

    #[test]
    fn non_resource_urls_with_a_wildcard_suffix() {
        let p = policy(
            "- level: None\n  nonResourceURLs: [/healthz*, /readyz]\n\
             - level: Metadata\n  nonResourceURLs: [\"*\"]\n",
        );
        assert_eq!(level(&p, &path("get", "/healthz")), Level::None);
        assert_eq!(level(&p, &path("get", "/healthz/etcd")), Level::None);
        assert_eq!(level(&p, &path("get", "/readyz")), Level::None);
        assert_eq!(level(&p, &path("get", "/readyz/ping")), Level::Metadata);
        assert_eq!(level(&p, &path("get", "/version")), Level::Metadata);
        // A non-resource rule never matches a resource request.
        assert_eq!(
            level(&p, &resource("get", "", "pods", "", "default", "")),
            Level::None
        );
    }

    #[test]
    fn omitted_stages_join_the_policy_and_the_rule() {
        let p = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n\
             omitManagedFields: true\nrules:\n\
             - level: Metadata\n  verbs: [watch]\n  omitStages: [ResponseStarted, RequestReceived]\n  omitManagedFields: false\n\
             - level: Request\n",
        )
        .unwrap();
        assert_eq!(
            p.evaluate(&resource("watch", "", "pods", "", "default", "")),
            RequestConfig {
                level: Level::Metadata,
                omit_stages: vec![Stage::RequestReceived, Stage::ResponseStarted],
                omit_managed_fields: false,
            }
        );
        assert_eq!(
            p.evaluate(&resource("get", "", "pods", "", "default", "")),
            RequestConfig {
                level: Level::Request,
                omit_stages: vec![Stage::RequestReceived],
                omit_managed_fields: true,
            }
        );
    }

    #[test]
    fn bad_policies_are_refused() {
        for bad in [
            "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Event\nrules: [{level: None}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Everything}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{verbs: [get]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: [/a], namespaces: [x]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: [\"/a*b\"]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: [healthz]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, resources: [{resourceNames: [a]}]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, omitStages: [Sometime]}]\n",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("policy.yaml");
        std::fs::write(&empty, "apiVersion: audit.k8s.io/v1\nkind: Policy\n").unwrap();
        assert!(
            Policy::load(&empty)
                .unwrap_err()
                .to_string()
                .contains("0 rules")
        );
    }
}
