//! The ServiceAccount controller: a `default` ServiceAccount in every
//! active namespace, recreated if deleted.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::client::informer::tokio_stream_from;
use crate::client::{Change, is_status, per_namespace};

pub const DEFAULT: &str = "default";

#[derive(Debug, thiserror::Error)]
#[error("creating the default service account in {namespace}: {source}")]
pub struct Error {
    namespace: String,
    #[source]
    source: kube::Error,
}

struct Ctx {
    client: kube::Client,
    accounts: Store<ServiceAccount>,
}

/// Runs the controller.
pub async fn run(
    client: kube::Client,
    namespaces: Store<Namespace>,
    ns_rx: UnboundedReceiver<Change<Namespace>>,
    accounts: Store<ServiceAccount>,
    sa_rx: UnboundedReceiver<Change<ServiceAccount>>,
) {
    let ctx = Arc::new(Ctx { client, accounts });
    let deleted = tokio_stream_from(sa_rx).filter_map(|c| {
        futures::future::ready(match c {
            Change::Deleted(sa) if sa.name_any() == DEFAULT => Some((*sa).clone()),
            _ => None,
        })
    });
    per_namespace::run(
        "service account sync",
        namespaces,
        ns_rx,
        deleted,
        reconcile,
        ctx,
    )
    .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = ns.name_any();
    let active = super::namespace::is_active(&ns);
    if !active
        || ctx
            .accounts
            .get(&ObjectRef::new(DEFAULT).within(&name))
            .is_some()
    {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 409) || is_status(&e, 403) => {}
        Err(source) => {
            return Err(Error {
                namespace: name,
                source,
            });
        }
    }
    Ok(Action::await_change())
}
