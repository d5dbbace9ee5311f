//! The kubelet's client certificate, as the kubelet keeps it with
//! `--bootstrap-kubeconfig` and certificate rotation:
//!
//! - at start, a kubeconfig whose client certificate is still valid is
//!   used as it is; otherwise, with a bootstrap kubeconfig (a bootstrap
//!   token), a key is made here and a `kubernetes.io/kube-apiserver-client-kubelet`
//!   CertificateSigningRequest for `system:node:<name>` in `system:nodes`
//!   is sent as the token's user; the controller manager approves and signs
//!   it; certificate and key go to `pki/kubelet-client-current.pem` and
//!   the kubeconfig is written to point at that file;
//! - the API client reads its certificate through a resolver that a
//!   rotation swaps, so every later connection shows the new one without
//!   the agent restarting;
//! - 80% into the certificate's lifetime, a new request is sent as the node
//!   itself (approved as a renewal of its own name), and the file and the
//!   resolver are replaced.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;

use super::kubeconfig::{self, Credential};
use super::{CertError, csr, files};

/// The signer of kubelet client certificates.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// What the certificate may do (an ECDSA key: no key encipherment).
const USAGES: &[&str] = &["digital signature", "client auth"];

/// Where the node's client credentials live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The Node's name: the certificate is for `system:node:<name>`.
    pub node_name: String,
    /// The kubeconfig the agent runs with (`--kubeconfig`).
    pub kubeconfig: PathBuf,
    /// The bootstrap kubeconfig (`--bootstrap-kubeconfig`), if any.
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// The file of the current certificate and key.
    pub pem: PathBuf,
}

impl Paths {
    /// The current certificate's file under the node's root dir.
    pub fn pem_in(root_dir: &Path) -> PathBuf {
        root_dir.join("pki").join("kubelet-client-current.pem")
    }
}

fn request_params(node_name: &str) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("system:node:{node_name}"));
    dn.push(DnType::OrganizationName, "system:nodes");
    params.distinguished_name = dn;
    Ok(params)
}

/// A new certificate and key (one PEM text) for the node, asked for as the
/// user of `client`.
async fn request(client: &kube::Client, node_name: &str) -> Result<String, CertError> {
    let key = KeyPair::generate()?;
    let cert = csr::request(client, &request_params(node_name)?, &key, SIGNER, USAGES).await?;
    Ok(format!("{cert}{}", key.serialize_pem()))
}

/// Whether `pem`'s certificate is valid at `now`.
fn usable(pem: &str, now: i64) -> bool {
    files::validity(pem).is_some_and(|(from, until)| from <= now && now < until)
}

/// Makes sure the kubeconfig holds a usable client certificate,
/// bootstrapping one with the bootstrap kubeconfig if it does not.
pub async fn ensure(paths: &Paths) -> Result<(), CertError> {
    let now = jiff::Timestamp::now().as_second();
    if kubeconfig::client_cert_pem(&paths.kubeconfig).is_some_and(|pem| usable(&pem, now)) {
        return Ok(());
    }
    let Some(bootstrap) = &paths.bootstrap_kubeconfig else {
        return Err(CertError::Kubeconfig(format!(
            "{} holds no valid client certificate and there is no bootstrap kubeconfig",
            paths.kubeconfig.display()
        )));
    };
    tracing::info!(
        bootstrap = %bootstrap.display(),
        "no valid client certificate: requesting one with the bootstrap token"
    );
    let (server, ca_pem) = kubeconfig::server_and_ca(bootstrap).await?;
    let client = kube::Client::try_from(kubeconfig::config(bootstrap).await?)?;
    let pem = request(&client, &paths.node_name).await?;
    files::write_atomic(&paths.pem, &pem, 0o600)?;
    let text = kubeconfig::render(&server, &ca_pem, &Credential::CertFile(&paths.pem));
    files::write_atomic(&paths.kubeconfig, &text, 0o600)?;
    tracing::info!(kubeconfig = %paths.kubeconfig.display(), "client certificate issued");
    Ok(())
}

fn certified_key(pem: &str) -> Result<CertifiedKey, CertError> {
    let tls = |e: String| CertError::Tls(e);
    let chain = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| tls(e.to_string()))?
        .ok_or_else(|| tls("no private key".into()))?;
    if chain.is_empty() {
        return Err(tls("no certificate".into()));
    }
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map_err(|e| tls(e.to_string()))
}

/// The client certificate every new connection presents; replaced by a
/// rotation.
#[derive(Debug, Clone)]
pub struct Identity(Arc<RwLock<Arc<CertifiedKey>>>);

impl Identity {
    /// The identity of a PEM text holding a certificate and its key.
    pub fn from_pem(pem: &str) -> Result<Self, CertError> {
        Ok(Self(Arc::new(RwLock::new(Arc::new(certified_key(pem)?)))))
    }

