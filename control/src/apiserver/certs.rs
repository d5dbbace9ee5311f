//! The cluster's PKI: a CA, the API server's serving certificate and client
//! certificates, generated with rcgen on first start into the cert dir and
//! reused afterwards (file names as kubeadm's: `ca.crt`, `ca.key`,
//! `apiserver.crt`, `apiserver.key`, and `sa.key` for service-account
//! tokens).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Errors creating or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Rcgen {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("{path}: no PEM data")]
    Pem { path: PathBuf },
}

/// The DNS names every API server certificate carries, as kubeadm's.
pub const SERVICE_DNS_NAMES: &[&str] = &[
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The CA able to sign new certificates.
pub struct Ca {
    pub cert_pem: String,
    key: KeyPair,
}

pub(crate) fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write(path: &Path, data: &str, private: bool) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, data).map_err(io)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

fn rc(what: &'static str) -> impl FnOnce(rcgen::Error) -> CertError {
    move |source| CertError::Rcgen { what, source }
}

impl Ca {
    /// Loads the cluster CA `ca.crt`/`ca.key` from `dir`, creating them on
    /// first use.
    pub fn load_or_create(dir: &Path) -> Result<Ca, CertError> {
        Self::load_or_create_named(dir, "kubernetes")
    }

    /// Loads `ca.crt`/`ca.key` from `dir`, creating a CA named `cn` on
    /// first use.
    pub fn load_or_create_named(dir: &Path, cn: &str) -> Result<Ca, CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let crt = dir.join("ca.crt");
        let key = dir.join("ca.key");
        if crt.exists() && key.exists() {
            let cert_pem = read(&crt)?;
            let key = KeyPair::from_pem(&read(&key)?).map_err(rc("parse ca.key"))?;
            return Ok(Ca { cert_pem, key });
        }
        let key_pair = KeyPair::generate().map_err(rc("generate CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc("CA params"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params.self_signed(&key_pair).map_err(rc("sign CA"))?;
        write(&key, &key_pair.serialize_pem(), true)?;
        write(&crt, &cert.pem(), false)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key: key_pair,
        })
    }

    fn issue(&self, mut params: CertificateParams) -> Result<Pair, CertError> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(rc("load CA"))?;
        let key = KeyPair::generate().map_err(rc("generate key"))?;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(rc("sign certificate"))?;
        Ok(Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The API server's serving certificate for `dns` names and `ips`.
    pub fn issue_serving(&self, dns: &[String], ips: &[IpAddr]) -> Result<Pair, CertError> {
        self.issue_server(
            "kube-apiserver",
            dns,
            ips,
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        )
    }

    /// A serving certificate named `cn` for `dns` names and `ips`, with
    /// extended key usages `usages`.
    pub fn issue_server(
        &self,
        cn: &str,
        dns: &[String],
        ips: &[IpAddr],
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<Pair, CertError> {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(rc("serving params"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        for d in dns {
            let name = d.clone().try_into().map_err(rc("DNS SAN"))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.extended_key_usages = usages;
        self.issue(params)
    }

    /// A client certificate: CN = user, O = groups (x509 authentication).
    pub fn issue_client(&self, user: &str, groups: &[String]) -> Result<Pair, CertError> {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(rc("client params"))?;
        let mut dn = DistinguishedName::new();
        for g in groups {
            dn.push(DnType::OrganizationName, g.as_str());
        }
        dn.push(DnType::CommonName, user);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }
}

/// Loads the serving pair from `dir`, (re)issuing it when missing or when
/// its SAN list changed.
pub fn serving_pair(
    ca: &Ca,
    dir: &Path,
    dns: &[String],
    ips: &[IpAddr],
) -> Result<Pair, CertError> {
    let crt = dir.join("apiserver.crt");
    let key = dir.join("apiserver.key");
    let sans = dir.join("apiserver.sans");
    let wanted = format!(
        "{}\n{}\n",
        dns.join(","),
        ips.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    if crt.exists() && key.exists() && read(&sans).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(Pair {
            cert_pem: read(&crt)?,
            key_pem: read(&key)?,
        });
    }
    let pair = ca.issue_serving(dns, ips)?;
    write(&key, &pair.key_pem, true)?;
    write(&crt, &pair.cert_pem, false)?;
    write(&sans, &wanted, false)?;
    Ok(pair)
}

/// Loads a named client pair (`<name>.crt`/`.key`) from `dir`, issuing it
/// on first use.
pub fn client_pair(
    ca: &Ca,
    dir: &Path,
    name: &str,
    user: &str,
    groups: &[String],
) -> Result<Pair, CertError> {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    if crt.exists() && key.exists() {
        return Ok(Pair {
            cert_pem: read(&crt)?,
            key_pem: read(&key)?,
        });
    }
    let pair = ca.issue_client(user, groups)?;
    write(&key, &pair.key_pem, true)?;
    write(&crt, &pair.cert_pem, false)?;
    Ok(pair)
}

/// Loads the key service-account tokens are signed with (`sa.key`, as
/// kubeadm's; ECDSA P-256), creating it on first use.
pub fn service_account_key(dir: &Path) -> Result<KeyPair, CertError> {
    let path = dir.join("sa.key");
    if path.exists() {
        return KeyPair::from_pem(&read(&path)?).map_err(rc("parse sa.key"));
    }
    let key = KeyPair::generate().map_err(rc("generate sa.key"))?;
    write(&path, &key.serialize_pem(), true)?;
    Ok(key)
}

/// The user a client certificate names: CN is the user, each O a group.
pub fn subject_of(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((user, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_carries_user_and_groups() {
        let dir = std::env::temp_dir().join(format!("baton-certs-{}", std::process::id()));
        let ca = Ca::load_or_create(&dir).unwrap();
        let pair = ca
            .issue_client("kubernetes-admin", &["system:masters".to_string()])
            .unwrap();
        let der = rustls_pemfile::certs(&mut pair.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (user, groups) = subject_of(&der).unwrap();
        assert_eq!(user, "kubernetes-admin");
        assert_eq!(groups, vec!["system:masters".to_string()]);
        // A second load reuses the same CA.
        let again = Ca::load_or_create(&dir).unwrap();
        assert_eq!(again.cert_pem, ca.cert_pem);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
