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
