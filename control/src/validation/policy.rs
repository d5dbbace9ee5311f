//! policy/v1 PodDisruptionBudget (pkg/apis/policy/validation), the
//! metav1 Conditions its status carries, and Eviction with the
//! DeleteOptions it carries (apimachinery `ValidateDeleteOptions`, also what
//! a DELETE body must satisfy).

use k8s_openapi::api::policy::v1::{Eviction, PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::apps::{go_int_or_string, percent_value, validate_positive_int_or_percent};
use super::field::{self, BadValue, Cause, Path};
use super::formats::{NameRule, regex_error};
use super::metadata::{
    validate_label_name, validate_nonnegative, validate_object_meta, validate_object_meta_update,
};
use super::selector::validate_label_selector;

/// The values `spec.unhealthyPodEvictionPolicy` takes.
const UNHEALTHY_POD_EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];

/// Go's `%#v` of a pointer: its address, or a typed nil.
fn go_pointer(ty: &str, set: bool) -> String {
    if set {
        format!("(*{ty})(0xc000000000)")
    } else {
        format!("(*{ty})(nil)")
    }
}

/// Go's `%#v` of a `policy.PodDisruptionBudgetSpec` (its pointer fields
/// print as addresses).
fn go_pdb_spec(spec: &PodDisruptionBudgetSpec) -> String {
    format!(
        "policy.PodDisruptionBudgetSpec{{MinAvailable:{}, Selector:{}, MaxUnavailable:{}, UnhealthyPodEvictionPolicy:{}}}",
        go_pointer("intstr.IntOrString", spec.min_available.is_some()),
        go_pointer("v1.LabelSelector", spec.selector.is_some()),
        go_pointer("intstr.IntOrString", spec.max_unavailable.is_some()),
        go_pointer(
            "policy.UnhealthyPodEvictionPolicyType",
            spec.unhealthy_pod_eviction_policy.is_some()
        ),
    )
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

/// `ValidatePodDisruptionBudgetSpec`.
pub fn validate_pod_disruption_budget_spec(
    spec: &PodDisruptionBudgetSpec,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        errs.push(field::invalid(
            path,
            BadValue::Go(go_pdb_spec(spec)),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (name, v) in [
        ("minAvailable", &spec.min_available),
        ("maxUnavailable", &spec.max_unavailable),
    ] {
        if let Some(v) = v {
            errs.extend(validate_positive_int_or_percent(v, &path.child(name)));
            errs.extend(not_more_than_100_percent(v, &path.child(name)));
        }
    }
    if let Some(sel) = &spec.selector {
        errs.extend(validate_label_selector(sel, &path.child("selector")));
    }
    if let Some(p) = &spec.unhealthy_pod_eviction_policy
        && !UNHEALTHY_POD_EVICTION_POLICIES.contains(&p.as_str())
    {
        errs.push(field::not_supported(
            &path.child("unhealthyPodEvictionPolicy"),
            p.as_str(),
            UNHEALTHY_POD_EVICTION_POLICIES,
        ));
    }
    errs
}

/// `ValidatePodDisruptionBudget` with the generic registry's metadata
/// check (names are path segments).
pub fn validate_pod_disruption_budget(pdb: &PodDisruptionBudget) -> Vec<Cause> {
    let mut errs = validate_pod_disruption_budget_spec(
        &pdb.spec.clone().unwrap_or_default(),
        &Path::new("spec"),
    );
    errs.extend(validate_object_meta(
        &pdb.metadata,
        true,
        NameRule::PathSegment,
        &Path::new("metadata"),
    ));
    errs
}

/// An update: the spec is mutable and checked again.
pub fn validate_pod_disruption_budget_update(
    new: &PodDisruptionBudget,
    old: &PodDisruptionBudget,
) -> Vec<Cause> {
    let mut errs = validate_pod_disruption_budget_spec(
        &new.spec.clone().unwrap_or_default(),
        &Path::new("spec"),
    );
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs
}

/// `ValidatePodDisruptionBudgetStatusUpdate` (policy/v1).
pub fn validate_pod_disruption_budget_status_update(
    new: &PodDisruptionBudget,
    old: &PodDisruptionBudget,
) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let p = Path::new("status");
    let s = new.status.clone().unwrap_or_default();
    errs.extend(validate_conditions(
        s.conditions.as_deref().unwrap_or_default(),
        &p.child("conditions"),
    ));
    for (name, v) in [
        ("disruptionsAllowed", s.disruptions_allowed),
        ("currentHealthy", s.current_healthy),
        ("desiredHealthy", s.desired_healthy),
        ("expectedPods", s.expected_pods),
    ] {
        errs.extend(validate_nonnegative(v.into(), &p.child(name)));
    }
    errs
}

const CONDITION_STATUSES: &[&str] = &["False", "True", "Unknown"];
const MAX_REASON_LEN: usize = 1024;
const MAX_MESSAGE_LEN: usize = 32 * 1024;
const CONDITION_REASON_FMT: &str = "[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?";

/// `isValidConditionReason`.
fn is_valid_condition_reason(reason: &str) -> Vec<String> {
    let b = reason.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b',' | b':');
    let ok = b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter().all(inner)
        && b.last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if ok {
        Vec::new()
    } else {
        vec![regex_error(
            "a condition reason must start with alphabetic character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_'",
            CONDITION_REASON_FMT,
            &[
                "my_name",
                "MY_NAME",
                "MyName",
                "ReasonA,ReasonB",
                "ReasonA:ReasonB",
            ],
        )]
    }
}

/// metav1 `ValidateConditions`: unique types, each a valid condition.
pub fn validate_conditions(conditions: &[Condition], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in conditions.iter().enumerate() {
        let p = path.index(i);
        if seen.contains(&c.type_.as_str()) {
            errs.push(field::duplicate(&p.child("type"), c.type_.as_str()));
        } else {
            seen.push(&c.type_);
        }
        errs.extend(validate_label_name(&c.type_, &p.child("type")));
        if !CONDITION_STATUSES.contains(&c.status.as_str()) {
            errs.push(field::not_supported(
                &p.child("status"),
                c.status.as_str(),
                CONDITION_STATUSES,
            ));
        }
        if let Some(g) = c.observed_generation.filter(|g| *g < 0) {
            errs.push(field::invalid(
                &p.child("observedGeneration"),
                g,
                "must be greater than or equal to zero",
            ));
        }
        if c.last_transition_time.0 == jiff::Timestamp::UNIX_EPOCH {
            errs.push(field::required(
                &p.child("lastTransitionTime"),
                "must be set",
            ));
        }
        if c.reason.is_empty() {
            errs.push(field::required(&p.child("reason"), "must be set"));
        } else {
            for m in is_valid_condition_reason(&c.reason) {
                errs.push(field::invalid(&p.child("reason"), c.reason.as_str(), &m));
            }
            if c.reason.len() > MAX_REASON_LEN {
                errs.push(field::too_long(&p.child("reason"), MAX_REASON_LEN));
            }
        }
        if c.message.len() > MAX_MESSAGE_LEN {
            errs.push(field::too_long(&p.child("message"), MAX_MESSAGE_LEN));
        }
    }
    errs
}

/// `ValidateDeleteOptions` on the wire form of a `DeleteOptions`.
pub fn validate_delete_options(options: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    let policy = options.get("propagationPolicy").and_then(Value::as_str);
    let orphan = options
        .get("orphanDependents")
        .is_some_and(|v| !v.is_null());
    if orphan && policy.is_some() {
        errs.push(field::invalid(
            &Path::new("propagationPolicy"),
            BadValue::from(policy),
            "orphanDependents and deletionPropagation cannot be both set",
        ));
    }
    if let Some(p) = policy
        && !matches!(p, "Foreground" | "Background" | "Orphan")
    {
        errs.push(field::not_supported(
            &Path::new("propagationPolicy"),
            p,
            &["Foreground", "Background", "Orphan", "nil"],
        ));
    }
    let dry_run: Vec<String> = options
        .get("dryRun")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| d.as_str().unwrap_or("").to_string())
        .collect();
    if dry_run.iter().any(|d| d != "All") {
        errs.push(field::not_supported(
            &Path::new("dryRun"),
            BadValue::Go(field::go_string_slice(Some(&dry_run))),
            &["All"],
        ));
    }
    errs
}

