//! Service-account tokens for projected volumes, as the kubelet's token
//! manager keeps them: requested through the TokenRequest API bound to the
//! pod, and reused until 80 % of their lifetime (or a day) has passed, so
//! a volume refresh does not ask for a new token each time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};

/// The lifetime asked for when a projection names none (the API's
/// default for `serviceAccountToken.expirationSeconds`).
const DEFAULT_SECONDS: i64 = 3600;
/// A token is renewed once this much of its lifetime has passed…
const RENEW_AT: f64 = 0.8;
/// …or once it is this old.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// What a token is for: pod UID, namespace, service account, audience,
/// lifetime in seconds.
type Key = (String, String, String, Option<String>, i64);

struct Issued {
    token: String,
    at: Instant,
    /// When it is to be renewed.
    renew: Duration,
}

/// The node's pods' tokens.
#[derive(Clone)]
pub struct Tokens {
    client: Client,
    issued: Arc<Mutex<HashMap<Key, Issued>>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

/// When a token valid for `seconds` is renewed.
fn renewal(seconds: i64) -> Duration {
    let lifetime = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    lifetime.mul_f64(RENEW_AT).min(MAX_AGE)
}

impl Tokens {
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self {
            client,
            issued: Arc::default(),
        }
    }

    /// A token of service account `sa` bound to `pod`, for `audience` (the
    /// API server's when `None`), valid for `expiration` seconds.
    pub async fn get(
        &self,
        pod: &Pod,
        namespace: &str,
        sa: &str,
        audience: Option<String>,
        expiration: Option<i64>,
    ) -> Result<String, kube::Error> {
        let seconds = expiration.unwrap_or(DEFAULT_SECONDS);
        let key: Key = (
            pod.metadata.uid.clone().unwrap_or_default(),
            namespace.to_owned(),
            sa.to_owned(),
            audience.clone(),
            seconds,
        );
        if let Some(issued) = self
            .issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && issued.at.elapsed() < issued.renew
        {
            return Ok(issued.token.clone());
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience.into_iter().collect(),
                expiration_seconds: Some(seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let at = Instant::now();
        let answer: TokenRequest = api
            .create_subresource("token", sa, &PostParams::default(), &request)
            .await?;
        let token = answer.status.map(|s| s.token).unwrap_or_default();
        // The lifetime the server granted, when it says.
        let granted = answer.spec.expiration_seconds.unwrap_or(seconds);
        self.issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key,
                Issued {
                    token: token.clone(),
                    at,
                    renew: renewal(granted),
                },
            );
        Ok(token)
    }

    /// Pod `uid` is gone: its tokens are dropped.
    pub fn forget(&self, uid: &str) {
        self.issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|key, _| key.0 != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_at_four_fifths_of_their_lifetime_or_after_a_day() {
        assert_eq!(renewal(3600), Duration::from_secs(2880));
        assert_eq!(renewal(3607), Duration::from_secs_f64(3607.0 * 0.8));
        assert_eq!(renewal(7 * 24 * 3600), MAX_AGE);
        assert_eq!(renewal(-1), Duration::ZERO);
    }
}
