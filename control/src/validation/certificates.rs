//! certificates.k8s.io/v1 CertificateSigningRequests: pkg/apis/certificates
//! validation (the request, signer name, usages, requested duration, the
//! conditions an approval or a signer writes).

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};

use super::field::{self, BadValue, Cause, Path};
use super::formats::{NameRule, is_dns1123_subdomain};
use super::metadata::{validate_object_meta, validate_object_meta_update};

/// The key usages a request may ask for (`certificates.KeyUsage`).
pub const KEY_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

const CONDITION_TYPES: &[&str] = &["Approved", "Denied", "Failed"];
const CONDITION_STATUSES: &[&str] = &["True", "False", "Unknown"];

/// The PEM CSR of `spec.request`, checked as `parseCSR` checks it.
pub fn parse_request(request: &[u8]) -> Result<rcgen::CertificateSigningRequestParams, String> {
    let text = std::str::from_utf8(request)
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST".to_owned())?;
    if !text.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        return Err("PEM block type must be CERTIFICATE REQUEST".to_owned());
    }
    rcgen::CertificateSigningRequestParams::from_pem(text).map_err(|e| e.to_string())
}

/// The common name and organizations of a PEM CSR's subject.
pub fn request_subject(request: &[u8]) -> Option<(String, Vec<String>)> {
    use x509_parser::prelude::FromDer as _;
    let text = std::str::from_utf8(request).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).ok()?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .ok()?;
    let subject = &csr.certification_request_info.subject;
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some((cn, organizations))
}

