//! apps/v1 Deployment and ReplicaSet, autoscaling/v1 Scale: defaults
//! (pkg/apis/apps/v1/defaults.go) and validation
//! (pkg/apis/apps/validation/validation.go, the strategies' selector
//! immutability, pkg/apis/autoscaling/validation `ValidateScale`).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::field::{self, BadValue, Cause, Path, go_quote, go_string_map};
use super::formats::{NameRule, is_valid_percent};
use super::json::{Obj, child, default_str, default_value};
use super::metadata::{
    FIELD_IMMUTABLE, validate_nonnegative, validate_object_meta, validate_object_meta_update,
};
use super::pod::{template_meta, validate_pod_template};
use super::pod_defaults::default_pod_spec;
use super::selector::{from_label_selector, go_label_selector, validate_label_selector};

fn default_template(spec: &mut Obj) {
    if let Some(ps) = child(spec, "template").and_then(|t| child(t, "spec")) {
        default_pod_spec(ps);
    }
}

/// `SetDefaults_Deployment` plus the template's PodSpec defaults.
pub fn default_deployment(obj: &mut Obj) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(|t| t.as_str()) == Some("RollingUpdate")
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            default_value(ru, "maxUnavailable", json!("25%"));
            default_value(ru, "maxSurge", json!("25%"));
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_value(spec, "progressDeadlineSeconds", json!(600));
    default_template(spec);
}

/// `SetDefaults_ReplicaSet` plus the template's PodSpec defaults.
pub fn default_replica_set(obj: &mut Obj) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    default_template(spec);
}

/// Go's `%#v` of an `intstr.IntOrString`.
pub(super) fn go_int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => format!("intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"),
        IntOrString::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            go_quote(s)
        ),
    }
}

/// `getPercentValue`.
pub(super) fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) if is_valid_percent(s).is_empty() => {
            s.trim_end_matches('%').parse().ok()
        }
        _ => None,
    }
}

/// `getIntOrPercentValue`.
fn int_or_percent_value(v: &IntOrString) -> i64 {
    percent_value(v).unwrap_or(match v {
        IntOrString::Int(i) => (*i).into(),
        IntOrString::String(s) => s.parse().unwrap_or(0),
    })
}

/// `ValidatePositiveIntOrPercent`.
pub(super) fn validate_positive_int_or_percent(v: &IntOrString, path: &Path) -> Vec<Cause> {
    match v {
        IntOrString::String(s) => is_valid_percent(s)
            .into_iter()
            .map(|m| field::invalid(path, BadValue::Go(go_int_or_string(v)), &m))
            .collect(),
        IntOrString::Int(i) => validate_nonnegative((*i).into(), path),
    }
}

