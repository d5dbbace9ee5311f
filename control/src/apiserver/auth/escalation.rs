//! RBAC's escalation prevention, as kube-apiserver's role and binding
//! storage enforces it: a user may write a Role or ClusterRole only with
//! rules it holds itself (or with the `escalate` verb on it), and a binding
//! only to a role whose rules it holds (or with the `bind` verb on that
//! role). Members of `system:masters` may write anything.

use serde_json::Value;

use super::User;
use super::authorizer::rules::{RoleRef, Rule};
use super::authorizer::{Attributes, Authorizer, Decision, PRIVILEGED_GROUP};
use crate::api::status::ApiError;
use crate::kinds;

const RBAC: &str = "rbac.authorization.k8s.io";

/// Checks `object`, about to be written as a `plural` in `namespace`, for
/// `user`. Other resources pass.
pub fn check(
    authorizer: &Authorizer,
    user: &User,
    plural: &str,
    namespace: &str,
    object: &Value,
) -> Result<(), ApiError> {
    if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Ok(());
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let allowed = |verb: &str, resource: &str, name: &str| {
        let attrs = Attributes {
            user: user.clone(),
            verb: verb.into(),
            resource_request: true,
            namespace: namespace.into(),
            api_group: RBAC.into(),
            resource: resource.into(),
            name: name.into(),
            ..Attributes::default()
        };
        authorizer.authorize(&attrs).0 == Decision::Allow
    };
    let forbidden = |message: String| {
        let r = kinds::find(RBAC, "v1", plural).expect("rbac served");
        ApiError::forbidden(r, name, &message)
    };
    let rules = match plural {
        "roles" | "clusterroles" => {
            if allowed("escalate", plural, name) {
                return Ok(());
            }
            if object.get("aggregationRule").is_some_and(|r| !r.is_null()) {
                return Err(forbidden(
                    "must have cluster-admin privileges to use the aggregationRule".into(),
                ));
            }
            Rule::of(object)
        }
        "rolebindings" | "clusterrolebindings" => {
            let Some(role) = RoleRef::of(object) else {
                return Ok(());
            };
            let role_resource = if role.kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if allowed("bind", role_resource, &role.name) {
                return Ok(());
            }
            let role_namespace = if role.kind == "Role" { namespace } else { "" };
            match authorizer.role_rules(&role.kind, role_namespace, &role.name) {
                Some(rules) => rules,
                None => {
                    let r = kinds::find(RBAC, "v1", role_resource).expect("rbac served");
                    return Err(ApiError::not_found(r, &role.name));
                }
            }
        }
        _ => return Ok(()),
    };
    let held = authorizer.rbac_rules_for(user, namespace);
    let missing = missing_rules(&held, &rules);
    if missing.is_empty() {
        return Ok(());
    }
    Err(forbidden(format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted(&user.groups),
        missing.join("\n")
    )))
}

/// The rules of `wanted` that `held` does not cover, broken down to one
/// verb on one resource (or URL) each, merged back by resource, described
/// as `rbacv1helpers.CompactString` does and sorted.
pub fn missing_rules(held: &[Rule], wanted: &[Rule]) -> Vec<String> {
    let mut missing: Vec<Rule> = Vec::new();
    for rule in wanted {
        for simple in breakdown(rule) {
            if held.iter().any(|h| h.covers(&simple)) {
                continue;
            }
            // Compacted: one entry per resource, its verbs together.
            let same = missing.iter_mut().find(|m| {
                m.non_resource_urls.is_empty()
                    && simple.non_resource_urls.is_empty()
                    && m.api_groups == simple.api_groups
                    && m.resources == simple.resources
                    && m.resource_names == simple.resource_names
            });
            match same {
                Some(m) => m.verbs.extend(simple.verbs),
                None => missing.push(simple),
            }
        }
    }
    let mut described: Vec<String> = missing.iter().map(compact_string).collect();
    described.sort();
    described.dedup();
    described
}

fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in &rule.non_resource_urls {
            out.push(Rule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..Rule::default()
            });
        }
    }
    for group in &rule.api_groups {
        for resource in &rule.resources {
            let names: Vec<Vec<String>> = if rule.resource_names.is_empty() {
                vec![Vec::new()]
            } else {
                rule.resource_names
                    .iter()
                    .map(|n| vec![n.clone()])
                    .collect()
            };
            for names in names {
                for verb in &rule.verbs {
                    out.push(Rule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        resource_names: names.clone(),
                        non_resource_urls: Vec::new(),
                    });
                }
            }
        }
    }
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

fn compact_string(rule: &Rule) -> String {
    let mut parts = Vec::new();
    for (label, items) in [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("ResourceNames", &rule.resource_names),
        ("Verbs", &rule.verbs),
    ] {
        if !items.is_empty() {
            parts.push(format!("{label}:{}", go_quoted(items)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> Rule {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rules_not_held_are_described_as_upstream_does() {
        let held = [rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}),
        )];
        let wanted = [
            rule(
                json!({"verbs": ["get", "delete", "create"], "apiGroups": [""], "resources": ["pods", "secrets"]}),
            ),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]})),
        ];
        assert_eq!(
            missing_rules(&held, &wanted),
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete" "create"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete" "create"]}"#,
                r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#,
            ]
        );
        assert!(missing_rules(&held, &[rule(json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}))]).is_empty());
    }
}
