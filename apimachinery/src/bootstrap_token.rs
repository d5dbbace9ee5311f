//! Bootstrap tokens and the discovery built on them, as kubeadm and
//! kube-controller-manager's bootstrap signer use them: a token
//! `<id>.<secret>` (six and sixteen characters of `[a-z0-9]`) lives in the
//! Secret `kube-system/bootstrap-token-<id>`; the ConfigMap
//! `kube-public/cluster-info` holds a kubeconfig naming the API server and
//! its CA, signed for each signing token with a detached HS256 JWS under
//! `jws-kubeconfig-<id>`. A joining node that knows a token and the CA's
//! public key hash (`sha256:<hex>` of its SubjectPublicKeyInfo) can read
//! that ConfigMap without trusting the server, check the signature with the
//! token, and check the CA against the hash.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest as _;

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The namespace of bootstrap token Secrets.
pub const NAMESPACE: &str = "kube-system";
/// The prefix of a token Secret's name; the token id follows.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The group of every bootstrap token's user.
pub const GROUP: &str = "system:bootstrappers";
/// The namespace of the public cluster information.
pub const PUBLIC_NAMESPACE: &str = "kube-public";
/// The ConfigMap joining nodes read.
pub const CLUSTER_INFO: &str = "cluster-info";
/// The key of `cluster-info` holding the kubeconfig.
pub const KUBECONFIG_KEY: &str = "kubeconfig";
/// The prefix of the keys of `cluster-info` holding signatures; the token
/// id follows.
pub const JWS_PREFIX: &str = "jws-kubeconfig-";

/// The id and secret of a token of the bootstrap format.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let valid = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (valid(id, 6) && valid(secret, 16)).then_some((id, secret))
}

/// A new random token.
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let part = |len: usize| -> String {
        (0..len)
            .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
            .collect()
    };
    let id = part(6);
    let secret = part(16);
    format!("{id}.{secret}")
}

/// What a token Secret says, besides its id and secret.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// RFC 3339 time after which the token is refused and deleted.
    pub expiration: Option<String>,
    pub description: Option<String>,
    /// May authenticate to the API server.
    pub authentication: bool,
    /// Signs `cluster-info`.
    pub signing: bool,
    /// Groups beyond `system:bootstrappers` (each `system:bootstrappers:…`).
    pub extra_groups: Vec<String>,
}

/// The `stringData` of the Secret holding `token` with `usage`, as
/// `kubeadm token create` writes it.
pub fn secret_string_data(token: &str, usage: &Usage) -> Option<BTreeMap<String, String>> {
    let (id, secret) = parse(token)?;
    let mut data = BTreeMap::from([
        ("token-id".to_owned(), id.to_owned()),
        ("token-secret".to_owned(), secret.to_owned()),
    ]);
    let flag = |on: bool| if on { "true" } else { "false" }.to_owned();
    data.insert(
        "usage-bootstrap-authentication".into(),
        flag(usage.authentication),
    );
    data.insert("usage-bootstrap-signing".into(), flag(usage.signing));
    if let Some(e) = &usage.expiration {
        data.insert("expiration".into(), e.clone());
    }
    if let Some(d) = &usage.description {
        data.insert("description".into(), d.clone());
    }
    if !usage.extra_groups.is_empty() {
        data.insert("auth-extra-groups".into(), usage.extra_groups.join(","));
    }
    Some(data)
}

fn protected_header(token_id: &str) -> String {
    let header = serde_json::json!({"alg": "HS256", "kid": token_id});
    URL_SAFE_NO_PAD.encode(header.to_string())
}

fn key(token_id: &str, token_secret: &str) -> ring::hmac::Key {
    ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        format!("{token_id}.{token_secret}").as_bytes(),
    )
}

/// RFC 7515's signing input: base64url(header) "." base64url(payload).
fn signing_input(header: &str, content: &[u8]) -> String {
    format!("{header}.{}", URL_SAFE_NO_PAD.encode(content))
}

