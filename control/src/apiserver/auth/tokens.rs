//! Service-account tokens in kube-apiserver's format: JWTs signed with
//! the cluster's service-account key (ES256), whose subject is
//! `system:serviceaccount:<namespace>:<name>` and whose private
//! `kubernetes.io` claim names the ServiceAccount and the object the token
//! is bound to (a Pod, Secret or Node), so that deleting either
//! invalidates it.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::User;

/// The issuer, and the audience tokens are for unless a request names
/// others (kube-apiserver's `--service-account-issuer` and
/// `--api-audiences` as kubeadm sets them).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A token could not be made or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("service-account key: {0}")]
    Key(jsonwebtoken::errors::Error),
    #[error("signing: {0}")]
    Sign(jsonwebtoken::errors::Error),
    #[error("invalid token: {0}")]
    Invalid(jsonwebtoken::errors::Error),
}

/// An object a token names: its name and UID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Private {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Private,
}

impl Claims {
    /// Claims for ServiceAccount `private.serviceaccount` in
    /// `private.namespace`, valid for `audiences` from `now` (Unix
    /// seconds) for `seconds`.
    #[must_use]
    pub fn new(private: Private, audiences: Vec<String>, now: i64, seconds: i64) -> Self {
        Self {
            iss: ISSUER.into(),
            sub: subject(&private.namespace, &private.serviceaccount.name),
            aud: audiences,
            exp: now.saturating_add(seconds),
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: private,
        }
    }
}

/// The user name of a ServiceAccount.
#[must_use]
pub fn subject(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The groups of a ServiceAccount's user.
#[must_use]
pub fn groups(namespace: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".into(),
    ]
}

/// The user a token authenticates, with kube-apiserver's extra
/// information on what it is bound to.
#[must_use]
pub fn user_info(claims: &Claims) -> User {
    let private = &claims.kubernetes;
    let mut extra = std::collections::BTreeMap::new();
    let mut put = |key: &str, value: &str| {
        extra.insert(
            format!("authentication.kubernetes.io/{key}"),
            vec![value.to_owned()],
        );
    };
    if let Some(pod) = &private.pod {
        put("pod-name", &pod.name);
        put("pod-uid", &pod.uid);
    }
    if let Some(node) = &private.node {
        put("node-name", &node.name);
        put("node-uid", &node.uid);
    }
    put("credential-id", &format!("JTI={}", claims.jti));
    User {
        name: subject(&private.namespace, &private.serviceaccount.name),
        groups: groups(&private.namespace),
        uid: private.serviceaccount.uid.clone(),
        extra,
    }
}

/// A public key as a JSON Web Key, its members in the order go-jose (and
/// so kube-apiserver) writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    #[serde(rename = "use")]
    pub key_use: String,
    pub kty: String,
    pub kid: String,
    pub crv: String,
    pub alg: String,
    pub x: String,
    pub y: String,
}

