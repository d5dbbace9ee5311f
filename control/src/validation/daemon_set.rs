//! apps/v1 DaemonSet and ControllerRevision: defaults
//! (`SetDefaults_DaemonSet` in pkg/apis/apps/v1/defaults.go) and validation
//! (`ValidateDaemonSet*`, `ValidateControllerRevision*` in
//! pkg/apis/apps/validation/validation.go, and the DaemonSet strategy's
//! selector immutability).

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetUpdateStrategy};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::apps::{
    default_template, go_int_or_string, int_or_percent_value, percent_value, selector_immutable,
    validate_positive_int_or_percent,
};
use super::field::{self, BadValue, Cause, Path, go_quote, go_string_map};
use super::formats::NameRule;
use super::json::{Obj, child, default_str, default_value};
use super::metadata::{
    FIELD_IMMUTABLE, validate_nonnegative, validate_object_meta, validate_object_meta_update,
};
use super::pod::{template_meta, validate_pod_template};
use super::selector::{from_label_selector, go_label_selector, validate_label_selector};

/// `SetDefaults_DaemonSet` plus the template's PodSpec defaults.
pub fn default_daemon_set(obj: &mut Obj) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if let Some(strategy) = child(spec, "updateStrategy") {
        default_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(|t| t.as_str()) == Some("RollingUpdate")
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            default_value(ru, "maxUnavailable", json!(1));
            default_value(ru, "maxSurge", json!(0));
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_template(spec);
}

/// `IsNotMoreThan100Percent`.
fn not_more_than_100_percent(v: &IntOrString, path: &Path) -> Vec<Cause> {
    match percent_value(v) {
        Some(p) if p > 100 => vec![field::invalid(
            path,
            BadValue::Go(go_int_or_string(v)),
            "must not be greater than 100%",
        )],
        _ => Vec::new(),
    }
}

/// `ValidateDaemonSetUpdateStrategy` / `ValidateRollingUpdateDaemonSet`.
fn validate_update_strategy(strategy: &DaemonSetUpdateStrategy, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    match strategy.type_.as_deref().unwrap_or("") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let rp = path.child("rollingUpdate");
            let Some(ru) = &strategy.rolling_update else {
                errs.push(field::required(&rp, ""));
                return errs;
            };
            let zero = IntOrString::Int(0);
            let mu = ru.max_unavailable.as_ref().unwrap_or(&zero);
            let ms = ru.max_surge.as_ref().unwrap_or(&zero);
            errs.extend(validate_positive_int_or_percent(
                mu,
                &rp.child("maxUnavailable"),
            ));
            errs.extend(validate_positive_int_or_percent(ms, &rp.child("maxSurge")));
            errs.extend(not_more_than_100_percent(mu, &rp.child("maxUnavailable")));
            errs.extend(not_more_than_100_percent(ms, &rp.child("maxSurge")));
            match (int_or_percent_value(mu) != 0, int_or_percent_value(ms) != 0) {
                (true, true) => errs.push(field::invalid(
                    &rp.child("maxSurge"),
                    BadValue::Go(go_int_or_string(ms)),
                    "may not be set when maxUnavailable is non-zero",
                )),
                (false, false) => errs.push(field::required(
                    &rp.child("maxUnavailable"),
                    "cannot be 0 when maxSurge is 0",
                )),
                _ => {}
            }
        }
        other => {
            let ru = if strategy.rolling_update.is_some() {
                "&apps.RollingUpdateDaemonSet{...}"
            } else {
                "(*apps.RollingUpdateDaemonSet)(nil)"
            };
            errs.push(field::not_supported(
                path,
                BadValue::Go(format!(
                    "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:{ru}}}",
                    go_quote(other)
                )),
                &["RollingUpdate", "OnDelete"],
            ));
        }
    }
    errs
}

/// k8s-openapi makes `spec.selector` required; a DaemonSet without one
/// decodes to an empty selector with no fields, which counts as missing.
fn has_selector(ds: &DaemonSet) -> bool {
    ds.spec.as_ref().is_some_and(|s| {
        s.selector.match_labels.is_some() || s.selector.match_expressions.is_some()
    })
}

