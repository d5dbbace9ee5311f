//! Bootstrap tokens made through the API, as `kubeadm token create` makes
//! them: a random `<id>.<secret>` stored as the Secret
//! `kube-system/bootstrap-token-<id>` that may authenticate (a joining
//! node's CSRs) and sign `cluster-info` (its discovery), and the command a
//! node joins with.

use std::path::Path;

use baton_apimachinery::bootstrap_token::{
    self, HashError, NAMESPACE, SECRET_PREFIX, SECRET_TYPE, Usage,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::kubeconfig::{self, ClientError};

/// The group a node's token adds (kubeadm's `default-node-token`).
pub const DEFAULT_GROUP: &str = "system:bootstrappers:baton:default-node-token";

/// Why no token was made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("creating the token's Secret: {0}")]
    Api(#[from] kube::Error),
    #[error("the kubeconfig's CA: {0}")]
    Hash(#[from] HashError),
    #[error("the kubeconfig names no CA certificate")]
    NoCa,
}

/// What a new token is for.
#[derive(Debug, Clone)]
pub struct Request {
    /// Lifetime; `None` never expires.
    pub ttl: Option<std::time::Duration>,
    pub description: Option<String>,
    pub extra_groups: Vec<String>,
}

/// A token made, and how a node joins with it.
#[derive(Debug, Clone)]
pub struct Created {
    pub token: String,
    /// `sha256:<hex>` of the cluster CA's public key.
    pub ca_cert_hash: String,
    /// The API server the kubeconfig names.
    pub server: String,
}

impl Created {
    /// The command a new host runs to join.
    pub fn join_command(&self) -> String {
        format!(
            "baton-node join --server {} --token {} --discovery-token-ca-cert-hash {}",
            self.server, self.token, self.ca_cert_hash
        )
    }
}

/// Makes a token with the credentials of the kubeconfig at `path`.
pub async fn create(path: &Path, request: &Request) -> Result<Created, TokenError> {
    let client = kubeconfig::from_kubeconfig(path).await?;
    let ca = kubeconfig::server_ca_pem(path).await?;
    if ca.is_empty() {
        return Err(TokenError::NoCa);
    }
    let server = kubeconfig::server_url(path).await?;
    let token = bootstrap_token::generate();
    let (id, _) = bootstrap_token::parse(&token).expect("generated tokens parse");
    let expiration = request.ttl.map(|ttl| {
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(ttl.as_secs() as i64);
        at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    });
    let usage = Usage {
        expiration,
        description: request.description.clone(),
        authentication: true,
        signing: true,
        extra_groups: request.extra_groups.clone(),
    };
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!("{SECRET_PREFIX}{id}")),
            namespace: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        type_: Some(SECRET_TYPE.into()),
        string_data: bootstrap_token::secret_string_data(&token, &usage),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client, NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(Created {
        ca_cert_hash: bootstrap_token::ca_cert_hash(ca.as_bytes())?,
        token,
        server,
    })
}
