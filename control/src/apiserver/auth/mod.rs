//! Who a request comes from: the authenticated [`User`], service-account
//! tokens (issued and checked, and their issuer's discovery documents),
//! impersonation, and the authorizer that decides what the user may do.

pub mod authorizer;
pub mod bootstrap_tokens;
pub mod csr_admission;
pub mod escalation;
pub mod impersonation;
pub mod issuer_discovery;
pub mod node_restriction;
pub mod token_auth;
pub mod tokens;

/// An authenticated user.
#[derive(Debug, Clone, Default)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// Set for service accounts: the account's UID.
    pub uid: String,
    /// What else the credential says (for a service-account token: the
    /// pod and node it is bound to, its ID).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}