/// An Eviction is checked only through its DeleteOptions.
pub fn validate_eviction(e: &Eviction) -> Vec<Cause> {
    match &e.delete_options {
        Some(opts) => validate_delete_options(&serde_json::to_value(opts).unwrap_or_default()),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb_errors(spec: Value) -> Vec<String> {
        let pdb: PodDisruptionBudget = serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
        .unwrap();
        validate_pod_disruption_budget(&pdb)
            .iter()
            .map(Cause::error_string)
            .collect()
    }

    // ValidatePodDisruptionBudgetSpec.
    #[test]
    fn pdb_spec() {
        let sel = json!({"matchLabels": {"app": "web"}});
        assert!(pdb_errors(json!({"minAvailable": 2, "selector": sel})).is_empty());
        assert!(pdb_errors(json!({"maxUnavailable": "25%", "selector": sel})).is_empty());
        assert!(
            pdb_errors(
                json!({"minAvailable": "100%", "unhealthyPodEvictionPolicy": "AlwaysAllow"})
            )
            .is_empty()
        );
        let both = pdb_errors(json!({"minAvailable": 1, "maxUnavailable": 1}));
        assert_eq!(both.len(), 1, "{both:?}");
        assert!(both[0].starts_with("spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:(*intstr.IntOrString)(0x"), "{both:?}");
        assert!(
            both[0].ends_with(": minAvailable and maxUnavailable cannot be both set"),
            "{both:?}"
        );
        assert_eq!(
            pdb_errors(json!({"minAvailable": -1})),
            vec!["spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"]
        );
        assert_eq!(
            pdb_errors(json!({"maxUnavailable": "150%"})),
            vec![
                "spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"
            ]
        );
        assert_eq!(
            pdb_errors(json!({"minAvailable": "half"})),
            vec![
                "spec.minAvailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"half\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
            ]
        );
        assert_eq!(
            pdb_errors(json!({"unhealthyPodEvictionPolicy": "Never"})),
            vec![
                "spec.unhealthyPodEvictionPolicy: Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""
            ]
        );
        assert_eq!(
            pdb_errors(
                json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}})
            ),
            vec![
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
            ]
        );
    }

    // ValidatePodDisruptionBudgetStatusUpdate and ValidateConditions.
    #[test]
    fn pdb_status() {
        let pdb = |status: Value| -> PodDisruptionBudget {
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"}, "spec": {}, "status": status})).unwrap()
        };
        let old = pdb(
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}),
        );
        let errs = |s: Value| -> Vec<String> {
            validate_pod_disruption_budget_status_update(&pdb(s), &old)
                .iter()
                .map(Cause::error_string)
                .collect()
        };
        assert!(errs(json!({"currentHealthy": 3, "desiredHealthy": 2, "disruptionsAllowed": 1, "expectedPods": 3,
            "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]})).is_empty());
        assert_eq!(
            errs(
                json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": -1, "expectedPods": 0})
            ),
            vec![
                "status.disruptionsAllowed: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
        assert_eq!(
            errs(
                json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0,
                "conditions": [{"type": "DisruptionAllowed", "status": "Maybe", "reason": "no good", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]})
            ),
            vec![
                "status.conditions[0].status: Unsupported value: \"Maybe\": supported values: \"False\", \"True\", \"Unknown\"",
                "status.conditions[0].reason: Invalid value: \"no good\": a condition reason must start with alphabetic character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', regex used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')",
            ]
        );
    }

    // ValidateDeleteOptions.
    #[test]
    fn delete_options() {
        assert!(validate_delete_options(&json!({"propagationPolicy": "Foreground"})).is_empty());
        let errs: Vec<String> = validate_delete_options(
            &json!({"propagationPolicy": "Later", "orphanDependents": true}),
        )
        .iter()
        .map(Cause::error_string)
        .collect();
        assert_eq!(
            errs,
            vec![
                "propagationPolicy: Invalid value: \"Later\": orphanDependents and deletionPropagation cannot be both set",
                "propagationPolicy: Unsupported value: \"Later\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"",
            ]
        );
    }
}