    /// Presents `pem`'s certificate from now on.
    pub fn replace(&self, pem: &str) -> Result<(), CertError> {
        let key = Arc::new(certified_key(pem)?);
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// An API client for the kubeconfig at `path` whose TLS client certificate
/// is `identity` (read at each connection).
pub async fn client(path: &Path, identity: Identity) -> Result<kube::Client, CertError> {
    use kube::client::ConfigExt as _;
    let tls = |e: String| CertError::Tls(e);
    let config = kubeconfig::config(path).await?;
    let mut roots = rustls::RootCertStore::empty();
    for der in config.root_cert.clone().unwrap_or_default() {
        roots
            .add(rustls::pki_types::CertificateDer::from(der))
            .map_err(|e| tls(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(identity));
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let http_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// The identity in the kubeconfig's certificate file, when the kubeconfig
/// names the file the node keeps (a bootstrapped node, which rotates it).
pub fn kept_identity(paths: &Paths) -> Option<(Identity, String)> {
    if kubeconfig::client_cert_file(&paths.kubeconfig)? != paths.pem {
        return None;
    }
    let pem = std::fs::read_to_string(&paths.pem).ok()?;
    Some((Identity::from_pem(&pem).ok()?, pem))
}

/// Renews the certificate 80% into its lifetime, for ever: a new request
/// as the node, then the file and `identity` replaced. Failures are
/// retried with backoff while the current certificate is still valid.
pub async fn rotate(client: kube::Client, paths: Paths, identity: Identity, mut pem: String) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let now = jiff::Timestamp::now().as_second();
        let renew = files::renew_at(&pem).unwrap_or(now);
        if renew > now {
            tracing::info!(renew_at = renew, "client certificate in place");
            tokio::time::sleep(Duration::from_secs((renew - now) as u64)).await;
        }
        let renewed = match request(&client, &paths.node_name).await {
            Ok(next) => files::write_atomic(&paths.pem, &next, 0o600)
                .and_then(|()| identity.replace(&next))
                .map(|()| next),
            Err(e) => Err(e),
        };
        match renewed {
            Ok(next) => {
                tracing::info!("client certificate rotated");
                pem = next;
                backoff = Duration::from_secs(1);
            }
            Err(err) => {
                tracing::warn!(%err, "rotating the client certificate failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(name: &str, not_after: (i32, u8, u8)) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = request_params(name).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        format!(
            "{}{}",
            params.self_signed(&key).unwrap().pem(),
            key.serialize_pem()
        )
    }

    #[test]
    fn an_identity_presents_the_latest_certificate() {
        let first = pem("a", (2100, 1, 1));
        let second = pem("b", (2100, 1, 1));
        let identity = Identity::from_pem(&first).unwrap();
        let shown = |i: &Identity| i.resolve(&[], &[]).unwrap().cert[0].to_vec();
        let before = shown(&identity);
        identity.replace(&second).unwrap();
        assert_ne!(shown(&identity), before);
        assert!(identity.has_certs());
        assert!(identity.replace("no pem").is_err());
        assert!(
            identity
                .replace(&second[..second.find("-----BEGIN PRIVATE").unwrap()])
                .is_err()
        );
    }

    #[test]
    fn expired_certificates_are_not_used() {
        let now = jiff::Timestamp::now().as_second();
        assert!(usable(&pem("n", (2100, 1, 1)), now));
        assert!(!usable(&pem("n", (2021, 1, 1)), now));
        assert!(!usable("garbage", now));
    }

    #[test]
    fn a_bootstrapped_kubeconfig_names_the_kept_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            node_name: "n1".into(),
            kubeconfig: dir.path().join("kubelet.conf"),
            bootstrap_kubeconfig: None,
            pem: Paths::pem_in(dir.path()),
        };
        let text = pem("system:node:n1", (2100, 1, 1));
        files::write_atomic(&paths.pem, &text, 0o600).unwrap();
        let ca = pem("ca", (2100, 1, 1));
        let conf = kubeconfig::render(
            "https://10.0.0.1:6443",
            &ca,
            &Credential::CertFile(&paths.pem),
        );
        files::write_atomic(&paths.kubeconfig, &conf, 0o600).unwrap();
        let (_, kept) = kept_identity(&paths).expect("kept");
        assert_eq!(kept, text);
        let other = kubeconfig::render(
            "https://10.0.0.1:6443",
            &ca,
            &Credential::Token("abcdef.0123456789abcdef"),
        );
        files::write_atomic(&paths.kubeconfig, &other, 0o600).unwrap();
        assert!(
            kept_identity(&paths).is_none(),
            "a kubeconfig not naming the file"
        );
    }
}
