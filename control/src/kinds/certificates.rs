//! certificates.k8s.io/v1 CertificateSigningRequests: a request for a
//! certificate from a signer (`kubectl get csr`, `kubectl certificate
//! approve|deny`). The API server records who asked; the `approval`
//! subresource carries the Approved or Denied condition, the `status`
//! subresource the signer's certificate. The spec never changes after
//! creation.

use serde_json::{Value, json};

use crate::api::resource::{GET_PATCH_UPDATE, Resource, Strategy, Subresource, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct CertificateSigningRequests;

/// `certificatesigningrequests/approval`.
pub const APPROVAL: Subresource = Subresource {
    name: "approval",
    kind: "CertificateSigningRequest",
    group: "",
    version: "",
    verbs: GET_PATCH_UPDATE,
};

/// An Approved or Denied condition.
fn decision(condition: &Value) -> bool {
    matches!(
        condition.get("type").and_then(Value::as_str),
        Some("Approved" | "Denied")
    )
}

pub static RESOURCE: Resource = Resource {
    short_names: &["csr"],
    subresources: &[status("CertificateSigningRequest"), APPROVAL],
    ..resource(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "CertificateSigningRequestList",
        "certificatesigningrequests",
        "certificatesigningrequest",
        false,
        &CertificateSigningRequests,
    )
};

impl Strategy for CertificateSigningRequests {
    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        new["spec"] = old["spec"].clone();
    }

    /// Approved and Denied are the approval subresource's: a status
    /// write keeps them as they were.
    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        let decisions = |v: &Value| -> Vec<Value> {
            v.pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|c| decision(c))
                .cloned()
                .collect()
        };
        let mut conditions: Vec<Value> = new
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| !decision(c))
            .cloned()
            .collect();
        let kept = decisions(old);
        if kept.is_empty() && conditions.is_empty() && new.pointer("/status/conditions").is_none() {
            return;
        }
        conditions.splice(0..0, kept);
        if !new.get("status").is_some_and(Value::is_object) {
            new["status"] = json!({});
        }
        new["status"]["conditions"] = json!(conditions);
    }

    fn records_requester(&self) -> bool {
        true
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::certificates::validate_csr)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::certificates::validate_csr_update)
    }

    fn validate_subresource_update(&self, _sub: &str, new: &Value, old: &Value) -> Vec<Cause> {
        check2(
            new,
            old,
            validation::certificates::validate_csr_status_update,
        )
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::CERTIFICATE_SIGNING_REQUEST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_write_keeps_the_approval_as_it_was() {
        let old = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}});
        let mut new = json!({"status": {"conditions": [
            {"type": "Denied", "status": "True"},
            {"type": "Failed", "status": "True"},
        ], "certificate": "x"}});
        CertificateSigningRequests.prepare_status_update(&mut new, &old);
        assert_eq!(
            new["status"]["conditions"],
            json!([{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"}])
        );
        // Nor can a status write approve a pending request.
        let pending = json!({"status": {}});
        let mut approving =
            json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}});
        CertificateSigningRequests.prepare_status_update(&mut approving, &pending);
        assert_eq!(approving["status"]["conditions"], json!([]));
    }
}