/// `ValidateDaemonSetSpec`.
fn validate_daemon_set_spec(ds: &DaemonSet, path: &Path) -> Vec<Cause> {
    let spec = ds.spec.clone().unwrap_or_default();
    let sp = path.child("selector");
    let selector = Some(&spec.selector).filter(|_| has_selector(ds));
    let mut errs = Vec::new();
    if let Some(sel) = selector {
        errs.extend(validate_label_selector(sel, &sp));
    }
    let template = &spec.template;
    let meta = template_meta(template);
    // A missing selector selects nothing (`labels.Nothing()`).
    let parsed = match selector {
        None => Ok(None),
        Some(sel) => from_label_selector(sel).map(Some),
    };
    if let Ok(parsed) = parsed {
        let labels = meta.labels.clone().unwrap_or_default();
        if parsed.is_none_or(|s| !s.matches(&labels)) {
            errs.push(field::invalid(
                &path.child("template").child("metadata").child("labels"),
                BadValue::Go(go_string_map(meta.labels.as_ref())),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if let Some(sel) = selector {
        let count = sel.match_labels.as_ref().map_or(0, |m| m.len())
            + sel.match_expressions.as_ref().map_or(0, |m| m.len());
        if count == 0 {
            errs.push(field::invalid(
                &sp,
                BadValue::Go(go_label_selector(sel)),
                "empty selector is invalid for daemonset",
            ));
        }
    }
    let tp = path.child("template");
    errs.extend(validate_pod_template(template, &tp));
    let pod_spec = template.spec.clone().unwrap_or_default();
    let restart = pod_spec.restart_policy.as_deref().unwrap_or("");
    if restart != "Always" {
        errs.push(field::not_supported(
            &tp.child("spec").child("restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if let Some(ads) = pod_spec.active_deadline_seconds {
        errs.push(field::invalid(
            &tp.child("spec").child("activeDeadlineSeconds"),
            ads,
            "activeDeadlineSeconds in DaemonSet is not Supported",
        ));
    }
    errs.extend(validate_nonnegative(
        spec.min_ready_seconds.unwrap_or(0).into(),
        &path.child("minReadySeconds"),
    ));
    errs.extend(validate_update_strategy(
        &spec.update_strategy.clone().unwrap_or_default(),
        &path.child("updateStrategy"),
    ));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(validate_nonnegative(
            r.into(),
            &path.child("revisionHistoryLimit"),
        ));
    }
    errs
}

/// `ValidateDaemonSet`.
pub fn validate_daemon_set(ds: &DaemonSet) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &ds.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_daemon_set_spec(ds, &Path::new("spec")));
    errs
}

/// `ValidateDaemonSetUpdate` plus the apps/v1 strategy's selector
/// immutability.
pub fn validate_daemon_set_update(new: &DaemonSet, old: &DaemonSet) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_daemon_set_spec(new, &Path::new("spec")));
    let (ns, os) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    errs.extend(selector_immutable(&ns.selector, &os.selector));
    errs
}

/// `ValidateDaemonSetStatusUpdate` / `validateDaemonSetStatus`.
pub fn validate_daemon_set_status_update(new: &DaemonSet, old: &DaemonSet) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let p = Path::new("status");
    let s = new.status.clone().unwrap_or_default();
    for (name, v) in [
        ("currentNumberScheduled", s.current_number_scheduled),
        ("numberMisscheduled", s.number_misscheduled),
        ("desiredNumberScheduled", s.desired_number_scheduled),
        ("numberReady", s.number_ready),
    ] {
        errs.extend(validate_nonnegative(v.into(), &p.child(name)));
    }
    errs.extend(validate_nonnegative(
        s.observed_generation.unwrap_or(0),
        &p.child("observedGeneration"),
    ));
    for (name, v) in [
        ("updatedNumberScheduled", s.updated_number_scheduled),
        ("numberAvailable", s.number_available),
        ("numberUnavailable", s.number_unavailable),
        ("collisionCount", s.collision_count),
    ] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative(v.into(), &p.child(name)));
        }
    }
    let oc = old.status.as_ref().and_then(|s| s.collision_count);
    if let Some(o) = oc
        && s.collision_count.is_none_or(|n| n < o)
    {
        errs.push(field::invalid(
            &p.child("collisionCount"),
            s.collision_count.unwrap_or(0),
            "cannot be decremented",
        ));
    }
    errs
}

/// `ValidateControllerRevision`.
pub fn validate_controller_revision(cr: &ControllerRevision) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &cr.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    if cr.data.as_ref().is_none_or(|d| d.0.is_null()) {
        errs.push(field::required(&Path::new("data"), "data is mandatory"));
    }
    errs.extend(validate_nonnegative(cr.revision, &Path::new("revision")));
    errs
}

