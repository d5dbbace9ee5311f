//! policy/v1 Eviction and the DeleteOptions it carries
//! (apimachinery `ValidateDeleteOptions`, also what a DELETE body must
//! satisfy).

use k8s_openapi::api::policy::v1::Eviction;
use serde_json::Value;

use super::field::{self, BadValue, Cause, Path};

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
