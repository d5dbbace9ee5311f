//! The EndpointSlice controller and the Endpoints controller: for every
//! Service with a selector, the EndpointSlices (labelled
//! `kubernetes.io/service-name` and managed-by
//! `endpointslice-controller.k8s.io`, owned by the Service) and the legacy
//! Endpoints object. Services without a selector are left alone (their
//! slices are someone else's). One kube-runtime `Controller` over Services,
//! triggered by pods (old and new labels), and by slices it manages.

pub mod desired;
pub mod endpoints;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::debug;

use self::desired::{
    MANAGED_BY, MANAGED_BY_LABEL, MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME_LABEL, SliceContent,
    desired_slices,
};
use super::podutil::controller_ref;
use crate::client::informer::{objects, tokio_stream_from};
use crate::client::{Change, is_status};

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
#[error("{verb} {what}: {source}")]
pub struct Error {
    verb: &'static str,
    what: String,
    #[source]
    source: kube::Error,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    endpoints: Store<Endpoints>,
}

fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

fn selects(sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Stores and change streams the controller uses.
pub struct Inputs {
    pub services: Store<Service>,
    pub service_rx: UnboundedReceiver<Change<Service>>,
    pub pods: Store<Pod>,
    pub pod_rx: UnboundedReceiver<Change<Pod>>,
    pub nodes: Store<Node>,
    pub slices: Store<EndpointSlice>,
    pub slice_rx: UnboundedReceiver<Change<EndpointSlice>>,
    pub endpoints: Store<Endpoints>,
}

/// Runs the controller.
pub async fn run(client: kube::Client, i: Inputs, workers: u16) {
    let ctx = Arc::new(Ctx {
        client,
        pods: i.pods,
        nodes: i.nodes,
        slices: i.slices,
        endpoints: i.endpoints,
    });
    let services = i.services.clone();
    // A pod matters to the services selecting its old and its new labels.
    let pods = tokio_stream_from(i.pod_rx).flat_map(|c| {
        let v: Vec<Result<Pod, kube::runtime::watcher::Error>> = match c {
            Change::Applied { old: Some(o), new } if o.metadata.labels != new.metadata.labels => {
                vec![Ok((*o).clone()), Ok((*new).clone())]
            }
            other => vec![Ok((**other.object()).clone())],
        };
        futures::stream::iter(v)
    });
    Controller::for_stream(objects(i.service_rx), i.services)
        .watches_stream(pods, move |p: Pod| {
            let ns = p.namespace().unwrap_or_default();
            services
                .state()
                .iter()
                .filter(|s| {
                    s.namespace().as_deref() == Some(ns.as_str())
                        && selector(s).is_some_and(|sel| selects(sel, p.labels()))
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(objects(i.slice_rx), |s: EndpointSlice| {
            let managed = s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY);
            let svc = s.labels().get(SERVICE_NAME_LABEL).cloned();
            svc.filter(|_| managed)
                .map(|n| ObjectRef::new(&n).within(&s.namespace().unwrap_or_default()))
        })
        .with_config(
            ControllerConfig::default()
                .concurrency(workers)
                .debounce(Duration::from_millis(50)),
        )
        .run(
            reconcile,
            |_, e, _| {
                debug!(error = %e, "endpoints sync failed; retrying");
                Action::requeue(Duration::from_secs(1))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn api_err(verb: &'static str, what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error { verb, what, source }
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let Some(sel) = selector(&svc) else {
        return Ok(Action::await_change());
    };
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let all = ctx.pods.state();
    let pods: Vec<&Pod> = all
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && selects(sel, p.labels()))
        .collect();
    let nodes = ctx.nodes.clone();
    let lookup = move |n: &str| nodes.get(&ObjectRef::new(n)).map(|n| (*n).clone());
    let want = desired_slices(&svc, &pods, &lookup, MAX_ENDPOINTS_PER_SLICE);
    sync_slices(&ctx, &svc, want).await?;
    sync_endpoints(&ctx, &svc, endpoints::subsets(&svc, &pods)).await?;
    let _ = name;
    Ok(Action::await_change())
}

fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| k.as_str() != SERVICE_NAME_LABEL && k.as_str() != MANAGED_BY_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    l.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    l.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    l
}

async fn sync_slices(ctx: &Ctx, svc: &Service, want: Vec<SliceContent>) -> Result<(), Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let mut existing: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns.as_str())
                && s.labels().get(SERVICE_NAME_LABEL) == Some(&name)
                && s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
                && s.metadata.deletion_timestamp.is_none()
        })
        .collect();
    existing.sort_by_key(|s| s.name_any());
    let labels = slice_labels(svc);
    let owner = controller_ref(svc);
    let mut used = vec![false; existing.len()];
    for content in want {
        let ports = (!content.ports.is_empty()).then(|| content.ports.clone());
        // Already as wanted: leave it.
        if let Some(i) = existing.iter().enumerate().position(|(i, s)| {
            !used[i]
                && s.endpoints == content.endpoints
                && s.ports == ports
                && s.metadata.labels.as_ref() == Some(&labels)
        }) {
            used[i] = true;
            continue;
        }
        // Reuse a slice with the same ports, else any spare one, else create.
        let reuse = existing
            .iter()
            .enumerate()
            .position(|(i, s)| !used[i] && s.ports == ports)
            .or_else(|| used.iter().position(|u| !u));
        match reuse {
            Some(i) => {
                used[i] = true;
                let mut s = (*existing[i]).clone();
                s.endpoints = content.endpoints;
                s.ports = ports;
                s.metadata.labels = Some(labels.clone());
                s.metadata.owner_references = Some(vec![owner.clone()]);
                api.replace(&s.name_any(), &PostParams::default(), &s)
                    .await
                    .map_err(api_err("update", s.name_any()))?;
            }
            None => {
                let s = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: Some(ns.clone()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![owner.clone()]),
                        ..Default::default()
                    },
                    address_type: "IPv4".into(),
                    endpoints: content.endpoints,
                    ports,
                };
                api.create(&PostParams::default(), &s)
                    .await
                    .map_err(api_err("create endpointslice for", name.clone()))?;
            }
        }
    }
    for (i, s) in existing.iter().enumerate() {
        if !used[i] {
            match api.delete(&s.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(api_err("delete", s.name_any())(e)),
            }
        }
    }
    Ok(())
}

async fn sync_endpoints(
    ctx: &Ctx,
    svc: &Service,
    subsets: Vec<k8s_openapi::api::core::v1::EndpointSubset>,
) -> Result<(), Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let subsets = (!subsets.is_empty()).then_some(subsets);
    let labels: BTreeMap<String, String> = svc.labels().clone();
    match ctx.endpoints.get(&ObjectRef::new(&name).within(&ns)) {
        Some(cur) => {
            if cur.subsets == subsets && cur.metadata.labels.clone().unwrap_or_default() == labels {
                return Ok(());
            }
            let mut e = (*cur).clone();
            e.subsets = subsets;
            e.metadata.labels = (!labels.is_empty()).then_some(labels);
            api.replace(&name, &PostParams::default(), &e)
                .await
                .map_err(api_err("update endpoints", name.clone()))?;
        }
        None => {
            let e = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: (!labels.is_empty()).then_some(labels),
                    ..Default::default()
                },
                subsets,
            };
            match api.create(&PostParams::default(), &e).await {
                Ok(_) => {}
                // Created meanwhile (cache behind): the next sync updates it.
                Err(e) if is_status(&e, 409) => {}
                Err(e) => return Err(api_err("create endpoints", name.clone())(e)),
            }
        }
    }
    Ok(())
}
