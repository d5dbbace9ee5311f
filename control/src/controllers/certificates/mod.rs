//! CertificateSigningRequest controllers of the controller manager:
//! `csrapproving` (the auto-approver of kubelet client certificates, and
//! of kubelet serving certificates whose names are the requesting node's
//! own) and `csrsigning` ([`signer`]). Both go over every request at each change
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
use signer::{
    KUBELET_CLIENT, KUBELET_SERVING, SIGNERS, Signer, check_request, has_condition, is_issued,
};

/// How often pending requests are looked at when nothing changes.
const RECHECK: Duration = Duration::from_secs(5);

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

/// Whether a kubelet serving request may be approved without an
/// administrator: asked by the node it names (`system:node:<name>` in
/// `system:nodes`), for names that are all the node's own (its name and
/// the addresses its Node object reports).
async fn own_serving_names(client: &kube::Client, csr: &CertificateSigningRequest) -> bool {
    let spec = &csr.spec;
    let Some((cn, _)) = crate::validation::certificates::request_subject(&spec.request.0) else {
        return false;
    };
    let requester = spec.username.as_deref().unwrap_or_default();
    let in_nodes = spec
        .groups
        .as_ref()
        .is_some_and(|g| g.iter().any(|g| g == "system:nodes"));
    let Some(node) = cn.strip_prefix("system:node:") else {
        return false;
    };
    if requester != cn || !in_nodes {
        return false;
    }
    let Ok(params) = crate::validation::certificates::parse_request(&spec.request.0) else {
        return false;
    };
    let Ok(object) = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .get(node)
        .await
    else {
        return false;
    };
    let mut names: Vec<String> = vec![node.to_owned()];
    for a in object.status.and_then(|s| s.addresses).unwrap_or_default() {
        names.push(a.address);
    }
    params.params.subject_alt_names.iter().all(|san| match san {
        rcgen::SanType::DnsName(d) => names.iter().any(|n| n == d.as_str()),
        rcgen::SanType::IpAddress(ip) => names.iter().any(|n| *n == ip.to_string()),
        _ => false,
    })
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
        let auto_approved = if !approve || decided {
            None
        } else if signer_name == KUBELET_CLIENT
            && check_request(KUBELET_CLIENT, &csr.spec.request.0, &usages).is_ok()
            && may_auto_approve(client, csr).await
        {
            Some("Auto approving kubelet client certificate after SubjectAccessReview.")
        } else if signer_name == KUBELET_SERVING
            && check_request(KUBELET_SERVING, &csr.spec.request.0, &usages).is_ok()
            && own_serving_names(client, csr).await
        {
            Some("Auto approving kubelet serving certificate for the requesting node's own names.")
        } else {
            None
        };
        if let Some(message) = auto_approved {
            let approved = condition("Approved", "AutoApproved", message);
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
        if !crate::client::informer::synced(&requests).await {
            return;
        }
        if !sync(&api, &client, &requests.state(), signer.as_ref(), approve).await {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Pending requests are looked at again after a while too: a
        // serving request waits for its Node to report its addresses.
        tokio::select! {
            change = rx.recv() => if change.is_none() { return },
            () = tokio::time::sleep(RECHECK) => {}
        }
        while rx.try_recv().is_ok() {}
    }
}
