//! The kubelet's serving certificate, as the kubelet's certificate manager
//! keeps it with `serverTLSBootstrap`: a key made on the node and a
//! `kubernetes.io/kubelet-serving` CertificateSigningRequest for
//! `system:node:<name>` in `system:nodes`, naming the node's name and
//! InternalIP; the issued certificate is kept in the root dir
//! (`pki/kubelet-server.{crt,key}`, reused across restarts while valid) and
//! renewed when 80% of its lifetime has passed. The cluster CA's key never
//! reaches the node; with `--ca-key` (a node without a controller manager
//! to sign) the certificate is issued locally instead.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType,
};

use super::Config;

const SIGNER: &str = "kubernetes.io/kubelet-serving";
/// How often a pending request is looked at.
const POLL: Duration = Duration::from_secs(1);

/// A serving certificate and its key, both PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Why no certificate was had this time.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the request {name} was {condition}: {message}")]
    Refused {
        name: String,
        condition: String,
        message: String,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
}

fn subject(config: &Config) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("system:node:{}", config.node_name),
    );
    dn.push(DnType::OrganizationName, "system:nodes");
    params.distinguished_name = dn;
    params
        .subject_alt_names
        .push(SanType::DnsName(config.node_name.clone().try_into()?));
    if let Ok(ip) = config.node_ip.parse::<IpAddr>() {
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    Ok(params)
}

/// The seconds since the epoch a PEM certificate is valid from and until.
pub fn validity(cert_pem: &str) -> Option<(i64, i64)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let v = cert.validity();
    Some((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// When the certificate should be renewed: 80% into its lifetime.
pub fn renew_at(cert_pem: &str) -> Option<i64> {
    let (from, until) = validity(cert_pem)?;
    Some(from + (until - from) * 4 / 5)
}

fn files(config: &Config) -> (PathBuf, PathBuf) {
    let dir = config.root_dir.join("pki");
    (
        dir.join("kubelet-server.crt"),
        dir.join("kubelet-server.key"),
    )
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The kept pair, when it is still short of its renewal time.
fn load(config: &Config, now: i64) -> Option<Pair> {
    let (crt, key) = files(config);
    let pair = Pair {
        cert_pem: std::fs::read_to_string(crt).ok()?,
        key_pem: std::fs::read_to_string(key).ok()?,
    };
    (renew_at(&pair.cert_pem)? > now).then_some(pair)
}

fn save(config: &Config, pair: &Pair) -> Result<(), CertError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (crt, key) = files(config);
    if let Some(dir) = crt.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    for (path, text, mode) in [(&key, &pair.key_pem, 0o600), (&crt, &pair.cert_pem, 0o644)] {
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
    }
    Ok(())
}

/// A pair issued on the node from the cluster CA's key.
fn issue_locally(config: &Config, ca_pem: &str, ca_key: &Path) -> Result<Pair, CertError> {
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(ca_key).map_err(io(ca_key))?)?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, &ca_key)?;
    let mut params = subject(config)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A pair from a CertificateSigningRequest, once it is issued.
async fn request(client: &kube::Client, config: &Config) -> Result<Pair, CertError> {
    let key = KeyPair::generate()?;
    let csr_pem = subject(config)?.serialize_request(&key)?.pem()?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("csr-".into()),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.into_bytes()),
            signer_name: SIGNER.into(),
            usages: Some(vec!["digital signature".into(), "server auth".into()]),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let created = api.create(&PostParams::default(), &csr).await?;
    let name = created.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, "requested a serving certificate");
    loop {
        tokio::time::sleep(POLL).await;
        let current = api.get(&name).await?;
        let status = current.status.unwrap_or_default();
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            return Ok(Pair {
                cert_pem: String::from_utf8_lossy(&cert.0).into_owned(),
                key_pem: key.serialize_pem(),
            });
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

/// The TLS configuration serving `pair`, verifying client certificates
/// against the CA when they are offered (a caller may present a bearer
/// token instead).
pub fn server_config(ca_pem: &str, pair: &Pair) -> Result<rustls::ServerConfig, CertError> {
    let tls = |e: String| CertError::Tls(e);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        let c = c.map_err(|e| tls(e.to_string()))?;
        roots.add(c).map_err(|e| tls(e.to_string()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| tls(e.to_string()))?;
    let chain = rustls_pemfile::certs(&mut pair.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut pair.key_pem.as_bytes())
        .map_err(|e| tls(e.to_string()))?
        .ok_or_else(|| tls("no private key".into()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Keeps `acceptor` serving a valid certificate: the kept one, or a new
/// one, renewed at 80% of its lifetime; failures are retried.
pub async fn keep(
    client: kube::Client,
    config: Config,
    ca_pem: String,
    acceptor: Arc<RwLock<Option<tokio_rustls::TlsAcceptor>>>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let now = jiff::Timestamp::now().as_second();
        let pair = match load(&config, now) {
            Some(pair) => Ok(pair),
            None => match &config.ca_key {
                Some(ca_key) => issue_locally(&config, &ca_pem, ca_key),
                None => request(&client, &config).await,
            }
            .and_then(|pair| save(&config, &pair).map(|()| pair)),
        };
        let served = pair.and_then(|pair| {
            let tls = server_config(&ca_pem, &pair)?;
            *acceptor.write().unwrap_or_else(PoisonError::into_inner) =
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls)));
            Ok(pair)
        });
        match served {
            Ok(pair) => {
                backoff = Duration::from_secs(1);
                let renew = renew_at(&pair.cert_pem).unwrap_or(now + 3600);
                tracing::info!(renew_at = renew, "serving certificate in place");
                let wait = u64::try_from(renew - jiff::Timestamp::now().as_second()).unwrap_or(0);
                tokio::time::sleep(Duration::from_secs(wait.max(1))).await;
            }
            Err(err) => {
                tracing::warn!(%err, "no serving certificate yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, ca_key: Option<PathBuf>) -> Config {
        Config {
            node_name: "n1".into(),
            node_ip: "10.0.0.1".into(),
            pod_cidr: None,
            root_dir: dir.to_owned(),
            cgroup_root: String::new(),
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            port: 10250,
            ca_cert: None,
            ca_key,
        }
    }

    #[test]
    fn a_local_pair_is_kept_until_its_renewal_time() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let key_path = dir.path().join("ca.key");
        std::fs::write(&key_path, ca_key.serialize_pem()).unwrap();
        let cfg = config(dir.path(), Some(key_path));
        let pair = issue_locally(&cfg, &ca_pem, cfg.ca_key.as_ref().unwrap()).unwrap();
        server_config(&ca_pem, &pair).unwrap();
        save(&cfg, &pair).unwrap();
        let (from, until) = validity(&pair.cert_pem).unwrap();
        let renew = renew_at(&pair.cert_pem).unwrap();
        assert_eq!(renew, from + (until - from) * 4 / 5);
        assert!(load(&cfg, renew - 1).is_some());
        assert!(load(&cfg, renew).is_none(), "due for renewal");
    }
}
