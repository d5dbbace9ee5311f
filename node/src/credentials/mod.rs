//! The node's credentials towards the API server and its callers, kept as
//! the kubelet's certificate manager keeps them: keys made on the node and
//! certificates issued through CertificateSigningRequests, so the cluster
//! CA's key never reaches a node.
//!
//! - [`discovery`]: `baton-node join` — the cluster's CA and address found
//!   from a bootstrap token and the CA's public key hash (kubeadm's token
//!   discovery), written as a bootstrap kubeconfig;
//! - [`client_cert`]: the kubelet's client certificate, bootstrapped from
//!   that kubeconfig's token, rotated before it expires, and served to the
//!   API client without restarting it;
//! - [`csr`]: asking for a certificate and waiting for it;
//! - [`files`]: certificate files on disk and their lifetimes;
//! - [`kubeconfig`]: the kubeconfig files the node writes and reads.

pub mod client_cert;
pub mod csr;
pub mod discovery;
pub mod files;
pub mod kubeconfig;

use std::path::PathBuf;

/// Why no credential was had this time.
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
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("{0}")]
    Discovery(String),
}