/// `ValidateControllerRevisionUpdate`: the data never changes.
pub fn validate_controller_revision_update(
    new: &ControllerRevision,
    old: &ControllerRevision,
) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_controller_revision(new));
    if new.data != old.data {
        let shown = new
            .data
            .as_ref()
            .map(|d| d.0.to_string())
            .unwrap_or_else(|| "<nil>".into());
        errs.push(field::invalid(
            &Path::new("data"),
            BadValue::Go(shown),
            FIELD_IMMUTABLE,
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn daemon_set() -> Value {
        let mut d = json!({
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}
            }
        });
        default_daemon_set(d.as_object_mut().unwrap());
        d
    }

    fn check(d: &Value) -> Vec<String> {
        validate_daemon_set(&serde_json::from_value(d.clone()).unwrap())
            .iter()
            .map(Cause::error_string)
            .collect()
    }

    // SetDefaults_DaemonSet.
    #[test]
    fn defaults() {
        let d = daemon_set();
        assert_eq!(
            d["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(check(&d).is_empty(), "{:?}", check(&d));
        let mut on_delete = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        default_daemon_set(on_delete.as_object_mut().unwrap());
        assert_eq!(
            on_delete["spec"]["updateStrategy"],
            json!({"type": "OnDelete"})
        );
    }

    // ValidateDaemonSetSpec: the selector must match the template's labels.
    #[test]
    fn selector_rules() {
        let mut d = daemon_set();
        d["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        assert_eq!(
            check(&d),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"agent\"}: `selector` does not match template `labels`"
            ]
        );
        d["spec"]["selector"] = json!({"matchLabels": {}});
        assert_eq!(
            check(&d),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for daemonset"
            ]
        );
    }

    // ValidateDaemonSetUpdateStrategy / ValidateRollingUpdateDaemonSet.
    #[test]
    fn update_strategy_rules() {
        let mut d = daemon_set();
        d["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxUnavailable": 1, "maxSurge": 1});
        assert_eq!(
            check(&d),
            vec![
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}: may not be set when maxUnavailable is non-zero"
            ]
        );
        d["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": 0});
        assert_eq!(
            check(&d),
            vec![
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
            ]
        );
        d["spec"]["updateStrategy"]["rollingUpdate"] =
            json!({"maxUnavailable": 0, "maxSurge": "150%"});
        assert_eq!(
            check(&d),
            vec![
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"
            ]
        );
        d["spec"]["updateStrategy"] = json!({"type": "Sometimes"});
        assert_eq!(
            check(&d),
            vec![
                "spec.updateStrategy: Unsupported value: apps.DaemonSetUpdateStrategy{Type:\"Sometimes\", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: \"RollingUpdate\", \"OnDelete\""
            ]
        );
        d["spec"]["updateStrategy"] = json!({"type": "RollingUpdate"});
        assert_eq!(
            check(&d),
            vec!["spec.updateStrategy.rollingUpdate: Required value"]
        );
    }

    // The template's restart policy and active deadline.
    #[test]
    fn template_rules() {
        let mut d = daemon_set();
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
        assert_eq!(
            check(&d),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
                "spec.template.spec.activeDeadlineSeconds: Invalid value: 5: activeDeadlineSeconds in DaemonSet is not Supported",
            ]
        );
    }

    // The selector is immutable; status counts are non-negative and the
    // collision count never goes down.
    #[test]
    fn update_and_status_rules() {
        let mut old = daemon_set();
        old["metadata"]["resourceVersion"] = json!("3");
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "agent", "v": "2"}});
        new["spec"]["template"]["metadata"]["labels"]["v"] = json!("2");
        let errs: Vec<String> = validate_daemon_set_update(
            &serde_json::from_value(new).unwrap(),
            &serde_json::from_value(old.clone()).unwrap(),
        )
        .iter()
        .map(Cause::error_string)
        .collect();
        assert_eq!(
            errs,
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"agent\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            ]
        );
        old["status"] = json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0, "collisionCount": 2});
        let mut new = old.clone();
        new["status"]["numberReady"] = json!(-1);
        new["status"]["collisionCount"] = json!(1);
        let errs: Vec<String> = validate_daemon_set_status_update(
            &serde_json::from_value(new).unwrap(),
            &serde_json::from_value(old).unwrap(),
        )
        .iter()
        .map(Cause::error_string)
        .collect();
        assert_eq!(
            errs,
            vec![
                "status.numberReady: Invalid value: -1: must be greater than or equal to 0",
                "status.collisionCount: Invalid value: 1: cannot be decremented",
            ]
        );
    }

    // ValidateControllerRevision / ValidateControllerRevisionUpdate.
    #[test]
    fn controller_revision_rules() {
        let cr = |v: Value| -> ControllerRevision { serde_json::from_value(v).unwrap() };
        let errs: Vec<String> = validate_controller_revision(&cr(
            json!({"metadata": {"name": "agent-1", "namespace": "default"}, "revision": -1}),
        ))
        .iter()
        .map(Cause::error_string)
        .collect();
        assert_eq!(
            errs,
            vec![
                "data: Required value: data is mandatory",
                "revision: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
        let old = json!({"metadata": {"name": "agent-1", "namespace": "default", "resourceVersion": "1"}, "data": {"spec": {}}, "revision": 1});
        let mut new = old.clone();
        new["revision"] = json!(2);
        assert!(validate_controller_revision_update(&cr(new.clone()), &cr(old.clone())).is_empty());
        new["data"] = json!({"spec": {"x": 1}});
        let errs: Vec<String> = validate_controller_revision_update(&cr(new), &cr(old))
            .iter()
            .map(Cause::error_string)
            .collect();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("data: Invalid value: "));
        assert!(errs[0].ends_with(": field is immutable"));
    }
}
