//! Admission of CertificateSigningRequest writes that depends on who
//! writes, as kube-apiserver's plugins decide it:
//! `CertificateApproval` (approving or denying needs the `approve` verb on
//! the request's signer, `signers` in certificates.k8s.io, by name or as
//! `<domain>/*`), `CertificateSigning` (issuing a certificate needs `sign`
//! on it), and `CertificateSubjectRestriction` (no `system:masters`
//! certificate from the `kubernetes.io/kube-apiserver-client` signer).

use serde_json::Value;

use super::User;
use super::authorizer::{Attributes, Authorizer, Decision};
use crate::api::resource::Resource;
use crate::api::status::ApiError;
use crate::apiserver::router::Verb;
use crate::validation::certificates::request_subject;

const GROUP: &str = "certificates.k8s.io";
const API_SERVER_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// Whether the plugins look at writes of `r`.
pub fn applies(r: &Resource) -> bool {
    r.group == GROUP && r.plural == "certificatesigningrequests"
}

/// Whether `user` may `verb` (approve, sign) requests for `signer`.
fn may(authorizer: &Authorizer, user: &User, verb: &str, signer: &str) -> bool {
    let ask = |name: String| Attributes {
        user: user.clone(),
        verb: verb.into(),
        resource_request: true,
        api_group: GROUP.into(),
        resource: "signers".into(),
        name,
        ..Attributes::default()
    };
    let wildcard = signer
        .split_once('/')
        .map(|(domain, _)| format!("{domain}/*"));
    std::iter::once(signer.to_owned())
        .chain(wildcard)
        .any(|name| authorizer.authorize(&ask(name)).0 == Decision::Allow)
}

/// Checks `object`, about to be written by `user` with `verb` (on
/// `subresource`).
pub fn check(
    authorizer: &Authorizer,
    user: &User,
    r: &Resource,
    verb: Verb,
    subresource: Option<&str>,
    object: &Value,
) -> Result<(), ApiError> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let signer = object
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let refuse = |why: String| Err(ApiError::forbidden(r, name, &why));
    match (verb, subresource) {
        (Verb::Create, None) if signer == API_SERVER_CLIENT_SIGNER => {
            let masters = object
                .pointer("/spec/request")
                .and_then(Value::as_str)
                .and_then(|b64| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(b64).ok()
                })
                .and_then(|pem| request_subject(&pem))
                .is_some_and(|(_, organizations)| {
                    organizations.iter().any(|o| o == "system:masters")
                });
            if masters {
                return refuse(format!(
                    "use of {API_SERVER_CLIENT_SIGNER} signer with system:masters group is not allowed"
                ));
            }
            Ok(())
        }
        (_, Some("approval")) if !may(authorizer, user, "approve", signer) => refuse(format!(
            "user not permitted to approve requests with signerName {signer:?}"
        )),
        (_, Some("status"))
            if object
                .pointer("/status/certificate")
                .and_then(Value::as_str)
                .is_some_and(|c| !c.is_empty())
                && !may(authorizer, user, "sign", signer) =>
        {
            refuse(format!(
                "user not permitted to sign requests with signerName {signer:?}"
            ))
        }
        _ => Ok(()),
    }
}