/// The detached JWS (`<header>..<signature>`, HS256 keyed with the whole
/// token, `kid` the token id) of `content`, as the bootstrap signer writes
/// it under `jws-kubeconfig-<id>`.
pub fn sign_detached(content: &[u8], token_id: &str, token_secret: &str) -> String {
    let header = protected_header(token_id);
    let tag = ring::hmac::sign(
        &key(token_id, token_secret),
        signing_input(&header, content).as_bytes(),
    );
    format!("{header}..{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Whether `jws` is the detached signature of `content` made with the token
/// (compared in constant time).
pub fn verify_detached(jws: &str, content: &[u8], token_id: &str, token_secret: &str) -> bool {
    let mut parts = jws.split('.');
    let (Some(header), Some(""), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(header_json) = URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    let Ok(header_value) = serde_json::from_slice::<serde_json::Value>(&header_json) else {
        return false;
    };
    if header_value["alg"] != "HS256" || header_value["kid"] != token_id {
        return false;
    }
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    ring::hmac::verify(
        &key(token_id, token_secret),
        signing_input(header, content).as_bytes(),
        &signature,
    )
    .is_ok()
}

/// Why a certificate has no public key hash.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("no PEM certificate: {0}")]
    Pem(String),
    #[error("not an X.509 certificate: {0}")]
    X509(String),
}

/// The public key pin of a PEM certificate, as kubeadm's
/// `--discovery-token-ca-cert-hash` names it: `sha256:` and the hex SHA-256
/// of the DER SubjectPublicKeyInfo.
pub fn ca_cert_hash(cert_pem: &[u8]) -> Result<String, HashError> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(cert_pem).map_err(|e| HashError::Pem(e.to_string()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| HashError::X509(e.to_string()))?;
    Ok(format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(cert.public_key().raw))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_bootstrap_format() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse("abcdef.0123456789abcde"), None);
        assert_eq!(parse("eyJhbGciOi.x.y"), None);
        let token = generate();
        assert!(parse(&token).is_some(), "{token}");
        assert_ne!(generate(), token);
    }

    #[test]
    fn a_signature_verifies_with_its_token_only() {
        let content = b"apiVersion: v1\nkind: Config\n";
        let jws = sign_detached(content, "abcdef", "0123456789abcdef");
        let (header, rest) = jws.split_once("..").unwrap();
        assert!(!rest.contains('.'));
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).unwrap(),
            br#"{"alg":"HS256","kid":"abcdef"}"#
        );
        assert!(verify_detached(&jws, content, "abcdef", "0123456789abcdef"));
        assert!(!verify_detached(
            &jws,
            b"other",
            "abcdef",
            "0123456789abcdef"
        ));
        assert!(!verify_detached(
            &jws,
            content,
            "abcdef",
            "0123456789abcdeX"
        ));
        assert!(!verify_detached(
            &jws,
            content,
            "abcdeg",
            "0123456789abcdef"
        ));
        let attached = jws.replacen("..", &format!(".{}.", URL_SAFE_NO_PAD.encode(content)), 1);
        assert!(!verify_detached(
            &attached,
            content,
            "abcdef",
            "0123456789abcdef"
        ));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_jws_signing_input() {
        // RFC 7515's signing input: base64url(header) "." base64url(payload),
        // keyed with the whole token.
        let jws = sign_detached(b"x", "abcdef", "0123456789abcdef");
        let header = jws.split_once("..").unwrap().0;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"abcdef.0123456789abcdef");
        let tag = ring::hmac::sign(&key, format!("{header}.eA").as_bytes());
        assert!(jws.ends_with(&URL_SAFE_NO_PAD.encode(tag.as_ref())));
    }

    #[test]
    fn the_secret_data_is_what_kubeadm_writes() {
        let usage = Usage {
            expiration: Some("2030-01-01T00:00:00Z".into()),
            description: None,
            authentication: true,
            signing: true,
            extra_groups: vec!["system:bootstrappers:baton:default-node-token".into()],
        };
        let data = secret_string_data("abcdef.0123456789abcdef", &usage).unwrap();
        assert_eq!(data["token-id"], "abcdef");
        assert_eq!(data["token-secret"], "0123456789abcdef");
        assert_eq!(data["usage-bootstrap-authentication"], "true");
        assert_eq!(data["usage-bootstrap-signing"], "true");
        assert_eq!(data["expiration"], "2030-01-01T00:00:00Z");
        assert_eq!(
            data["auth-extra-groups"],
            "system:bootstrappers:baton:default-node-token"
        );
        assert!(!data.contains_key("description"));
        assert!(secret_string_data("nope", &usage).is_none());
    }

    #[test]
    fn the_ca_hash_is_the_sha256_of_the_public_key_info() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let hash = ca_cert_hash(cert.pem().as_bytes()).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        assert_eq!(
            hash,
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&spki)))
        );
        assert!(ca_cert_hash(b"not a certificate").is_err());
    }
}
