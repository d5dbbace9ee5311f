//! rbac.authorization.k8s.io/v1: binding defaults (`SetDefaults_Subject`,
//! `SetDefaults_RoleBinding`) and pkg/apis/rbac/validation (roles,
//! cluster roles, bindings, their updates).

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde_json::json;

use super::field::{self, BadValue, Cause, Path, go_quote, go_string_slice};
use super::formats::NameRule;
use super::json::{Obj, child, default_str, each, str_of};
use super::metadata::{validate_object_meta, validate_object_meta_update};
use super::selector::validate_label_selector;

const GROUP: &str = "rbac.authorization.k8s.io";

/// `SetDefaults_RoleBinding`/`ClusterRoleBinding` and `SetDefaults_Subject`.
pub fn default_binding(obj: &mut Obj) {
    if let Some(r) = child(obj, "roleRef") {
        default_str(r, "apiGroup", GROUP);
    }
    for s in each(obj, "subjects") {
        if str_of(s, "apiGroup").is_empty() {
            match str_of(s, "kind") {
                "ServiceAccount" => {
                    s.insert("apiGroup".into(), json!(""));
                }
                "User" | "Group" => {
                    s.insert("apiGroup".into(), json!(GROUP));
                }
                _ => {}
            }
        }
    }
}

/// `ValidatePolicyRule`.
fn validate_rule(rule: &PolicyRule, namespaced: bool, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if rule.verbs.is_empty() {
        errs.push(field::required(
            &path.child("verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = rule.non_resource_urls.clone().unwrap_or_default();
    if !urls.is_empty() {
        let value = || BadValue::Go(go_string_slice(Some(&urls)));
        if namespaced {
            errs.push(field::invalid(
                &path.child("nonResourceURLs"),
                value(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        let has = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
        if has(&rule.api_groups) || has(&rule.resources) || has(&rule.resource_names) {
            errs.push(field::invalid(
                &path.child("nonResourceURLs"),
                value(),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errs;
    }
    if rule.api_groups.as_ref().is_none_or(|g| g.is_empty()) {
        errs.push(field::required(
            &path.child("apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if rule.resources.as_ref().is_none_or(|r| r.is_empty()) {
        errs.push(field::required(
            &path.child("resources"),
            "resource rules must supply at least one resource",
        ));
    }
    errs
}

fn validate_rules(rules: Option<&Vec<PolicyRule>>, namespaced: bool) -> Vec<Cause> {
    rules
        .into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, r)| validate_rule(r, namespaced, &Path::new("rules").index(i)))
        .collect()
}

/// `ValidateRole`.
pub fn validate_role(role: &Role) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &role.metadata,
        true,
        NameRule::PathSegment,
        &Path::new("metadata"),
    );
    errs.extend(validate_rules(role.rules.as_ref(), true));
    errs
}

/// `ValidateRoleUpdate`.
pub fn validate_role_update(new: &Role, old: &Role) -> Vec<Cause> {
    let mut errs = validate_role(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs
}

/// `ValidateClusterRole`.
pub fn validate_cluster_role(role: &ClusterRole) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &role.metadata,
        false,
        NameRule::PathSegment,
        &Path::new("metadata"),
    );
    errs.extend(validate_rules(role.rules.as_ref(), false));
    if let Some(agg) = &role.aggregation_rule {
        let selectors = agg.cluster_role_selectors.clone().unwrap_or_default();
        let p = Path::new("aggregationRule").child("clusterRoleSelectors");
        if selectors.is_empty() {
            errs.push(field::required(
                &p,
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, s) in selectors.iter().enumerate() {
            errs.extend(validate_label_selector(s, &p.index(i)));
        }
    }
    errs
}

/// `ValidateClusterRoleUpdate`.
pub fn validate_cluster_role_update(new: &ClusterRole, old: &ClusterRole) -> Vec<Cause> {
    let mut errs = validate_cluster_role(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs
}

/// `ValidateRoleBindingSubject`.
fn validate_subject(s: &Subject, namespaced: bool, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if s.name.is_empty() {
        errs.push(field::required(&path.child("name"), ""));
    }
    let api_group = s.api_group.as_deref().unwrap_or("");
    match s.kind.as_str() {
        "ServiceAccount" => {
            if !s.name.is_empty() {
                for m in NameRule::Dns1123Subdomain.check(&s.name, false) {
                    errs.push(field::invalid(&path.child("name"), &s.name, &m));
                }
            }
            if !api_group.is_empty() {
                errs.push(field::not_supported(
                    &path.child("apiGroup"),
                    api_group,
                    &[""],
                ));
            }
            if !namespaced && s.namespace.as_deref().unwrap_or("").is_empty() {
                errs.push(field::required(&path.child("namespace"), ""));
            }
        }
        "User" | "Group" => {
            if api_group != GROUP {
                errs.push(field::not_supported(
                    &path.child("apiGroup"),
                    api_group,
                    &[GROUP],
                ));
            }
        }
        other => errs.push(field::not_supported(
            &path.child("kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errs
}

fn validate_binding(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    role_ref: &RoleRef,
    subjects: Option<&Vec<Subject>>,
    namespaced: bool,
) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        meta,
        namespaced,
        NameRule::PathSegment,
        &Path::new("metadata"),
    );
    let rp = Path::new("roleRef");
    if role_ref.api_group != GROUP {
        errs.push(field::not_supported(
            &rp.child("apiGroup"),
            role_ref.api_group.as_str(),
            &[GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&role_ref.kind.as_str()) {
        errs.push(field::not_supported(
            &rp.child("kind"),
            role_ref.kind.as_str(),
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errs.push(field::required(&rp.child("name"), ""));
    } else {
        for m in NameRule::PathSegment.check(&role_ref.name, false) {
            errs.push(field::invalid(&rp.child("name"), &role_ref.name, &m));
        }
    }
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        errs.extend(validate_subject(
            s,
            namespaced,
            &Path::new("subjects").index(i),
        ));
    }
    errs
}

/// Go's `%#v` of an `rbac.RoleRef`.
fn go_role_ref(r: &RoleRef) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        go_quote(&r.api_group),
        go_quote(&r.kind),
        go_quote(&r.name)
    )
}

fn role_ref_unchanged(new: &RoleRef, old: &RoleRef) -> Vec<Cause> {
    if new == old {
        Vec::new()
    } else {
        vec![field::invalid(
            &Path::new("roleRef"),
            BadValue::Go(go_role_ref(new)),
            "cannot change roleRef",
        )]
    }
}

/// `ValidateRoleBinding`.
pub fn validate_role_binding(b: &RoleBinding) -> Vec<Cause> {
    validate_binding(&b.metadata, &b.role_ref, b.subjects.as_ref(), true)
}

/// `ValidateRoleBindingUpdate`: roleRef is immutable.
pub fn validate_role_binding_update(new: &RoleBinding, old: &RoleBinding) -> Vec<Cause> {
    let mut errs = validate_role_binding(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs.extend(role_ref_unchanged(&new.role_ref, &old.role_ref));
    errs
}

/// `ValidateClusterRoleBinding`.
pub fn validate_cluster_role_binding(b: &ClusterRoleBinding) -> Vec<Cause> {
    validate_binding(&b.metadata, &b.role_ref, b.subjects.as_ref(), false)
}

/// `ValidateClusterRoleBindingUpdate`.
pub fn validate_cluster_role_binding_update(
    new: &ClusterRoleBinding,
    old: &ClusterRoleBinding,
) -> Vec<Cause> {
    let mut errs = validate_cluster_role_binding(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs.extend(role_ref_unchanged(&new.role_ref, &old.role_ref));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn msgs(errs: &[Cause]) -> Vec<String> {
        errs.iter().map(Cause::error_string).collect()
    }

    // ValidateRole / ValidatePolicyRule.
    #[test]
    fn role_rules() {
        let r: Role = serde_json::from_value(
            json!({"metadata": {"name": "a/b", "namespace": "d"}, "rules": [
                {"verbs": [], "apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
                {"verbs": ["get"]}
            ]}),
        )
        .unwrap();
        assert_eq!(
            msgs(&validate_role(&r)),
            vec![
                "metadata.name: Invalid value: \"a/b\": may not contain '/'",
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[1].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
                "rules[2].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[2].resources: Required value: resource rules must supply at least one resource",
            ]
        );
    }

    // Binding defaults and ValidateRoleBinding / ValidateRoleBindingUpdate.
    #[test]
    fn bindings() {
        let mut v: Value = json!({"metadata": {"name": "b", "namespace": "d"}, "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "default", "namespace": "d"}, {"kind": "Robot", "name": "x"}]});
        default_binding(v.as_object_mut().unwrap());
        assert_eq!(v["roleRef"]["apiGroup"], GROUP);
        assert_eq!(v["subjects"][0]["apiGroup"], GROUP);
        assert_eq!(v["subjects"][1]["apiGroup"], "");
        let b: RoleBinding = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            msgs(&validate_role_binding(&b)),
            vec![
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\""
            ]
        );
        let mut old = v.clone();
        old["metadata"]["resourceVersion"] = json!("1");
        old["subjects"].as_array_mut().unwrap().pop();
        let mut new = old.clone();
        new["roleRef"]["name"] = json!("other");
        assert_eq!(
            msgs(&validate_role_binding_update(
                &serde_json::from_value(new).unwrap(),
                &serde_json::from_value(old).unwrap()
            )),
            vec![
                "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"other\"}: cannot change roleRef"
            ]
        );
        let crb: ClusterRoleBinding = serde_json::from_value(json!({"metadata": {"name": "c"}, "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}]})).unwrap();
        assert_eq!(
            msgs(&validate_cluster_role_binding(&crb)),
            vec![
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
            ]
        );
    }
}