/// The key tokens are signed and checked with.
pub struct ServiceAccountKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The key ID in a token's header: the SHA-256 of the public key's
    /// DER, base64url, as kube-apiserver derives it.
    kid: String,
    /// The public point, uncompressed (`04 || x || y`).
    public_point: Vec<u8>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// The signing key from an ECDSA P-256 key pair.
    pub fn new(pair: &rcgen::KeyPair) -> Result<Self, TokenError> {
        let encoding =
            EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).map_err(TokenError::Key)?;
        let decoding =
            DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes()).map_err(TokenError::Key)?;
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(pair),
        );
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        Ok(Self {
            encoding,
            decoding,
            kid,
            public_point: pair.public_key_raw().to_vec(),
        })
    }

    /// The key ID tokens carry in their header.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (RFC 7517, 7518 section 6.2), as
    /// kube-apiserver publishes it in the issuer's key set.
    #[must_use]
    pub fn public_jwk(&self) -> Jwk {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        // A P-256 point: the 0x04 tag, then x and y of 32 bytes each.
        let coordinates = self.public_point.get(1..).unwrap_or_default();
        let (x, y) = coordinates.split_at(coordinates.len() / 2);
        Jwk {
            key_use: "sig".into(),
            kty: "EC".into(),
            kid: self.kid.clone(),
            crv: "P-256".into(),
            alg: "ES256".into(),
            x: b64(x),
            y: b64(y),
        }
    }

    /// The signed token of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(TokenError::Sign)
    }

    /// The claims of `token` if this key signed it, it was issued by
    /// [`ISSUER`] for one of `audiences`, and it has not expired.
    pub fn verify(&self, token: &str, audiences: &[&str]) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(TokenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private() -> Private {
        Private {
            namespace: "shop".into(),
            serviceaccount: ObjectRef {
                name: "default".into(),
                uid: "sa-1".into(),
            },
            pod: Some(ObjectRef {
                name: "web".into(),
                uid: "pod-1".into(),
            }),
            secret: None,
            node: None,
        }
    }

    fn now() -> i64 {
        jiff::Timestamp::now().as_second()
    }

    #[test]
    fn a_signed_token_verifies_with_its_claims_and_the_kubernetes_format() {
        let key = ServiceAccountKey::new(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let claims = Claims::new(private(), vec![ISSUER.into()], now(), 3600);
        let token = key.sign(&claims).unwrap();
        assert_eq!(key.verify(&token, &[ISSUER]).unwrap(), claims);
        assert_eq!(claims.sub, "system:serviceaccount:shop:default");

        // The payload as other Kubernetes tooling reads it.
        let payload = token.split('.').nth(1).unwrap();
        let payload: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["kubernetes.io"]["pod"]["uid"], "pod-1");
        assert_eq!(
            payload["kubernetes.io"]["serviceaccount"]["name"],
            "default"
        );
        assert!(payload["kubernetes.io"].get("secret").is_none());
    }

    #[test]
    fn tokens_of_another_key_audience_or_past_their_expiry_are_refused() {
        let key = ServiceAccountKey::new(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let other = ServiceAccountKey::new(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let token = other
            .sign(&Claims::new(private(), vec![ISSUER.into()], now(), 3600))
            .unwrap();
        assert!(key.verify(&token, &[ISSUER]).is_err());

        let vault = key
            .sign(&Claims::new(private(), vec!["vault".into()], now(), 3600))
            .unwrap();
        assert!(key.verify(&vault, &[ISSUER]).is_err());
        assert!(key.verify(&vault, &["vault"]).is_ok());

        let expired = key
            .sign(&Claims::new(
                private(),
                vec![ISSUER.into()],
                now() - 7200,
                3600,
            ))
            .unwrap();
        assert!(key.verify(&expired, &[ISSUER]).is_err());
        assert!(key.verify("not-a-token", &[ISSUER]).is_err());
    }

    /// A P-256 key made with `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`.
    const FIXED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgemnAp00ZadFIOyy1
8pNg5IInaGTenCCrij7hIXNZb1+hRANCAAQLAAKcXgULMPKo8LnxPEeWYX31fbsY
RNA88ddaQ09+Jn13lpMx1rsgCPqrmTPQFHZkJrA3ugbaM4/ENIxljdk9
-----END PRIVATE KEY-----
";

    #[test]
    fn the_key_id_and_jwk_are_those_openssl_computes() {
        let key = ServiceAccountKey::new(&rcgen::KeyPair::from_pem(FIXED_KEY).unwrap()).unwrap();
        // openssl pkey -pubout -outform DER | openssl dgst -sha256 -binary
        // | base64 | tr '+/' '-_' | tr -d '='
        assert_eq!(key.kid(), "lf0gqIDVWt28oboXARdS3STCsJBidjrUcLYd-qHpwgg");
        // The last 64 bytes of the SubjectPublicKeyInfo's DER, halved and
        // base64url-encoded without padding.
        let jwk = key.public_jwk();
        assert_eq!(jwk.x, "CwACnF4FCzDyqPC58TxHlmF99X27GETQPPHXWkNPfiY");
        assert_eq!(jwk.y, "fXeWkzHWuyAI-quZM9AUdmQmsDe6Btozj8Q0jGWN2T0");
        assert_eq!(jwk.kid, key.kid());
        assert_eq!(
            serde_json::to_value(&jwk).unwrap(),
            serde_json::json!({"use": "sig", "kty": "EC", "kid": key.kid(), "crv": "P-256",
                "alg": "ES256", "x": jwk.x, "y": jwk.y})
        );
    }

    #[test]
    fn a_token_names_its_key_and_verifies_with_the_published_jwk() {
        let key = ServiceAccountKey::new(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let token = key
            .sign(&Claims::new(private(), vec![ISSUER.into()], now(), 3600))
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(key.kid()));

        let jwk = key.public_jwk();
        let decoding = DecodingKey::from_ec_components(&jwk.x, &jwk.y).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        let claims = jsonwebtoken::decode::<Claims>(&token, &decoding, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims.sub, "system:serviceaccount:shop:default");

        let other = ServiceAccountKey::new(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let other_jwk = other.public_jwk();
        let wrong = DecodingKey::from_ec_components(&other_jwk.x, &other_jwk.y).unwrap();
        assert!(jsonwebtoken::decode::<Claims>(&token, &wrong, &validation).is_err());
    }
}