/// `ValidateSignerName`: `<fully qualified domain>/<path>`.
fn validate_signer_name(name: &str, path: &Path) -> Vec<Cause> {
    if name.is_empty() {
        return vec![field::required(path, "")];
    }
    let Some((domain, rest)) = name.split_once('/') else {
        return vec![field::invalid(
            path,
            name,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )];
    };
    let mut errs = Vec::new();
    if rest.is_empty() {
        errs.push(field::invalid(
            path,
            name,
            "validating path: must not be empty",
        ));
    }
    if !domain.contains('.') || !is_dns1123_subdomain(domain).is_empty() {
        errs.push(field::invalid(
            path,
            name,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    errs
}

fn validate_conditions(
    conditions: &[CertificateSigningRequestCondition],
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in conditions.iter().enumerate() {
        let p = path.index(i);
        if c.type_.is_empty() {
            errs.push(field::required(&p.child("type"), ""));
        }
        if c.status.is_empty() {
            errs.push(field::required(&p.child("status"), ""));
        } else if !CONDITION_STATUSES.contains(&c.status.as_str()) {
            errs.push(field::not_supported(
                &p.child("status"),
                c.status.as_str(),
                CONDITION_STATUSES,
            ));
        }
        if CONDITION_TYPES.contains(&c.type_.as_str()) {
            if seen.contains(&c.type_.as_str()) {
                errs.push(field::duplicate(&p.child("type"), c.type_.as_str()));
            }
            seen.push(&c.type_);
            if c.type_ != "Failed" && c.status != "True" {
                errs.push(field::not_supported(
                    &p.child("status"),
                    c.status.as_str(),
                    &["True"],
                ));
            }
        }
    }
    if seen.contains(&"Approved") && seen.contains(&"Denied") {
        errs.push(field::invalid(
            path,
            BadValue::Omit,
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    errs
}

/// `ValidateCertificateSigningRequestCreate`.
pub fn validate_csr(csr: &CertificateSigningRequest) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &csr.metadata,
        false,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    let spec = Path::new("spec");
    if let Err(e) = parse_request(&csr.spec.request.0) {
        errs.push(field::invalid(&spec.child("request"), BadValue::Omit, &e));
    }
    errs.extend(validate_signer_name(
        &csr.spec.signer_name,
        &spec.child("signerName"),
    ));
    if let Some(seconds) = csr.spec.expiration_seconds
        && seconds < 600
    {
        errs.push(field::invalid(
            &spec.child("expirationSeconds"),
            BadValue::Int(i64::from(seconds)),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    if usages.is_empty() {
        errs.push(field::required(&spec.child("usages"), ""));
    }
    for (i, u) in usages.iter().enumerate() {
        let p = spec.child("usages").index(i);
        if !KEY_USAGES.contains(&u.as_str()) {
            errs.push(field::not_supported(&p, u.as_str(), KEY_USAGES));
        } else if usages[..i].contains(u) {
            errs.push(field::duplicate(&p, u.as_str()));
        }
    }
    if let Some(status) = &csr.status {
        errs.extend(validate_conditions(
            status.conditions.as_deref().unwrap_or_default(),
            &Path::new("status").child("conditions"),
        ));
    }
    errs
}

/// `ValidateCertificateSigningRequestUpdate`: metadata only (the strategy
/// keeps the spec and status).
pub fn validate_csr_update(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
) -> Vec<Cause> {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// The `approval` and `status` subresources' updates: valid conditions,
/// and an issued certificate that stays once set.
pub fn validate_csr_status_update(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
) -> Vec<Cause> {
    let mut errs = validate_csr_update(new, old);
    let status = Path::new("status");
    let conditions = new
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    errs.extend(validate_conditions(conditions, &status.child("conditions")));
    let cert = |c: &CertificateSigningRequest| {
        c.status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .map(|b| b.0.clone())
    };
    if let Some(old_cert) = cert(old)
        && !old_cert.is_empty()
        && cert(new) != Some(old_cert)
    {
        errs.push(field::invalid(
            &status.child("certificate"),
            BadValue::Omit,
            "updates may not modify existing certificate content",
        ));
    }
    if let Some(new_cert) = cert(new).filter(|c| !c.is_empty()) {
        let text = String::from_utf8_lossy(&new_cert);
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            errs.push(field::invalid(
                &status.child("certificate"),
                BadValue::Omit,
                "must contain at least one CERTIFICATE PEM block",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:n1");
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(spec: serde_json::Value) -> CertificateSigningRequest {
        serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": spec})).unwrap()
    }

    fn messages(errs: &[Cause]) -> Vec<String> {
        errs.iter().map(Cause::error_string).collect()
    }

    #[test]
    fn a_request_needs_a_csr_a_signer_and_usages() {
        use base64::Engine as _;
        let pem = base64::engine::general_purpose::STANDARD.encode(request());
        let ok = csr(
            json!({"request": pem, "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]}),
        );
        assert!(
            validate_csr(&ok).is_empty(),
            "{:?}",
            messages(&validate_csr(&ok))
        );
        let bad = csr(
            json!({"request": base64::engine::general_purpose::STANDARD.encode("nope"),
            "signerName": "signer", "usages": ["client auth", "client auth", "flying"], "expirationSeconds": 60}),
        );
        let errs = messages(&validate_csr(&bad));
        assert!(
            errs.iter()
                .any(|e| e.contains("spec.request: Invalid value")
                    && e.contains("PEM block type must be CERTIFICATE REQUEST")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains(
                "spec.signerName: Invalid value: \"signer\": must be a fully qualified domain"
            )),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e == "spec.usages[1]: Duplicate value: \"client auth\""),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.usages[2]: Unsupported value: \"flying\"")),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e == "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)"), "{errs:?}");
    }

    #[test]
    fn approved_and_denied_exclude_each_other() {
        let c = |t: &str| CertificateSigningRequestCondition {
            type_: t.into(),
            status: "True".into(),
            ..Default::default()
        };
        let errs = messages(&validate_conditions(
            &[c("Approved"), c("Denied")],
            &Path::new("status").child("conditions"),
        ));
        assert!(
            errs.iter()
                .any(|e| e.contains("Approved and Denied conditions are mutually exclusive")),
            "{errs:?}"
        );
        assert!(validate_conditions(&[c("Approved")], &Path::new("c")).is_empty());
    }
}
