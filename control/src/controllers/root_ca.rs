//! The root CA publisher (kube-controller-manager's
//! `root-ca-cert-publisher`): a `kube-root-ca.crt` ConfigMap in every
//! active namespace whose `ca.crt` is the bundle that verifies the API
//! server at its in-cluster addresses, put back when it is deleted or
//! changed. Pods read it through their service-account volume.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::client::informer::tokio_stream_from;
use crate::client::{Change, is_status, per_namespace};

/// The ConfigMap's name and key.
pub const NAME: &str = "kube-root-ca.crt";
pub const KEY: &str = "ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

#[derive(Debug, thiserror::Error)]
#[error("publishing {NAME} in {namespace}: {source}")]
pub struct Error {
    namespace: String,
    #[source]
    source: kube::Error,
}

struct Ctx {
    client: kube::Client,
    maps: Store<ConfigMap>,
    ca: String,
}

/// Runs the publisher for the bundle `ca` (PEM). `maps` holds the
/// ConfigMaps named [`NAME`].
pub async fn run(
    client: kube::Client,
    ca: String,
    namespaces: Store<Namespace>,
    ns_rx: UnboundedReceiver<Change<Namespace>>,
    maps: Store<ConfigMap>,
    map_rx: UnboundedReceiver<Change<ConfigMap>>,
) {
    let ctx = Arc::new(Ctx { client, maps, ca });
    let touched = tokio_stream_from(map_rx).map(|c| match c {
        Change::Applied { new, .. } => (*new).clone(),
        Change::Deleted(old) => (*old).clone(),
    });
    per_namespace::run(
        "root CA publishing",
        namespaces,
        ns_rx,
        touched,
        reconcile,
        ctx,
    )
    .await;
}

/// The ConfigMap as it should be, from `current` (its resourceVersion
/// and other fields kept), or `None` when `current` already is.
fn desired(namespace: &str, ca: &str, current: Option<&ConfigMap>) -> Option<ConfigMap> {
    let mut cm = current.cloned().unwrap_or_else(|| ConfigMap {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        ..Default::default()
    });
    let annotations = cm.metadata.annotations.get_or_insert_default();
    let mut changed = current.is_none();
    if annotations.get(DESCRIPTION_ANNOTATION).map(String::as_str) != Some(DESCRIPTION) {
        annotations.insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
        changed = true;
    }
    let data = cm.data.get_or_insert_default();
    if data.len() != 1 || data.get(KEY).map(String::as_str) != Some(ca) {
        *data = [(KEY.to_owned(), ca.to_owned())].into();
        changed = true;
    }
    changed.then_some(cm)
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let namespace = ns.name_any();
    let active = super::namespace::is_active(&ns);
    if !active {
        return Ok(Action::await_change());
    }
    let current = ctx.maps.get(&ObjectRef::new(NAME).within(&namespace));
    let Some(cm) = desired(&namespace, &ctx.ca, current.as_deref()) else {
        return Ok(Action::await_change());
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let written = if current.is_some() {
        api.replace(NAME, &PostParams::default(), &cm).await
    } else {
        api.create(&PostParams::default(), &cm).await
    };
    match written {
        // Created or changed meanwhile (the informer will bring it), or
        // the namespace began terminating.
        Ok(_) => {}
        Err(e) if is_status(&e, 409) || is_status(&e, 403) || is_status(&e, 404) => {}
        Err(source) => return Err(Error { namespace, source }),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_is_published_and_put_back_when_changed() {
        let created = desired("shop", "PEM", None).expect("created");
        assert_eq!(created.metadata.name.as_deref(), Some(NAME));
        assert_eq!(created.data.as_ref().unwrap()[KEY], "PEM");
        assert_eq!(
            created.metadata.annotations.as_ref().unwrap()[DESCRIPTION_ANNOTATION],
            DESCRIPTION
        );
        assert!(desired("shop", "PEM", Some(&created)).is_none());

        let mut edited = created.clone();
        edited.metadata.resource_version = Some("7".into());
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("extra".into(), "x".into());
        let repaired = desired("shop", "PEM", Some(&edited)).expect("repaired");
        assert_eq!(repaired.data.as_ref().unwrap().len(), 1);
        assert_eq!(repaired.metadata.resource_version.as_deref(), Some("7"));
    }
}
