//! The HTTPS listener: TLS with rustls (HTTP/2 and HTTP/1.1 by ALPN),
//! x509 client-certificate authentication against the cluster CA (CN is
//! the user, O the groups), and one hyper connection per client.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::auth::User;
use super::certs::{self, Pair};
use super::handlers::{self, Api};

/// Errors setting up the listener.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reading PEM: {0}")]
    Pem(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Pem(e.to_string()))
}

fn pem_key(pem: &str) -> Result<PrivateKeyDer<'static>, ServeError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| ServeError::Pem(e.to_string()))?
        .ok_or_else(|| ServeError::Pem("no private key".into()))
}

/// The rustls server configuration: serving pair, client certificates
/// verified against the CA but optional (anonymous requests reach the
/// handler, which answers 401).
pub fn tls_config(ca_pem: &str, serving: &Pair) -> Result<Arc<ServerConfig>, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in pem_certs(ca_pem)? {
        roots.add(c).map_err(ServeError::Tls)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServeError::Verifier(e.to_string()))?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem_certs(&serving.cert_pem)?, pem_key(&serving.key_pem)?)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Binds the secure port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves connections until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, api: Arc<Api>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let user = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| certs::subject_of(c))
                .map(|(name, mut groups)| {
                    // Every authenticated user is in this group too, as
                    // kube-apiserver's authenticators add it.
                    if !groups.iter().any(|g| g == "system:authenticated") {
                        groups.push("system:authenticated".into());
                    }
                    User {
                        name,
                        groups,
                        ..User::default()
                    }
                });
            let svc = service_fn(move |req| {
                handlers::handle(api.clone(), req, user.clone(), Some(peer.ip()))
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(1000);
            // Upgrades: pods/exec and pods/attach (SPDY, websockets).
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await
            {
                debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}
