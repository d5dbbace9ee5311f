//! The token cleaner (kube-controller-manager's `tokencleaner`): bootstrap
//! token Secrets in kube-system are deleted once their `expiration` has
//! passed, so an expired token is gone, not only refused.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use kube::runtime::reflector::Store;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};

use crate::apiserver::auth::bootstrap_tokens::{NAMESPACE, expired};
use crate::client::Change;

/// How often expirations are looked at when nothing changes.
const PERIOD: Duration = Duration::from_secs(10);

/// Runs the cleaner over `secrets` (the bootstrap token Secrets of
/// kube-system).
pub async fn run(
    client: kube::Client,
    secrets: Store<Secret>,
    mut rx: UnboundedReceiver<Change<Secret>>,
) {
    let api: Api<Secret> = Api::namespaced(client, NAMESPACE);
    loop {
        if !crate::client::informer::synced(&secrets).await {
            return;
        }
        let now = jiff::Timestamp::now().as_second();
        for secret in secrets.state() {
            let Ok(value) = serde_json::to_value(secret.as_ref()) else {
                continue;
            };
            if secret.metadata.deletion_timestamp.is_none() && expired(&value, now) {
                let name = secret.name_any();
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => info!(secret = %name, "deleted an expired bootstrap token"),
                    Err(e) => {
                        warn!(secret = %name, error = %e, "deleting an expired bootstrap token failed")
                    }
                }
            }
        }
        tokio::select! {
            change = rx.recv() => if change.is_none() { return },
            () = tokio::time::sleep(PERIOD) => {}
        }
    }
}
