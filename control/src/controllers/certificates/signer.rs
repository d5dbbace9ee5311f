//! The CSR signing controller (kube-controller-manager's `csrsigning`):
//! approved requests for the signers it serves are issued a certificate
//! from the cluster CA (`--cluster-signing-cert-file`/`-key-file`), valid
//! for the request's `expirationSeconds` or `--cluster-signing-duration`,
//! whichever is shorter, backdated five minutes for clock skew. A request
//! its signer's rules refuse gets the Failed condition
//! (`SignerValidationFailure`) instead.

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use rcgen::{ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, SanType};

use crate::validation::certificates::{parse_request, request_subject};

pub const API_SERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// The signers this controller serves.
pub const SIGNERS: &[&str] = &[API_SERVER_CLIENT, KUBELET_CLIENT, KUBELET_SERVING];
const BACKDATE: Duration = Duration::from_secs(300);

/// The cluster CA as the signer holds it.
pub struct Signer {
    ca_pem: String,
    key: KeyPair,
    duration: Duration,
}

/// Whether a condition of `type_` is True on the request.
pub fn has_condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Whether the request has a certificate.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// The signer's rules for a request: its usages and subject.
pub fn check_request(signer: &str, request: &[u8], usages: &[String]) -> Result<(), String> {
    let (cn, organizations) =
        request_subject(request).ok_or_else(|| "unable to parse csr".to_owned())?;
    let params = parse_request(request)?;
    let sans = &params.params.subject_alt_names;
    let allowed_usages = |allowed: &[&str], required: &[&str]| -> Result<(), String> {
        for u in usages {
            if !allowed.contains(&u.as_str()) {
                return Err(format!("unsupported key usage: {u}"));
            }
        }
        for r in required {
            if !usages.iter().any(|u| u == r) {
                return Err(format!("missing required key usage: {r}"));
            }
        }
        Ok(())
    };
    let node_subject = || -> Result<(), String> {
        if organizations != ["system:nodes"] {
            return Err("organization is not set to system:nodes".into());
        }
        if !cn.starts_with("system:node:") {
            return Err("subject common name does not begin with system:node:".into());
        }
        Ok(())
    };
    match signer {
        API_SERVER_CLIENT => allowed_usages(
            &["digital signature", "key encipherment", "client auth"],
            &["client auth"],
        ),
        KUBELET_CLIENT => {
            node_subject()?;
            if !sans.is_empty() {
                return Err("DNS, email, IP or URI subjectAltNames are not allowed".into());
            }
            allowed_usages(
                &["digital signature", "key encipherment", "client auth"],
                &["digital signature", "client auth"],
            )
        }
        KUBELET_SERVING => {
            node_subject()?;
            if sans.is_empty() {
                return Err("DNS or IP subjectAltName is required".into());
            }
            if sans
                .iter()
                .any(|s| !matches!(s, SanType::DnsName(_) | SanType::IpAddress(_)))
            {
                return Err("email and URI subjectAltNames are not allowed".into());
            }
            allowed_usages(
                &["digital signature", "key encipherment", "server auth"],
                &["digital signature", "server auth"],
            )
        }
        other => Err(format!("unknown signer {other}")),
    }
}

impl Signer {
    pub fn new(ca_pem: String, key_pem: &str, duration: Duration) -> Result<Self, rcgen::Error> {
        Ok(Self {
            ca_pem,
            key: KeyPair::from_pem(key_pem)?,
            duration,
        })
    }

    /// The PEM certificate for `request` with `usages`, valid for
    /// `expiration` (capped by the signer's duration).
    pub fn issue(
        &self,
        request: &[u8],
        usages: &[String],
        expiration: Option<Duration>,
    ) -> Result<String, String> {
        let mut csr = parse_request(request)?;
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca_pem, &self.key).map_err(|e| e.to_string())?;
        let now = jiff::Timestamp::now().as_second();
        let lifetime = expiration.map_or(self.duration, |e| e.min(self.duration));
        let at =
            |secs: i64| time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| e.to_string());
        let params = &mut csr.params;
        params.not_before = at(now - BACKDATE.as_secs() as i64)?;
        params.not_after = at(now + lifetime.as_secs() as i64)?;
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = Vec::new();
        params.extended_key_usages = Vec::new();
        for u in usages {
            match u.as_str() {
                "digital signature" => params.key_usages.push(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => params.key_usages.push(KeyUsagePurpose::KeyEncipherment),
                "client auth" => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ServerAuth),
                _ => {}
            }
        }
        let cert = csr.signed_by(&issuer).map_err(|e| e.to_string())?;
        Ok(cert.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cn: &str, orgs: &[&str], sans: Vec<SanType>) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        params.subject_alt_names = sans;
        params
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes()
    }

    fn usages(u: &[&str]) -> Vec<String> {
        u.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_signer_keeps_its_rules() {
        let kubelet = request("system:node:n1", &["system:nodes"], vec![]);
        let client = usages(&["digital signature", "client auth"]);
        assert_eq!(check_request(KUBELET_CLIENT, &kubelet, &client), Ok(()));
        let masters = request("system:node:n1", &["system:masters"], vec![]);
        assert_eq!(
            check_request(KUBELET_CLIENT, &masters, &client),
            Err("organization is not set to system:nodes".into())
        );
        let named = request("admin", &["system:nodes"], vec![]);
        assert!(check_request(KUBELET_CLIENT, &named, &client).is_err());
        assert_eq!(
            check_request(
                KUBELET_SERVING,
                &kubelet,
                &usages(&["digital signature", "server auth"])
            ),
            Err("DNS or IP subjectAltName is required".into())
        );
        let serving = request(
            "system:node:n1",
            &["system:nodes"],
            vec![SanType::DnsName("n1".try_into().unwrap())],
        );
        assert_eq!(
            check_request(
                KUBELET_SERVING,
                &serving,
                &usages(&["digital signature", "server auth"])
            ),
            Ok(())
        );
        assert!(check_request(API_SERVER_CLIENT, &named, &usages(&["server auth"])).is_err());
    }

    #[test]
    fn an_issued_certificate_names_the_requested_subject() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::apiserver::certs::Ca::load_or_create(dir.path()).unwrap();
        let key = std::fs::read_to_string(dir.path().join("ca.key")).unwrap();
        let signer = Signer::new(ca.cert_pem.clone(), &key, Duration::from_secs(3600)).unwrap();
        let req = request("jane", &["devs"], vec![]);
        let pem = signer
            .issue(
                &req,
                &usages(&["client auth"]),
                Some(Duration::from_secs(600)),
            )
            .unwrap();
        let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let cert = parsed.parse_x509().unwrap();
        assert_eq!(
            crate::apiserver::certs::subject_of(&parsed.contents),
            Some(("jane".to_owned(), vec!["devs".to_owned()]))
        );
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(
            lifetime,
            600 + 300,
            "the requested ten minutes, backdated five"
        );
    }
}
