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

/// A client speaking to the server named by the kubeconfig at `path`.
pub async fn from_kubeconfig(path: &Path) -> Result<kube::Client, ClientError> {
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|source| ClientError::Read {
        path: path.into(),
        source,
    })?;
    let mut cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|source| ClientError::Config {
                path: path.into(),
                source,
            })?;
    // Watches stay open for long; the default read timeout would cut them.
    cfg.read_timeout = None;
    kube::Client::try_from(cfg).map_err(|source| ClientError::Build {
        path: path.into(),
        source,
    })
}
