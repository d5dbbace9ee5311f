//! A certificate asked for with a CertificateSigningRequest: the request
//! made from a key kept here, then watched until a signer issues the
//! certificate or someone denies it.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{CertificateParams, KeyPair};

use super::CertError;

/// How often a pending request is looked at.
const POLL: Duration = Duration::from_secs(1);

/// The certificate (PEM) `signer` issues for `params` and `key`, with
/// `usages`, asked for as the client's user.
pub async fn request(
    client: &kube::Client,
    params: &CertificateParams,
    key: &KeyPair,
    signer: &str,
    usages: &[&str],
) -> Result<String, CertError> {
    let csr_pem = params.serialize_request(key)?.pem()?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("csr-".into()),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.into_bytes()),
            signer_name: signer.into(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let created = api.create(&PostParams::default(), &csr).await?;
    let name = created.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, %signer, "requested a certificate");
    loop {
        tokio::time::sleep(POLL).await;
        let current = api.get(&name).await?;
        let status = current.status.unwrap_or_default();
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            return Ok(String::from_utf8_lossy(&cert.0).into_owned());
        }
        if let Some(c) = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| matches!(c.type_.as_str(), "Denied" | "Failed") && c.status == "True")
        {
            return Err(CertError::Refused {
                name,
                condition: c.type_,
                message: c.message.unwrap_or_default(),
            });
        }
    }
}
