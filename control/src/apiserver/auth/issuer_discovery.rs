//! Service-account issuer discovery as kube-apiserver serves it: an
//! OpenID Connect provider configuration at [`OPENID_CONFIG_PATH`] naming
//! the issuer of service-account tokens and where its keys are, and the
//! key set at [`JWKS_PATH`] that verifies them. Relying parties outside
//! the cluster (cloud IAM, Vault) check service-account tokens with these
//! two documents alone. Both are rendered once, at start.

use bytes::Bytes;
use serde::Serialize;

use super::tokens::{Jwk, ServiceAccountKey};

/// Where the provider configuration is served.
pub const OPENID_CONFIG_PATH: &str = "/.well-known/openid-configuration";
/// Where the key set is served.
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// The configuration's media type.
pub const CONFIG_CONTENT_TYPE: &str = "application/json";
/// The key set's media type (RFC 7517 section 8.5.1).
pub const JWKS_CONTENT_TYPE: &str = "application/jwk-set+json";
/// How long clients may cache either document, in seconds: the keys are
/// read once at start, so kube-apiserver's hour for static keys.
pub const MAX_AGE_SECONDS: u32 = 3600;

/// The discovery documents could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("service-account-jwks-uri requires https scheme, parsed as: {0}")]
    JwksUri(String),
    #[error("issuer URL must use https scheme, got: {0}")]
    Issuer(String),
    #[error("could not marshal issuer discovery JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The provider metadata kube-apiserver publishes (a subset of OpenID
/// Connect Discovery's: what a relying party needs to check ID tokens).
#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    jwks_uri: &'a str,
    response_types_supported: [&'a str; 1],
    subject_types_supported: [&'a str; 1],
    id_token_signing_alg_values_supported: Vec<String>,
}

#[derive(Serialize)]
struct KeySet {
    keys: Vec<Jwk>,
}

/// The two documents, rendered.
#[derive(Debug, Clone)]
pub struct IssuerDiscovery {
    config: Bytes,
    keyset: Bytes,
}

/// The JWKS URI when `--service-account-jwks-uri` is not given: the key
/// set's path at the server's external address (`host:port`).
#[must_use]
pub fn default_jwks_uri(external_address: &str) -> String {
    format!("https://{external_address}{JWKS_PATH}")
}

fn is_https(uri: &str) -> bool {
    uri.parse::<http::Uri>()
        .is_ok_and(|u| u.scheme_str() == Some("https") && u.host().is_some())
}

impl IssuerDiscovery {
    /// The documents for tokens of `issuer` verified by `keys`, whose set
    /// is published at `jwks_uri`; both URLs must be `https`.
    pub fn new(
        issuer: &str,
        jwks_uri: &str,
        keys: &[&ServiceAccountKey],
    ) -> Result<Self, DiscoveryError> {
        if !is_https(issuer) {
            return Err(DiscoveryError::Issuer(issuer.to_owned()));
        }
        if !is_https(jwks_uri) {
            return Err(DiscoveryError::JwksUri(jwks_uri.to_owned()));
        }
        let keys: Vec<Jwk> = keys.iter().map(|k| k.public_jwk()).collect();
        let mut algs: Vec<String> = keys.iter().map(|k| k.alg.clone()).collect();
        algs.sort();
        algs.dedup();
        let config = serde_json::to_vec(&Metadata {
            issuer,
            jwks_uri,
            response_types_supported: ["id_token"],
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: algs,
        })?;
        let keyset = serde_json::to_vec(&KeySet { keys })?;
        Ok(Self {
            config: config.into(),
            keyset: keyset.into(),
        })
    }

    /// The provider configuration, JSON.
    #[must_use]
    pub fn config(&self) -> Bytes {
        self.config.clone()
    }

    /// The key set, JSON.
    #[must_use]
    pub fn keyset(&self) -> Bytes {
        self.keyset.clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::apiserver::auth::tokens::ISSUER;

    fn key() -> ServiceAccountKey {
        ServiceAccountKey::new(&rcgen::KeyPair::generate().unwrap()).unwrap()
    }

    #[test]
    fn the_configuration_names_the_issuer_its_key_set_and_algorithm() {
        let key = key();
        let uri = default_jwks_uri("10.0.0.1:6443");
        assert_eq!(uri, "https://10.0.0.1:6443/openid/v1/jwks");
        let docs = IssuerDiscovery::new(ISSUER, &uri, &[&key]).unwrap();
        let config: Value = serde_json::from_slice(&docs.config()).unwrap();
        assert_eq!(
            config,
            json!({
                "issuer": ISSUER,
                "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            })
        );
        // Members in upstream's order.
        let text = String::from_utf8(docs.config().to_vec()).unwrap();
        assert!(text.starts_with(r#"{"issuer":"#), "{text}");

        let keyset: Value = serde_json::from_slice(&docs.keyset()).unwrap();
        let keys = keyset["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kid"], key.kid());
        assert_eq!(keys[0]["kty"], "EC");
        assert_eq!(keys[0]["crv"], "P-256");
        assert_eq!(keys[0]["use"], "sig");
        assert_eq!(keys[0]["alg"], "ES256");
    }

    #[test]
    fn urls_other_than_https_are_refused() {
        let key = key();
        assert!(matches!(
            IssuerDiscovery::new(ISSUER, "http://keys.example/jwks", &[&key]),
            Err(DiscoveryError::JwksUri(_))
        ));
        assert!(matches!(
            IssuerDiscovery::new("not a url", "https://keys.example/jwks", &[&key]),
            Err(DiscoveryError::Issuer(_))
        ));
        assert!(IssuerDiscovery::new(ISSUER, "https://keys.example/jwks", &[&key]).is_ok());
    }
}
