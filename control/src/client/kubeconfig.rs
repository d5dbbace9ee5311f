//! An API client built from a kubeconfig file (`--kubeconfig`), the way
//! kube-scheduler and kube-controller-manager are configured.

use std::path::{Path, PathBuf};

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading kubeconfig {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("building the client for {path}: {source}")]
    Build {
        path: PathBuf,
        #[source]
        source: kube::Error,
    },
}

async fn config(path: &Path) -> Result<kube::Config, ClientError> {
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|source| ClientError::Read {
        path: path.into(),
        source,
    })?;
    kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|source| ClientError::Config {
            path: path.into(),
            source,
        })
}

/// The CA certificates the kubeconfig at `path` trusts for its server, as
/// PEM (empty when it names none).
pub async fn server_ca_pem(path: &Path) -> Result<String, ClientError> {
    use base64::Engine as _;
    let mut pem = String::new();
    for der in config(path).await?.root_cert.unwrap_or_default() {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        for line in text.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    Ok(pem)
}

/// The URL of the server the kubeconfig at `path` names.
pub async fn server_url(path: &Path) -> Result<String, ClientError> {
    let url = config(path).await?.cluster_url.to_string();
    Ok(url.trim_end_matches('/').to_owned())
}

/// A client speaking to the server named by the kubeconfig at `path`.
pub async fn from_kubeconfig(path: &Path) -> Result<kube::Client, ClientError> {
    let mut cfg = config(path).await?;
    // Watches stay open for long; the default read timeout would cut them.
    cfg.read_timeout = None;
    kube::Client::try_from(cfg).map_err(|source| ClientError::Build {
        path: path.into(),
        source,
    })
}
