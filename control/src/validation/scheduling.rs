//! scheduling.k8s.io/v1 PriorityClass: `SetDefaults_PriorityClass` and
//! pkg/apis/scheduling/validation (`ValidatePriorityClass`,
//! `ValidatePriorityClassUpdate`).

use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::json;

use super::field::{self, BadValue, Cause, Path};
use super::formats::NameRule;
use super::json::{Obj, default_value};
use super::metadata::{FIELD_IMMUTABLE, validate_object_meta, validate_object_meta_update};
use super::pod_defaults::system_priority_class;
use super::pod_spec::validate_preemption_policy;

/// `HighestUserDefinablePriority`.
const HIGHEST_USER_PRIORITY: i32 = 1_000_000_000;

/// `SetDefaults_PriorityClass`.
pub fn default_priority_class(obj: &mut Obj) {
    default_value(obj, "preemptionPolicy", json!("PreemptLowerPriority"));
}

/// `ValidatePriorityClass`: the `system-` prefix is reserved for the
/// built-in classes, user values stay at or below one billion.
pub fn validate_priority_class(pc: &PriorityClass) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &pc.metadata,
        false,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    let name = pc.metadata.name.as_deref().unwrap_or("");
    let global_default = pc.global_default.unwrap_or(false);
    if name.starts_with("system-") {
        let problem = match system_priority_class(name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some(c) if c.value != pc.value => {
                Some(format!("value of {name} PriorityClass must be {}", c.value))
            }
            Some(_) if global_default => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(p) = problem {
            errs.push(field::forbidden(
                &Path::new("metadata").child("name"),
                &format!("priority class names with 'system-' prefix are reserved for system use only. error: {p}"),
            ));
        }
    } else if pc.value > HIGHEST_USER_PRIORITY {
        errs.push(field::forbidden(
            &Path::new("value"),
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        ));
    }
    if let Some(p) = pc.preemption_policy.as_deref() {
        errs.extend(validate_preemption_policy(
            p,
            &Path::new("preemptionPolicy"),
        ));
    }
    errs
}

/// `ValidatePriorityClassUpdate`: value and preemptionPolicy are immutable.
pub fn validate_priority_class_update(new: &PriorityClass, old: &PriorityClass) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    if new.value != old.value {
        errs.push(field::forbidden(
            &Path::new("value"),
            "may not be changed in an update.",
        ));
    }
    if new.preemption_policy != old.preemption_policy {
        errs.push(field::invalid(
            &Path::new("preemptionPolicy"),
            BadValue::from(new.preemption_policy.clone()),
            FIELD_IMMUTABLE,
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc(v: serde_json::Value) -> PriorityClass {
        let mut v = v;
        default_priority_class(v.as_object_mut().unwrap());
        serde_json::from_value(v).unwrap()
    }

    fn msgs(errs: &[Cause]) -> Vec<String> {
        errs.iter().map(Cause::error_string).collect()
    }

    // ValidatePriorityClass.
    #[test]
    fn create_rules() {
        assert!(
            validate_priority_class(&pc(json!({"metadata": {"name": "high"}, "value": 1000})))
                .is_empty()
        );
        assert_eq!(
            msgs(&validate_priority_class(&pc(
                json!({"metadata": {"name": "system-mine"}, "value": 1})
            ))),
            vec![
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
            ]
        );
        assert_eq!(
            msgs(&validate_priority_class(&pc(
                json!({"metadata": {"name": "huge"}, "value": 2_000_000_000})
            ))),
            vec![
                "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
            ]
        );
        assert_eq!(
            msgs(&validate_priority_class(&pc(
                json!({"metadata": {"name": "x"}, "value": 1, "preemptionPolicy": "Always"})
            ))),
            vec![
                "preemptionPolicy: Unsupported value: \"Always\": supported values: \"PreemptLowerPriority\", \"Never\""
            ]
        );
    }

    // ValidatePriorityClassUpdate.
    #[test]
    fn value_immutable() {
        let old = pc(json!({"metadata": {"name": "high", "resourceVersion": "1"}, "value": 1000}));
        let new = pc(json!({"metadata": {"name": "high", "resourceVersion": "1"}, "value": 2000}));
        assert_eq!(
            msgs(&validate_priority_class_update(&new, &old)),
            vec!["value: Forbidden: may not be changed in an update."]
        );
    }
}
