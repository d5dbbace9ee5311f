//! The API server's client of the kubelets (kube-apiserver's
//! `pkg/kubelet/client`): where a node's kubelet listens — the Node's
//! preferred address and `status.daemonEndpoints.kubeletEndpoint.Port` —
//! and HTTPS to it, verifying the kubelet's serving certificate against
//! the cluster CA and presenting the API server's kubelet client
//! certificate (`apiserver-kubelet-client`, as kubeadm names it).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::certs::Pair;

/// kube-apiserver's default `--kubelet-port`, used when a Node reports none.
pub const DEFAULT_PORT: u16 = 10250;

/// Address types tried in order (`--kubelet-preferred-address-types`). The
/// kubeadm-recommended order: nodes' host names need not resolve where the
/// API server runs.
pub const DEFAULT_PREFERRED_ADDRESS_TYPES: &[&str] = &["InternalIP", "ExternalIP", "Hostname"];

/// How long connecting (TCP and TLS) to a kubelet may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the kubelet client. Displayed as Go's `net/http` words them,
/// since kube-apiserver returns those texts to clients.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("kubelet client TLS configuration: {0}")]
    Tls(String),
    #[error("dial tcp {addr}: {}", go_io_text(source))]
    Dial {
        addr: String,
        source: std::io::Error,
    },
    #[error("dial tcp {addr}: i/o timeout")]
    Timeout { addr: String },
    #[error("tls: {0}")]
    Handshake(std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// A connect error as Go's `net` package words it.
fn go_io_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connect: connection refused".into(),
        HostUnreachable => "connect: no route to host".into(),
        NetworkUnreachable => "connect: network is unreachable".into(),
        _ => e.to_string(),
    }
}

/// A node's kubelet endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `host:port`, bracketing IPv6 literals (Go's `net.JoinHostPort`).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The kubelet endpoint of a Node object: the first address of the first
/// preferred type that has one (a `Hostname` type also matches the
/// `kubernetes.io/hostname` label), and the kubelet's port. The error is
/// kube's `NoMatchError` text.
pub fn endpoint_of(node: &Value, preferred: &[String]) -> Result<Endpoint, String> {
    let addresses: Vec<(&str, &str)> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    Some((
                        x.get("type")?.as_str()?,
                        x.get("address")?.as_str().unwrap_or(""),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_PORT);
    for kind in preferred {
        if let Some((_, addr)) = addresses.iter().find(|(t, _)| t == kind) {
            return Ok(Endpoint {
                host: addr.to_string(),
                port,
            });
        }
        if kind == "Hostname"
            && let Some(h) = node
                .pointer("/metadata/labels/kubernetes.io~1hostname")
                .and_then(Value::as_str)
        {
            return Ok(Endpoint {
                host: h.to_string(),
                port,
            });
        }
    }
    let known: Vec<String> = addresses
        .iter()
        .map(|(t, a)| format!("{{{t} {a}}}"))
        .collect();
    Err(format!(
        "no preferred addresses found; known addresses: [{}]",
        known.join(" ")
    ))
}

/// HTTPS to kubelets.
pub struct KubeletClient {
    tls: TlsConnector,
    pub preferred_address_types: Vec<String>,
}

fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, KubeletError> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| KubeletError::Tls(e.to_string()))
}

impl KubeletClient {
    /// A client trusting `ca_pem` and authenticating with `client`.
    pub fn new(
        ca_pem: &str,
        client: &Pair,
        preferred_address_types: Vec<String>,
    ) -> Result<Self, KubeletError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in pem_certs(ca_pem)? {
            roots.add(c).map_err(|e| KubeletError::Tls(e.to_string()))?;
        }
        let key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut client.key_pem.as_bytes())
                .map_err(|e| KubeletError::Tls(e.to_string()))?
                .ok_or_else(|| KubeletError::Tls("no private key".into()))?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| KubeletError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(pem_certs(&client.cert_pem)?, key)
            .map_err(|e| KubeletError::Tls(e.to_string()))?;
        // Upgrades (exec, attach) need HTTP/1.1.
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            tls: TlsConnector::from(Arc::new(cfg)),
            preferred_address_types,
        })
    }

    /// A TLS connection to `endpoint`, its certificate checked for the
    /// address (or name) connected to.
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<TlsStream<TcpStream>, KubeletError> {
        let addr = endpoint.authority();
        let server_name = match endpoint.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(endpoint.host.clone())
                .map_err(|e| KubeletError::Tls(e.to_string()))?,
        };
        let dial = async {
            let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|source| KubeletError::Dial {
                    addr: addr.clone(),
                    source,
                })?;
            let _ = tcp.set_nodelay(true);
            self.tls
                .connect(server_name, tcp)
                .await
                .map_err(KubeletError::Handshake)
        };
        tokio::time::timeout(DIAL_TIMEOUT, dial)
            .await
            .map_err(|_| KubeletError::Timeout { addr: addr.clone() })?
    }

    /// Sends one HTTP/1.1 request (upgrades allowed) on a new connection.
    pub async fn send<B>(
        &self,
        endpoint: &Endpoint,
        req: Request<B>,
    ) -> Result<Response<Incoming>, KubeletError>
    where
        B: hyper::body::Body<Data = Bytes, Error = std::convert::Infallible> + Send + 'static,
    {
        let tls = self.connect(endpoint).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended");
            }
        });
        Ok(sender.send_request(req).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn preferred() -> Vec<String> {
        DEFAULT_PREFERRED_ADDRESS_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn endpoint_prefers_the_internal_ip_and_the_reported_port() {
        let node = json!({
            "metadata": {"labels": {"kubernetes.io/hostname": "n1"}},
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "n1"},
                    {"type": "InternalIP", "address": "10.0.0.5"},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10255}},
            },
        });
        assert_eq!(
            endpoint_of(&node, &preferred()).unwrap(),
            Endpoint {
                host: "10.0.0.5".into(),
                port: 10255
            }
        );
        // No port reported: kube's default.
        let node = json!({"status": {"addresses": [{"type": "InternalIP", "address": "fd00::1"}]}});
        let e = endpoint_of(&node, &preferred()).unwrap();
        assert_eq!(e.authority(), "[fd00::1]:10250");
        // Only a host name label.
        let node = json!({"metadata": {"labels": {"kubernetes.io/hostname": "n2"}}});
        assert_eq!(endpoint_of(&node, &preferred()).unwrap().host, "n2");
    }

    #[test]
    fn no_usable_address_is_kubes_no_match_error() {
        let node =
            json!({"status": {"addresses": [{"type": "InternalDNS", "address": "n.local"}]}});
        assert_eq!(
            endpoint_of(&node, &preferred()).unwrap_err(),
            "no preferred addresses found; known addresses: [{InternalDNS n.local}]"
        );
    }
}
