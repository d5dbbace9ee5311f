//! Token discovery, as `kubeadm join --discovery-token-ca-cert-hash` does
//! it: `kube-public/cluster-info` is read from the server without trusting
//! it; its kubeconfig must carry the bootstrap signer's signature made with
//! the token (so it comes from the cluster the token belongs to), and its
//! CA's public key must be one of the pinned hashes (so the server is not
//! an impostor who learned the token). The ConfigMap is then read again
//! over TLS verified with that CA. What is found becomes the bootstrap
//! kubeconfig: the server, the CA, the token.

use base64::Engine as _;
use baton_apimachinery::bootstrap_token::{
    self, CLUSTER_INFO, JWS_PREFIX, KUBECONFIG_KEY, PUBLIC_NAMESPACE,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use super::CertError;

/// The cluster a token and CA pins lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The API server as `cluster-info` names it.
    pub server: String,
    /// The cluster CA (PEM).
    pub ca_pem: String,
}

fn refused(message: impl Into<String>) -> CertError {
    CertError::Discovery(message.into())
}

/// Checks a `cluster-info` ConfigMap's `data` against the token and the
/// pins (`sha256:<hex>`, at least one), as kubeadm does.
pub fn verify(
    data: &std::collections::BTreeMap<String, String>,
    token: &str,
    pins: &[String],
) -> Result<Found, CertError> {
    let (id, secret) = bootstrap_token::parse(token).ok_or_else(|| {
        refused(format!(
            "the token {token:?} is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}"
        ))
    })?;
    let kubeconfig = data
        .get(KUBECONFIG_KEY)
        .ok_or_else(|| refused("there is no kubeconfig in the cluster-info ConfigMap"))?;
    let jws = data.get(&format!("{JWS_PREFIX}{id}")).ok_or_else(|| {
        refused(format!(
            "there is no JWS signed token in the cluster-info ConfigMap. This token id {id:?} is invalid for this cluster, can't connect"
        ))
    })?;
    if !bootstrap_token::verify_detached(jws, kubeconfig.as_bytes(), id, secret) {
        return Err(refused(
            "failed to verify JWS signature of received cluster info object, can't trust this API Server",
        ));
    }
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| refused(format!("the cluster-info kubeconfig: {e}")))?;
    let cluster = parsed
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| refused("the cluster-info kubeconfig names no cluster"))?;
    let server = cluster
        .server
        .ok_or_else(|| refused("the cluster-info kubeconfig names no server"))?;
    let ca = cluster
        .certificate_authority_data
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| refused("the cluster-info kubeconfig holds no CA certificate"))?;
    let hash = bootstrap_token::ca_cert_hash(ca.as_bytes())
        .map_err(|e| refused(format!("the cluster CA in cluster-info: {e}")))?;
    if !pins.iter().any(|p| p.eq_ignore_ascii_case(&hash)) {
        return Err(refused(format!(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{hash}\" are pinned"
        )));
    }
    Ok(Found { server, ca_pem: ca })
}

async fn cluster_info(config: kube::Config) -> Result<ConfigMap, CertError> {
    let client = kube::Client::try_from(config)?;
    Ok(Api::<ConfigMap>::namespaced(client, PUBLIC_NAMESPACE)
        .get(CLUSTER_INFO)
        .await?)
}

/// Finds the cluster of `server` with `token` and the CA `pins`.
pub async fn discover(server: &str, token: &str, pins: &[String]) -> Result<Found, CertError> {
    if pins.is_empty() {
        return Err(refused(
            "a CA public key hash (--discovery-token-ca-cert-hash sha256:…) is needed to trust the server",
        ));
    }
    let url: http::Uri = server
        .parse()
        .map_err(|e| refused(format!("--server {server:?}: {e}")))?;
    let mut insecure = kube::Config::new(url.clone());
    insecure.accept_invalid_certs = true;
    let unverified = cluster_info(insecure).await?;
    let found = verify(&unverified.data.clone().unwrap_or_default(), token, pins)?;
    // Read again, trusting only the CA just verified.
    let mut secure = kube::Config::new(url);
    secure.root_cert = Some(
        rustls_pemfile::certs(&mut found.ca_pem.as_bytes())
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| refused(format!("the cluster CA: {e}")))?,
    );
    let verified = cluster_info(secure).await?;
    if verified.data.unwrap_or_default().get(KUBECONFIG_KEY)
        != unverified.data.unwrap_or_default().get(KUBECONFIG_KEY)
    {
        return Err(refused(
            "the cluster-info read over verified TLS differs from the one first read",
        ));
    }
    tracing::info!(server = %found.server, "discovered the cluster from its signed cluster-info");
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const TOKEN: &str = "abcdef.0123456789abcdef";

    fn cluster_info(signed_with: &str) -> (BTreeMap<String, String>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let kubeconfig = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://10.0.0.1:6443\n  name: \"\"\nkind: Config\n",
            base64::engine::general_purpose::STANDARD.encode(&ca)
        );
        let (id, secret) = bootstrap_token::parse(signed_with).unwrap();
        let jws = bootstrap_token::sign_detached(kubeconfig.as_bytes(), id, secret);
        let hash = bootstrap_token::ca_cert_hash(ca.as_bytes()).unwrap();
        (
            BTreeMap::from([
                ("kubeconfig".to_owned(), kubeconfig),
                (format!("jws-kubeconfig-{id}"), jws),
            ]),
            hash,
        )
    }

    #[test]
    fn a_signed_cluster_info_with_a_pinned_ca_is_trusted() {
        let (data, hash) = cluster_info(TOKEN);
        let found = verify(
            &data,
            TOKEN,
            &[hash.to_uppercase().replace("SHA256", "sha256")],
        )
        .unwrap();
        assert_eq!(found.server, "https://10.0.0.1:6443");
        assert!(found.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn unsigned_forged_or_unpinned_cluster_info_is_refused() {
        let (data, hash) = cluster_info(TOKEN);
        let err = verify(
            &data,
            "zzzzzz.0123456789abcdef",
            std::slice::from_ref(&hash),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("there is no JWS signed token in the cluster-info ConfigMap. This token id \"zzzzzz\" is invalid"),
            "{err}"
        );
        let err = verify(
            &data,
            "abcdef.0123456789abcdee",
            std::slice::from_ref(&hash),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("failed to verify JWS signature"),
            "{err}"
        );
        let mut forged = data.clone();
        forged.insert(
            "kubeconfig".into(),
            data["kubeconfig"].replace("10.0.0.1", "10.6.6.6"),
        );
        let err = verify(&forged, TOKEN, &[hash]).unwrap_err();
        assert!(
            err.to_string().contains("failed to verify JWS signature"),
            "{err}"
        );
        let err = verify(&data, TOKEN, &["sha256:00".into()]).unwrap_err();
        assert!(
            err.to_string().contains("cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"sha256:"),
            "{err}"
        );
    }
}
