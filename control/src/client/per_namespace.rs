//! Controllers that keep an object in every namespace (the `default`
//! ServiceAccount, the `kube-root-ca.crt` ConfigMap): a namespace is
//! reconciled when it changes and when an object of the kept kind in it
//! does; a failed reconcile is retried after 2 s.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, TryFuture};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::debug;

use super::Change;
use super::informer::objects;

/// Runs `reconcile` for the namespaces in `namespaces` (changes from
/// `ns_rx`) and for the namespace of every object `touched` yields; `what`
/// names the controller in its logs.
pub async fn run<K, C, Fut>(
    what: &'static str,
    namespaces: Store<Namespace>,
    ns_rx: UnboundedReceiver<Change<Namespace>>,
    touched: impl Stream<Item = K> + Send + 'static,
    reconcile: impl FnMut(Arc<Namespace>, Arc<C>) -> Fut,
    ctx: Arc<C>,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
    Fut: TryFuture<Ok = Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
{
    Controller::for_stream(objects(ns_rx), namespaces)
        .watches_stream(touched.map(Ok::<_, watcher::Error>), |o: K| {
            o.namespace().map(|ns| ObjectRef::new(&ns))
        })
        .with_config(ControllerConfig::default().concurrency(2))
        .run(
            reconcile,
            move |_, e, _| {
                debug!(error = %e, "{what} failed; retrying");
                Action::requeue(Duration::from_secs(2))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
