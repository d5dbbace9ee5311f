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

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType,
};

use super::Config;
pub use crate::credentials::CertError;
use crate::credentials::csr;
use crate::credentials::files::{renew_at, write_atomic};

const SIGNER: &str = "kubernetes.io/kubelet-serving";

/// A serving certificate and its key, both PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
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

fn files(config: &Config) -> (PathBuf, PathBuf) {
    let dir = config.root_dir.join("pki");
    (
        dir.join("kubelet-server.crt"),
        dir.join("kubelet-server.key"),
    )
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
    let (crt, key) = files(config);
    write_atomic(&key, &pair.key_pem, 0o600)?;
    write_atomic(&crt, &pair.cert_pem, 0o644)
}

/// A pair issued on the node from the cluster CA's key.
fn issue_locally(config: &Config, ca_pem: &str, ca_key: &Path) -> Result<Pair, CertError> {
    let text = std::fs::read_to_string(ca_key).map_err(|source| CertError::Io {
        path: ca_key.to_owned(),
        source,
    })?;
    let ca_key = KeyPair::from_pem(&text)?;
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
    let usages = ["digital signature", "server auth"];
    let cert_pem = csr::request(client, &subject(config)?, &key, SIGNER, &usages).await?;
    Ok(Pair {
        cert_pem,
        key_pem: key.serialize_pem(),
    })
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
    use crate::credentials::files::validity;

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
