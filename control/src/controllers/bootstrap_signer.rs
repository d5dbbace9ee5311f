//! The bootstrap signer (kube-controller-manager's `bootstrapsigner`):
//! `kube-public/cluster-info` carries, for every bootstrap token that may
//! sign (`usage-bootstrap-signing: true`, not expired, not being deleted),
//! a detached JWS of its `kubeconfig` under `jws-kubeconfig-<token id>`.
//! A joining node that holds a token checks with it that the cluster
//! information it read without trusting the server is the cluster's.
//! Signatures of tokens that are gone, expired or no longer sign are
//! removed.

use std::collections::BTreeMap;
use std::time::Duration;

use baton_apimachinery::bootstrap_token::{
    CLUSTER_INFO, JWS_PREFIX, KUBECONFIG_KEY, PUBLIC_NAMESPACE, sign_detached,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::Store;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};

use crate::apiserver::auth::bootstrap_tokens::{data, expired};
use crate::client::Change;
use crate::client::informer::synced;

/// How often expirations are looked at when nothing changes.
const PERIOD: Duration = Duration::from_secs(10);

/// The signatures `cluster-info` should carry for `kubeconfig`, by key.
pub fn signatures(
    kubeconfig: &str,
    tokens: &[serde_json::Value],
    now: i64,
) -> BTreeMap<String, String> {
    tokens
        .iter()
        .filter(|t| {
            t.pointer("/metadata/deletionTimestamp")
                .is_none_or(serde_json::Value::is_null)
                && !expired(t, now)
                && data(t, "usage-bootstrap-signing").as_deref() == Some("true")
        })
        .filter_map(|t| {
            let id = data(t, "token-id")?;
            let secret = data(t, "token-secret")?;
            let jws = sign_detached(kubeconfig.as_bytes(), &id, &secret);
            Some((format!("{JWS_PREFIX}{id}"), jws))
        })
        .collect()
}

/// The data `cluster-info` should have, when it differs from `current`:
/// everything but the signatures kept, the signatures replaced.
pub fn signed_data(
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let mut next: BTreeMap<String, String> = current
        .iter()
        .filter(|(k, _)| !k.starts_with(JWS_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    next.extend(wanted.iter().map(|(k, v)| (k.clone(), v.clone())));
    (next != *current).then_some(next)
}

/// One pass: re-signs `cluster-info` if its signatures are not the tokens'.
async fn sync(api: &Api<ConfigMap>, info: &Store<ConfigMap>, tokens: &Store<Secret>) {
    let Some(config_map) = info
        .state()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(CLUSTER_INFO))
    else {
        return;
    };
    let current = config_map.data.clone().unwrap_or_default();
    let Some(kubeconfig) = current.get(KUBECONFIG_KEY) else {
        return;
    };
    let now = jiff::Timestamp::now().as_second();
    let secrets: Vec<serde_json::Value> = tokens
        .state()
        .iter()
        .filter_map(|s| serde_json::to_value(s.as_ref()).ok())
        .collect();
    let Some(next) = signed_data(&current, &signatures(kubeconfig, &secrets, now)) else {
        return;
    };
    let mut updated = (*config_map).clone();
    let count = next.keys().filter(|k| k.starts_with(JWS_PREFIX)).count();
    updated.data = Some(next);
    match api
        .replace(CLUSTER_INFO, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => info!(signatures = count, "signed cluster-info"),
        // A conflict is retried on the next change.
        Err(e) => warn!(error = %e, "signing cluster-info failed"),
    }
}

/// Runs the signer over `info` (the `cluster-info` ConfigMap) and `tokens`
/// (the bootstrap token Secrets of kube-system).
pub async fn run(
    client: kube::Client,
    info: Store<ConfigMap>,
    mut info_rx: UnboundedReceiver<Change<ConfigMap>>,
    tokens: Store<Secret>,
    mut token_rx: UnboundedReceiver<Change<Secret>>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, PUBLIC_NAMESPACE);
    loop {
        if !synced(&info).await || !synced(&tokens).await {
            return;
        }
        sync(&api, &info, &tokens).await;
        tokio::select! {
            change = info_rx.recv() => if change.is_none() { return },
            change = token_rx.recv() => if change.is_none() { return },
            () = tokio::time::sleep(PERIOD) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use baton_apimachinery::bootstrap_token::verify_detached;
    use serde_json::json;

    fn token(id: &str, signing: &str, expiration: &str) -> serde_json::Value {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        json!({
            "metadata": {"name": format!("bootstrap-token-{id}")},
            "data": {
                "token-id": b64(id),
                "token-secret": b64("0123456789abcdef"),
                "usage-bootstrap-signing": b64(signing),
                "expiration": b64(expiration),
            },
        })
    }

    #[test]
    fn every_signing_token_that_has_not_expired_signs() {
        let tokens = [
            token("aaaaaa", "true", "2100-01-01T00:00:00Z"),
            token("bbbbbb", "false", "2100-01-01T00:00:00Z"),
            token("cccccc", "true", "2000-01-01T00:00:00Z"),
        ];
        let now = jiff::Timestamp::now().as_second();
        let sigs = signatures("kubeconfig text", &tokens, now);
        assert_eq!(
            sigs.keys().collect::<Vec<_>>(),
            ["jws-kubeconfig-aaaaaa"],
            "only the unexpired signing token"
        );
        assert!(verify_detached(
            &sigs["jws-kubeconfig-aaaaaa"],
            b"kubeconfig text",
            "aaaaaa",
            "0123456789abcdef"
        ));
        let mut deleting = token("dddddd", "true", "2100-01-01T00:00:00Z");
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(signatures("k", &[deleting], now).is_empty());
    }

    #[test]
    fn stale_signatures_are_replaced_and_the_rest_is_kept() {
        let current = BTreeMap::from([
            ("kubeconfig".to_owned(), "k".to_owned()),
            ("jws-kubeconfig-old111".to_owned(), "x..y".to_owned()),
        ]);
        let wanted = BTreeMap::from([("jws-kubeconfig-new111".to_owned(), "a..b".to_owned())]);
        let next = signed_data(&current, &wanted).unwrap();
        assert_eq!(
            next,
            BTreeMap::from([
                ("kubeconfig".to_owned(), "k".to_owned()),
                ("jws-kubeconfig-new111".to_owned(), "a..b".to_owned()),
            ])
        );
        assert_eq!(signed_data(&next, &wanted), None, "nothing to write");
    }
}
