//! CertificateSigningRequest controllers of the controller manager:
//! `csrapproving` (the auto-approver of kubelet client certificates) and
//! `csrsigning` ([`signer`]). Both go over every request at each change
//! of any; requests are few and short-lived.

pub mod signer;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};

use crate::client::Change;
use signer::{KUBELET_CLIENT, SIGNERS, Signer, check_request, has_condition, is_issued};

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn condition(type_: &str, reason: &str, message: &str) -> serde_json::Value {
    let at = now();
    json!({"type": type_, "status": "True", "reason": reason, "message": message,
           "lastUpdateTime": at, "lastTransitionTime": at})
}

fn conditions_with(csr: &CertificateSigningRequest, added: serde_json::Value) -> serde_json::Value {
    let mut all: Vec<serde_json::Value> = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    all.push(added);
    json!(all)
}

/// Whether the requester may have its kubelet client certificate
/// approved automatically: `create` on `certificatesigningrequests/
/// selfnodeclient` when it asks for its own name, else on `nodeclient`.
async fn may_auto_approve(client: &kube::Client, csr: &CertificateSigningRequest) -> bool {
    let spec = &csr.spec;
    let Some((cn, _)) = crate::validation::certificates::request_subject(&spec.request.0) else {
        return false;
    };
    let username = spec.username.clone().unwrap_or_default();
    let subresource = if cn == username {
        "selfnodeclient"
    } else {
        "nodeclient"
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(username),
            groups: spec.groups.clone(),
            uid: spec.uid.clone(),
            extra: spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(subresource.into()),
                verb: Some("create".into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    match Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
    {
        Ok(r) => r.status.is_some_and(|s| s.allowed),
        Err(e) => {
            warn!(error = %e, "a SubjectAccessReview for a CSR failed");
            false
        }
    }
}

/// One pass over the requests; false when a write failed (retried).
async fn sync(
    api: &Api<CertificateSigningRequest>,
    client: &kube::Client,
    all: &[Arc<CertificateSigningRequest>],
    signer: Option<&Signer>,
    approve: bool,
) -> bool {
    let mut ok = true;
    let pp = PatchParams::default();
    for csr in all {
        let name = csr.name_any();
        let decided = has_condition(csr, "Approved") || has_condition(csr, "Denied");
        let signer_name = csr.spec.signer_name.as_str();
        let usages = csr.spec.usages.clone().unwrap_or_default();
        if approve
            && !decided
            && signer_name == KUBELET_CLIENT
            && check_request(KUBELET_CLIENT, &csr.spec.request.0, &usages).is_ok()
            && may_auto_approve(client, csr).await
        {
            let approved = condition(
                "Approved",
                "AutoApproved",
                "Auto approving kubelet client certificate after SubjectAccessReview.",
            );
            let patch = json!({"status": {"conditions": conditions_with(csr, approved)}});
            match api
                .patch_subresource("approval", &name, &pp, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => info!(csr = %name, "auto-approved"),
                Err(e) => {
                    warn!(csr = %name, error = %e, "approving failed");
                    ok = false;
                }
            }
            continue;
        }
        let Some(signer) = signer else { continue };
        if !has_condition(csr, "Approved")
            || has_condition(csr, "Failed")
            || is_issued(csr)
            || !SIGNERS.contains(&signer_name)
        {
            continue;
        }
        let expiration = csr
            .spec
            .expiration_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64));
        let issued = check_request(signer_name, &csr.spec.request.0, &usages)
            .and_then(|()| signer.issue(&csr.spec.request.0, &usages, expiration));
        let patch = match issued {
            Ok(pem) => {
                json!({"status": {"certificate": base64::engine::general_purpose::STANDARD.encode(pem)}})
            }
            Err(why) => {
                let failed = condition("Failed", "SignerValidationFailure", &why);
                json!({"status": {"conditions": conditions_with(csr, failed)}})
            }
        };
        match api.patch_status(&name, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => info!(csr = %name, signer = signer_name, "signed or refused"),
            Err(e) => {
                warn!(csr = %name, error = %e, "writing the certificate failed");
                ok = false;
            }
        }
    }
    ok
}

/// Runs the approver (when `approve`) and the signer (when it has the CA).
pub async fn run(
    client: kube::Client,
    requests: Store<CertificateSigningRequest>,
    mut rx: UnboundedReceiver<Change<CertificateSigningRequest>>,
    signer: Option<Signer>,
    approve: bool,
) {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    loop {
        if requests.wait_until_ready().await.is_err() {
            return;
        }
        if !sync(&api, &client, &requests.state(), signer.as_ref(), approve).await {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if rx.recv().await.is_none() {
            return;
        }
        while rx.try_recv().is_ok() {}
    }
}
