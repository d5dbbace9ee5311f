//! coordination.k8s.io/v1 Lease (pkg/apis/coordination/validation:
//! `ValidateLease`, `ValidateLeaseSpec`, `ValidateLeaseUpdate`).

use k8s_openapi::api::coordination::v1::Lease;

use super::field::{self, Cause, Path};
use super::formats::NameRule;
use super::metadata::{validate_object_meta, validate_object_meta_update};

/// `ValidateLease`.
pub fn validate_lease(lease: &Lease) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &lease.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    let spec = lease.spec.clone().unwrap_or_default();
    let sp = Path::new("spec");
    if let Some(d) = spec.lease_duration_seconds
        && d <= 0
    {
        errs.push(field::invalid(
            &sp.child("leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.lease_transitions
        && t < 0
    {
        errs.push(field::invalid(
            &sp.child("leaseTransitions"),
            t,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(s) = spec.strategy.as_deref()
        && s != "OldestEmulationVersion"
    {
        errs.push(field::not_supported(
            &sp.child("strategy"),
            s,
            &["OldestEmulationVersion"],
        ));
    }
    if spec
        .preferred_holder
        .as_deref()
        .is_some_and(|h| !h.is_empty())
        && spec.strategy.as_deref().unwrap_or("").is_empty()
    {
        errs.push(field::forbidden(
            &sp.child("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

/// `ValidateLeaseUpdate`.
pub fn validate_lease_update(new: &Lease, old: &Lease) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_lease(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // ValidateLeaseSpec.
    #[test]
    fn lease_spec() {
        let l: Lease = serde_json::from_value(json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "x"}})).unwrap();
        let errs: Vec<String> = validate_lease(&l).iter().map(Cause::error_string).collect();
        assert_eq!(
            errs,
            vec![
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
                "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined",
            ]
        );
    }
}
