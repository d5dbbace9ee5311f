//! kubeconfig files for the admin and for components, like
//! `kubeadm kubeconfig user`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use super::certs::Pair;

/// Errors writing a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("serialising kubeconfig: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

/// Renders a kubeconfig for `user` talking to `server`.
pub fn render(
    server: &str,
    ca_pem: &str,
    user: &str,
    pair: &Pair,
) -> Result<String, KubeconfigError> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let context = format!("{user}@baton");
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "baton", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(&pair.cert_pem), "client-key-data": b64(&pair.key_pem)}}],
        "contexts": [{"name": context, "context": {"cluster": "baton", "user": user}}],
        "current-context": context,
        "preferences": {},
    });
    Ok(serde_yaml_ng::to_string(&doc)?)
}

/// Writes a kubeconfig file (mode 0600), creating parent directories.
pub fn write(path: &Path, contents: &str) -> Result<(), KubeconfigError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| KubeconfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, contents).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(())
}
