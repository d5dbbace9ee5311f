//! Bearer-token authentication with service-account tokens, as
//! kube-apiserver's service-account authenticator with
//! `--service-account-lookup`: a token is accepted when this server's key
//! signed it for one of the API server's audiences and it has not expired,
//! and when the ServiceAccount and the object it is bound to still exist
//! with the UIDs it names (a pod being deleted: until its grace period
//! ends). An accepted token is remembered for 10 s, as kube-apiserver's
//! token cache remembers successes, so a client's requests do not each
//! look the objects up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::User;
use super::tokens::{self, Claims, ObjectRef, ServiceAccountKey};
use crate::kinds;
use crate::registry::Registry;
use crate::registry::metadata::meta_str;

/// How long an accepted token is remembered.
const REMEMBER: Duration = Duration::from_secs(10);
/// Entries kept at most; expired ones are dropped when it is reached.
const MAX_REMEMBERED: usize = 4096;

/// Authenticates bearer tokens.
pub struct TokenAuthenticator {
    key: Arc<ServiceAccountKey>,
    registry: Arc<Registry>,
    accepted: Mutex<HashMap<String, (User, Instant)>>,
}

impl TokenAuthenticator {
    #[must_use]
    pub fn new(key: Arc<ServiceAccountKey>, registry: Arc<Registry>) -> Self {
        Self {
            key,
            registry,
            accepted: Mutex::default(),
        }
    }

    /// The user `token` authenticates, or `None` (401).
    pub async fn authenticate(&self, token: &str) -> Option<User> {
        let now = Instant::now();
        if let Some((user, until)) = self
            .accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            && *until > now
        {
            return Some(user.clone());
        }
        let claims = match self.key.verify(token, &[tokens::ISSUER]) {
            Ok(claims) => claims,
            Err(err) => {
                tracing::debug!(%err, "bearer token refused");
                return None;
            }
        };
        if let Err(why) = self.still_bound(&claims).await {
            tracing::debug!(subject = %claims.sub, why, "bearer token refused");
            return None;
        }
        let user = tokens::user_info(&claims);
        // Not past the token's own expiry.
        let left = u64::try_from(claims.exp - jiff::Timestamp::now().as_second()).unwrap_or(0);
        let until = now + REMEMBER.min(Duration::from_secs(left));
        let mut accepted = self.accepted.lock().unwrap_or_else(PoisonError::into_inner);
        if accepted.len() >= MAX_REMEMBERED {
            accepted.retain(|_, (_, until)| *until > now);
            if accepted.len() >= MAX_REMEMBERED {
                accepted.clear();
            }
        }
        accepted.insert(token.to_owned(), (user.clone(), until));
        Some(user)
    }

    /// Whether the objects the token names still exist as it names them.
    async fn still_bound(&self, claims: &Claims) -> Result<(), &'static str> {
        let private = &claims.kubernetes;
        let namespace = private.namespace.as_str();
        self.exists("serviceaccounts", namespace, &private.serviceaccount)
            .await
            .map_err(|()| "its service account was deleted")?;
        if let Some(pod) = &private.pod {
            let object = self
                .exists("pods", namespace, pod)
                .await
                .map_err(|()| "its pod was deleted")?;
            let deleted_at = object
                .pointer("/metadata/deletionTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            if deleted_at.is_some_and(|t| t < jiff::Timestamp::now()) {
                return Err("its pod was deleted");
            }
        }
        if let Some(secret) = &private.secret {
            self.exists("secrets", namespace, secret)
                .await
                .map_err(|()| "its secret was deleted")?;
        }
        // A token bound to a pod names the pod's node only for information,
        // as kube-apiserver's; one bound to a node needs it.
        if private.pod.is_none()
            && let Some(node) = &private.node
        {
            self.exists("nodes", "", node)
                .await
                .map_err(|()| "its node was deleted")?;
        }
        Ok(())
    }

    /// The object `reference` names, when it exists with that UID.
    async fn exists(
        &self,
        plural: &str,
        namespace: &str,
        reference: &ObjectRef,
    ) -> Result<Value, ()> {
        let resource = kinds::find("", "v1", plural).ok_or(())?;
        match self
            .registry
            .get_recent(resource, namespace, &reference.name)
            .await
        {
            Ok(Some(object)) if meta_str(&object, "uid") == reference.uid => Ok(object),
            _ => Err(()),
        }
    }
}
