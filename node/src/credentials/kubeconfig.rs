//! The node's kubeconfig files: written as the kubelet writes its own
//! (one cluster, one user, one context, named `default-…`), and read for
//! what the node needs from them.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use super::CertError;

/// How the kubeconfig's user authenticates.
pub enum Credential<'a> {
    /// A bearer token (a bootstrap token).
    Token(&'a str),
    /// A file holding the client certificate and its key (PEM).
    CertFile(&'a Path),
}

/// A kubeconfig for `server`, trusting `ca_pem`, as `credential`'s user.
/// Written as JSON, which every kubeconfig reader takes as YAML.
pub fn render(server: &str, ca_pem: &str, credential: &Credential<'_>) -> String {
    let user = match credential {
        Credential::Token(token) => json!({"token": token}),
        Credential::CertFile(path) => json!({
            "client-certificate": path,
            "client-key": path,
        }),
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": {
            "server": server,
            "certificate-authority-data":
                base64::engine::general_purpose::STANDARD.encode(ca_pem),
        }}],
        "users": [{"name": "default-auth", "user": user}],
        "contexts": [{"name": "default-context", "context": {
            "cluster": "default-cluster", "user": "default-auth",
        }}],
        "current-context": "default-context",
    });
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}

fn read(path: &Path) -> Result<kube::config::Kubeconfig, CertError> {
    kube::config::Kubeconfig::read_from(path)
        .map_err(|e| CertError::Kubeconfig(format!("{}: {e}", path.display())))
}

/// The client configuration of the kubeconfig at `path`.
pub async fn config(path: &Path) -> Result<kube::Config, CertError> {
    kube::Config::from_custom_kubeconfig(read(path)?, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| CertError::Kubeconfig(format!("{}: {e}", path.display())))
}

/// The server URL and CA (PEM) of the kubeconfig at `path`.
pub async fn server_and_ca(path: &Path) -> Result<(String, String), CertError> {
    let config = config(path).await?;
    let mut ca = String::new();
    for der in config.root_cert.unwrap_or_default() {
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        ca.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in text.as_bytes().chunks(64) {
            ca.push_str(&String::from_utf8_lossy(line));
            ca.push('\n');
        }
        ca.push_str("-----END CERTIFICATE-----\n");
    }
    let server = config.cluster_url.to_string();
    Ok((server.trim_end_matches('/').to_owned(), ca))
}

/// The current user of the kubeconfig at `path`.
fn current_user(path: &Path) -> Option<kube::config::AuthInfo> {
    let kubeconfig = read(path).ok()?;
    let user = kubeconfig
        .contexts
        .iter()
        .find(|c| Some(&c.name) == kubeconfig.current_context.as_ref())
        .and_then(|c| c.context.as_ref()?.user.clone())?;
    kubeconfig
        .auth_infos
        .into_iter()
        .find(|a| a.name == user)?
        .auth_info
}

/// The file the current user's client certificate is read from, if the
/// kubeconfig names one (relative to the kubeconfig's directory).
pub fn client_cert_file(path: &Path) -> Option<PathBuf> {
    let file = current_user(path)?.client_certificate?;
    Some(match path.parent() {
        Some(dir) if Path::new(&file).is_relative() => dir.join(file),
        _ => file.into(),
    })
}

/// The current user's client certificate (PEM) in the kubeconfig at
/// `path`, from its file or its inline data.
pub fn client_cert_pem(path: &Path) -> Option<String> {
    if let Some(data) = current_user(path)?.client_certificate_data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    std::fs::read_to_string(client_cert_file(path)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rendered_kubeconfig_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let pem = dir.path().join("client.pem");
        std::fs::write(&pem, format!("{ca}{}", key.serialize_pem())).unwrap();
        let path = dir.path().join("kubelet.conf");
        let text = render("https://10.0.0.1:6443", &ca, &Credential::CertFile(&pem));
        std::fs::write(&path, text).unwrap();
        let (server, read_ca) = server_and_ca(&path).await.unwrap();
        assert_eq!(server, "https://10.0.0.1:6443");
        assert_eq!(read_ca.trim(), ca.trim());
        assert_eq!(client_cert_file(&path), Some(pem.clone()));
        let cert = client_cert_pem(&path).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");

        let token = dir.path().join("bootstrap.conf");
        std::fs::write(
            &token,
            render(
                "https://10.0.0.1:6443",
                &ca,
                &Credential::Token("abcdef.0123456789abcdef"),
            ),
        )
        .unwrap();
        assert_eq!(client_cert_pem(&token), None);
        let config = config(&token).await.unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://10.0.0.1:6443/");
    }
}