/// `ValidateDeploymentStrategy` / `ValidateRollingUpdateDeployment`.
fn validate_strategy(strategy: &DeploymentStrategy, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    match strategy.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                errs.push(field::forbidden(
                    &path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match &strategy.rolling_update {
            None => errs.push(field::required(
                &path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let rp = path.child("rollingUpdate");
                let zero = IntOrString::Int(0);
                let mu = ru.max_unavailable.as_ref().unwrap_or(&zero);
                let ms = ru.max_surge.as_ref().unwrap_or(&zero);
                errs.extend(validate_positive_int_or_percent(
                    mu,
                    &rp.child("maxUnavailable"),
                ));
                errs.extend(validate_positive_int_or_percent(ms, &rp.child("maxSurge")));
                if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                    errs.push(field::invalid(
                        &rp.child("maxUnavailable"),
                        BadValue::Go(go_int_or_string(mu)),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                if percent_value(mu).is_some_and(|p| p > 100) {
                    errs.push(field::invalid(
                        &rp.child("maxUnavailable"),
                        BadValue::Go(go_int_or_string(mu)),
                        "must not be greater than 100%",
                    ));
                }
            }
        },
        other => {
            let ru = if strategy.rolling_update.is_some() {
                "&apps.RollingUpdateDeployment{...}"
            } else {
                "(*apps.RollingUpdateDeployment)(nil)"
            };
            errs.push(field::not_supported(
                path,
                BadValue::Go(format!(
                    "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{ru}}}",
                    go_quote(other)
                )),
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
    errs
}

/// The selector and template checks shared by Deployment and ReplicaSet
/// (`ValidateDeploymentSpec`/`ValidateReplicaSetSpec` selector part and
/// `ValidatePodTemplateSpecForReplicaSet`).
fn validate_selector_and_template(
    selector: Option<&LabelSelector>,
    template: &PodTemplateSpec,
    kind: &str,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let sp = path.child("selector");
    match selector {
        None => errs.push(field::required(&sp, "")),
        Some(sel) => {
            errs.extend(validate_label_selector(sel, &sp));
            let count = sel.match_labels.as_ref().map_or(0, |m| m.len())
                + sel.match_expressions.as_ref().map_or(0, |m| m.len());
            if count == 0 {
                errs.push(field::invalid(
                    &sp,
                    BadValue::Go(go_label_selector(sel)),
                    &format!("empty selector is invalid for {kind}"),
                ));
            }
        }
    }
    let tp = path.child("template");
    let meta = template_meta(template);
    let parsed = match selector {
        None => Ok(None),
        Some(sel) => from_label_selector(sel).map(Some),
    };
    match parsed {
        Err(_) => errs.push(field::invalid(
            &sp,
            BadValue::Go(selector.map(go_label_selector).unwrap_or_default()),
            "invalid label selector",
        )),
        Ok(parsed) => {
            let labels = meta.labels.clone().unwrap_or_default();
            // A missing selector selects nothing (`labels.Nothing()`), an
            // empty one everything.
            let mismatch = match &parsed {
                None => true,
                Some(s) => !s.is_empty() && !s.matches(&labels),
            };
            if mismatch {
                errs.push(field::invalid(
                    &tp.child("metadata").child("labels"),
                    BadValue::Go(go_string_map(meta.labels.as_ref())),
                    "`selector` does not match template `labels`",
                ));
            }
            errs.extend(validate_pod_template(template, &tp));
            let spec = template.spec.clone().unwrap_or_default();
            let restart = spec.restart_policy.as_deref().unwrap_or("");
            if restart != "Always" {
                errs.push(field::not_supported(
                    &tp.child("spec").child("restartPolicy"),
                    restart,
                    &["Always"],
                ));
            }
            if spec.active_deadline_seconds.is_some() {
                errs.push(field::forbidden(
                    &tp.child("spec").child("activeDeadlineSeconds"),
                    "activeDeadlineSeconds in ReplicaSet is not Supported",
                ));
            }
        }
    }
    errs
}

/// `ValidateDeploymentSpec`.
fn validate_deployment_spec(d: &Deployment, path: &Path) -> Vec<Cause> {
    let spec = d.spec.clone().unwrap_or_default();
    let mut errs = validate_nonnegative(spec.replicas.unwrap_or(0).into(), &path.child("replicas"));
    errs.extend(validate_selector_and_template(
        Some(&spec.selector).filter(|_| has_selector(d)),
        &spec.template,
        "deployment",
        path,
    ));
    errs.extend(validate_strategy(
        &spec.strategy.clone().unwrap_or_default(),
        &path.child("strategy"),
    ));
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(validate_nonnegative(
        min_ready.into(),
        &path.child("minReadySeconds"),
    ));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(validate_nonnegative(
            r.into(),
            &path.child("revisionHistoryLimit"),
        ));
    }
    if let Some(p) = spec.progress_deadline_seconds {
        errs.extend(validate_nonnegative(
            p.into(),
            &path.child("progressDeadlineSeconds"),
        ));
        if p <= min_ready {
            errs.push(field::invalid(
                &path.child("progressDeadlineSeconds"),
                p,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// k8s-openapi makes `spec.selector` required; a Deployment without one
/// decodes to an empty selector, so presence is read from the metadata of
/// the decode: an empty selector with no fields at all counts as missing.
fn has_selector(d: &Deployment) -> bool {
    d.spec.as_ref().is_some_and(|s| {
        s.selector.match_labels.is_some() || s.selector.match_expressions.is_some()
    })
}

/// `ValidateDeployment`.
pub fn validate_deployment(d: &Deployment) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &d.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_deployment_spec(d, &Path::new("spec")));
    errs.extend(validate_deployment_status(d, &Path::new("status")));
    errs
}

fn selector_immutable(new: &LabelSelector, old: &LabelSelector) -> Vec<Cause> {
    if new == old {
        Vec::new()
    } else {
        vec![field::invalid(
            &Path::new("spec").child("selector"),
            BadValue::Go(go_label_selector(new)),
            FIELD_IMMUTABLE,
        )]
    }
}

/// `ValidateDeploymentUpdate` plus the apps/v1 strategy's selector
/// immutability.
pub fn validate_deployment_update(new: &Deployment, old: &Deployment) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_deployment_spec(new, &Path::new("spec")));
    let (ns, os) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    errs.extend(selector_immutable(&ns.selector, &os.selector));
    errs
}

/// `ValidateDeploymentStatus`.
fn validate_deployment_status(d: &Deployment, path: &Path) -> Vec<Cause> {
    let s = d.status.clone().unwrap_or_default();
    let mut errs = validate_nonnegative(
        s.observed_generation.unwrap_or(0),
        &path.child("observedGeneration"),
    );
    let (replicas, updated, ready, available, unavailable) = (
        s.replicas.unwrap_or(0),
        s.updated_replicas.unwrap_or(0),
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
        s.unavailable_replicas.unwrap_or(0),
    );
    for (name, v) in [
        ("replicas", replicas),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", unavailable),
    ] {
        errs.extend(validate_nonnegative(v.into(), &path.child(name)));
    }
    if let Some(t) = s.terminating_replicas {
        errs.extend(validate_nonnegative(
            t.into(),
            &path.child("terminatingReplicas"),
        ));
    }
    if let Some(c) = s.collision_count {
        errs.extend(validate_nonnegative(
            c.into(),
            &path.child("collisionCount"),
        ));
    }
    const MSG: &str = "cannot be greater than status.replicas";
    if updated > replicas {
        errs.push(field::invalid(&path.child("updatedReplicas"), updated, MSG));
    }
    if ready > replicas {
        errs.push(field::invalid(&path.child("readyReplicas"), ready, MSG));
    }
    if available > replicas {
        errs.push(field::invalid(
            &path.child("availableReplicas"),
            available,
            MSG,
        ));
    }
    if available > ready {
        errs.push(field::invalid(
            &path.child("availableReplicas"),
            available,
            "cannot be greater than readyReplicas",
        ));
    }
    errs
}

/// `ValidateDeploymentStatusUpdate`.
pub fn validate_deployment_status_update(new: &Deployment, old: &Deployment) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let sp = Path::new("status");
    errs.extend(validate_deployment_status(new, &sp));
    let nc = new.status.as_ref().and_then(|s| s.collision_count);
    let oc = old.status.as_ref().and_then(|s| s.collision_count);
    if let Some(o) = oc
        && nc.is_none_or(|n| n < o)
    {
        errs.push(field::invalid(
            &sp.child("collisionCount"),
            nc.unwrap_or(0),
            "cannot be decremented",
        ));
    }
    errs
}

fn rs_has_selector(rs: &ReplicaSet) -> bool {
    rs.spec.as_ref().is_some_and(|s| {
        s.selector.match_labels.is_some() || s.selector.match_expressions.is_some()
    })
}

/// `ValidateReplicaSetSpec`.
fn validate_replica_set_spec(rs: &ReplicaSet, path: &Path) -> Vec<Cause> {
    let spec = rs.spec.clone().unwrap_or_default();
    let mut errs = validate_nonnegative(spec.replicas.unwrap_or(0).into(), &path.child("replicas"));
    errs.extend(validate_nonnegative(
        spec.min_ready_seconds.unwrap_or(0).into(),
        &path.child("minReadySeconds"),
    ));
    let template = spec.template.clone().unwrap_or_default();
    errs.extend(validate_selector_and_template(
        Some(&spec.selector).filter(|_| rs_has_selector(rs)),
        &template,
        "deployment",
        path,
    ));
    errs
}

/// `ValidateReplicaSet`.
pub fn validate_replica_set(rs: &ReplicaSet) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &rs.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_replica_set_spec(rs, &Path::new("spec")));
    errs
}

/// `ValidateReplicaSetUpdate` plus selector immutability.
pub fn validate_replica_set_update(new: &ReplicaSet, old: &ReplicaSet) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_replica_set_spec(new, &Path::new("spec")));
    let (ns, os) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    errs.extend(selector_immutable(&ns.selector, &os.selector));
    errs
}

/// `ValidateReplicaSetStatusUpdate` / `ValidateReplicaSetStatus`.
pub fn validate_replica_set_status_update(new: &ReplicaSet, old: &ReplicaSet) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let p = Path::new("status");
    let s = new.status.clone().unwrap_or_default();
    let (replicas, labeled, ready, available) = (
        s.replicas,
        s.fully_labeled_replicas.unwrap_or(0),
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    );
    for (name, v) in [
        ("replicas", replicas),
        ("fullyLabeledReplicas", labeled),
        ("readyReplicas", ready),
        ("availableReplicas", available),
    ] {
        errs.extend(validate_nonnegative(v.into(), &p.child(name)));
    }
    errs.extend(validate_nonnegative(
        s.observed_generation.unwrap_or(0),
        &p.child("observedGeneration"),
    ));
    const MSG: &str = "cannot be greater than status.replicas";
    for (name, v) in [
        ("fullyLabeledReplicas", labeled),
        ("readyReplicas", ready),
        ("availableReplicas", available),
    ] {
        if v > replicas {
            errs.push(field::invalid(&p.child(name), v, MSG));
        }
    }
    if available > ready {
        errs.push(field::invalid(
            &p.child("availableReplicas"),
            available,
            "cannot be greater than readyReplicas",
        ));
    }
    errs
}

/// `ValidateScale`.
pub fn validate_scale(scale: &Scale) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &scale.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    let replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    if replicas < 0 {
        errs.push(field::invalid(
            &Path::new("spec").child("replicas"),
            replicas,
            "must be greater than or equal to 0",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn deployment() -> Value {
        let mut d = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}
            }
        });
        default_deployment(d.as_object_mut().unwrap());
        d
    }

    fn check(d: &Value) -> Vec<String> {
        validate_deployment(&serde_json::from_value(d.clone()).unwrap())
            .iter()
            .map(Cause::error_string)
            .collect()
    }

    // SetDefaults_Deployment.
    #[test]
    fn defaults() {
        let d = deployment();
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert!(
            d["spec"]["template"]["spec"]
                .get("enableServiceLinks")
                .is_none()
        );
        assert!(check(&d).is_empty(), "{:?}", check(&d));
    }

    // ValidatePodTemplateSpecForReplicaSet: selector mismatch; missing selector
    // also reports the mismatch (labels.Nothing()).
    #[test]
    fn selector_rules() {
        let mut d = deployment();
        d["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        assert_eq!(
            check(&d),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
            ]
        );
        d["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(
            check(&d),
            vec![
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ]
        );
        d["spec"]["selector"] = json!({"matchLabels": {}});
        assert_eq!(
            check(&d),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
            ]
        );
    }

    // The example the issue names: a missing image in a Deployment.
    #[test]
    fn missing_image_message() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("image");
        let errs = validate_deployment(&serde_json::from_value(d).unwrap());
        assert_eq!(
            field::invalid_message("apps", "Deployment", "web", &errs),
            "Deployment.apps \"web\" is invalid: spec.template.spec.containers[0].image: Required value"
        );
    }

    // ValidateDeploymentSpec / ValidateRollingUpdateDeployment.
    #[test]
    fn spec_rules() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": "0%"});
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            check(&d),
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
            ]
        );
        let mut d = deployment();
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxUnavailable": "150%", "maxSurge": "x"});
        assert_eq!(
            check(&d),
            vec![
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"x\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
            ]
        );
        let mut d = deployment();
        d["spec"]["progressDeadlineSeconds"] = json!(5);
        d["spec"]["minReadySeconds"] = json!(10);
        assert_eq!(
            check(&d),
            vec![
                "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"
            ]
        );
    }

    // apps/v1 strategies: spec.selector is immutable.
    #[test]
    fn selector_immutable_on_update() {
        let mut old = deployment();
        old["metadata"]["resourceVersion"] = json!("3");
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "v": "2"}});
        new["spec"]["template"]["metadata"]["labels"]["v"] = json!("2");
        let errs: Vec<String> = validate_deployment_update(
            &serde_json::from_value(new).unwrap(),
            &serde_json::from_value(old).unwrap(),
        )
        .iter()
        .map(Cause::error_string)
        .collect();
        assert_eq!(
            errs,
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            ]
        );
    }

    // ReplicaSet and Scale.
    #[test]
    fn replica_set_and_scale() {
        let mut rs = json!({"metadata": {"name": "rs", "namespace": "default"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        default_replica_set(rs.as_object_mut().unwrap());
        assert_eq!(rs["spec"]["replicas"], 1);
        assert!(validate_replica_set(&serde_json::from_value(rs).unwrap()).is_empty());
        let scale: Scale = serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": -2}}),
        )
        .unwrap();
        let errs: Vec<String> = validate_scale(&scale)
            .iter()
            .map(Cause::error_string)
            .collect();
        assert_eq!(
            errs,
            vec!["spec.replicas: Invalid value: -2: must be greater than or equal to 0"]
        );
    }

    // ValidateDeploymentStatus.
    #[test]
    fn status_rules() {
        let mut old = deployment();
        old["metadata"]["resourceVersion"] = json!("1");
        let mut new = old.clone();
        new["status"] = json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": 1});
        let errs: Vec<String> = validate_deployment_status_update(
            &serde_json::from_value(new).unwrap(),
            &serde_json::from_value(old).unwrap(),
        )
        .iter()
        .map(Cause::error_string)
        .collect();
        assert_eq!(
            errs,
            vec!["status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas"]
        );
    }
}
