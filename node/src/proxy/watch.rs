//! Watching Services, EndpointSlices and this node's Node with kube-runtime
//! reflectors. Each reflector keeps a store (read by the sync loop) and
//! turns every watch event into a [`Change`] naming what changed; the store
//! is updated before the change is sent, so the sync loop always reads at
//! least that state.
//!
//! As kube-proxy does, Services labelled `service.kubernetes.io/service-proxy-name`
//! belong to another proxy and are not watched, nor are their
//! EndpointSlices or those of headless services
//! (`service.kubernetes.io/headless`).

use std::{sync::mpsc::Sender, time::SystemTime};

use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    core::v1::{Node, Service},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Client, Resource,
    runtime::{
        WatchStreamExt, reflector,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::warn;

use super::translate::ServiceRef;

/// Services for another proxy carry this label.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// EndpointSlices of headless services carry this label.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// When the change an EndpointSlice reflects happened (set by the
/// EndpointSlice controller).
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// A namespace and an EndpointSlice name.
pub type SliceKey = (String, String);

/// What a watch event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A Service was created, changed or deleted.
    Service(ServiceRef),
    /// An EndpointSlice was created or changed (`service`: the service it
    /// belongs to now) or deleted (`service: None`).
    Slice {
        key: SliceKey,
        service: Option<ServiceRef>,
        trigger: Option<SystemTime>,
    },
    /// A watch started over (the first list, or a relist after an expired
    /// resourceVersion): everything is looked at again.
    Resync,
    /// This node's Node changed.
    Node,
}

/// The reflectors' stores.
#[derive(Clone)]
pub struct Stores {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
    pub nodes: Store<Node>,
}

impl Stores {
    /// Waits until every store holds its first complete list.
    pub async fn ready(&self) {
        let _ = self.services.wait_until_ready().await;
        let _ = self.slices.wait_until_ready().await;
        let _ = self.nodes.wait_until_ready().await;
    }

    /// The Service `service`, if it exists.
    #[must_use]
    pub fn service(&self, service: &ServiceRef) -> Option<std::sync::Arc<Service>> {
        self.services
            .get(&ObjectRef::new(&service.name).within(&service.namespace))
    }

    /// The EndpointSlice `key`, if it exists.
    #[must_use]
    pub fn slice(&self, key: &SliceKey) -> Option<std::sync::Arc<EndpointSlice>> {
        self.slices.get(&ObjectRef::new(&key.1).within(&key.0))
    }
}

/// Starts the three watches; their changes go to `changes`.
pub fn start(client: &Client, node_name: &str, changes: &Sender<Change>) -> Stores {
    let not_ours = format!("!{SERVICE_PROXY_NAME_LABEL}");
    let services = spawn(
        Api::<Service>::all(client.clone()),
        watcher::Config::default().labels(&not_ours),
        changes.clone(),
        |service| Change::Service(ServiceRef::of_service(service)),
        |service| Change::Service(ServiceRef::of_service(service)),
    );
    let slices = spawn(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("!{HEADLESS_LABEL},{not_ours}")),
        changes.clone(),
        |slice| Change::Slice {
            key: slice_key(slice),
            service: ServiceRef::of_slice(slice),
            trigger: trigger_time(slice),
        },
        |slice| Change::Slice {
            key: slice_key(slice),
            service: None,
            trigger: None,
        },
    );
    let nodes = spawn(
        Api::<Node>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={node_name}")),
        changes.clone(),
        |_| Change::Node,
        |_| Change::Node,
    );
    Stores {
        services,
        slices,
        nodes,
    }
}

/// The namespace and name of `slice`.
#[must_use]
pub fn slice_key(slice: &EndpointSlice) -> SliceKey {
    (
        slice
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        slice.metadata.name.clone().unwrap_or_default(),
    )
}

/// The slice's `last-change-trigger-time`, if it has a valid one.
#[must_use]
pub fn trigger_time(slice: &EndpointSlice) -> Option<SystemTime> {
    let text = slice
        .metadata
        .annotations
        .as_ref()?
        .get(TRIGGER_TIME_ANNOTATION)?;
    let stamp: jiff::Timestamp = text.parse().ok()?;
    Some(SystemTime::from(stamp))
}

fn spawn<K>(
    api: Api<K>,
    config: watcher::Config,
    changes: Sender<Change>,
    applied: fn(&K) -> Change,
    deleted: fn(&K) -> Change,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config).default_backoff());
    tokio::spawn(forward(stream, changes, applied, deleted));
    store
}

async fn forward<K>(
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    changes: Sender<Change>,
    applied: fn(&K) -> Change,
    deleted: fn(&K) -> Change,
) where
    K: Resource,
    K::DynamicType: Default,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let change = match event {
            Ok(watcher::Event::Apply(object)) => applied(&object),
            Ok(watcher::Event::Delete(object)) => deleted(&object),
            Ok(watcher::Event::InitDone) => Change::Resync,
            // A (re)list in progress: the store switches to it at InitDone.
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
            Err(error) => {
                warn!(kind = %K::kind(&Default::default()), %error, "watch failed; retrying");
                continue;
            }
        };
        if changes.send(change).is_err() {
            return;
        }
    }
}
