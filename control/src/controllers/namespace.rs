//! The namespace controller: a namespace being deleted (deletionTimestamp
//! set, `kubernetes` in spec.finalizers) has everything in it deleted
//! through the API — every namespaced resource discovery reports — with
//! the status conditions kube-controller-manager writes
//! (NamespaceDeletionDiscoveryFailure, NamespaceDeletionGroupVersionParsingFailure,
//! NamespaceDeletionContentFailure, NamespaceContentRemaining,
//! NamespaceFinalizersRemaining); once nothing remains, the `kubernetes`
//! finalizer is removed through `/finalize` and the API server removes the
//! namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info};

use super::resource_discovery::Deletable;
use crate::client::informer::objects;
use crate::client::{Change, is_status};

const FINALIZER: &str = "kubernetes";

#[derive(Debug, thiserror::Error)]
#[error("{verb} namespace {name}: {source}")]
pub struct Error {
    verb: &'static str,
    name: String,
    #[source]
    source: kube::Error,
}

struct Ctx {
    client: kube::Client,
    resources: Vec<Deletable>,
}

/// What is left after a deletion pass: per resource, instances and the
/// finalizers they still carry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Remaining {
    pub counts: BTreeMap<String, usize>,
    pub finalizers: BTreeMap<String, usize>,
    pub errors: Vec<String>,
}

/// The conditions for a pass's result (`updateNamespaceStatusFunc`'s texts).
/// Whether objects may still be created in `ns`: not being deleted.
#[must_use]
pub fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

pub fn conditions(r: &Remaining, now: jiff::Timestamp) -> Vec<NamespaceCondition> {
    let c = |t: &str, status: bool, reason: &str, message: String| NamespaceCondition {
        type_: t.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(Time(now)),
    };
    let mut out = vec![
        c(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        c(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
    ];
    out.push(if r.errors.is_empty() {
        c(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        )
    } else {
        c(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                r.errors.len(),
                r.errors.join(", ")
            ),
        )
    });
    out.push(if r.counts.is_empty() {
        c(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
        )
    } else {
        let parts: Vec<String> = r
            .counts
            .iter()
            .map(|(k, n)| format!("{k} has {n} resource instances"))
            .collect();
        c(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", parts.join(", ")),
        )
    });
    out.push(if r.finalizers.is_empty() {
        c(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let parts: Vec<String> = r
            .finalizers
            .iter()
            .map(|(k, n)| format!("{k} in {n} resource instances"))
            .collect();
        c(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                parts.join(", ")
            ),
        )
    });
    out
}

/// Runs the controller.
pub async fn run(
    client: kube::Client,
    namespaces: Store<Namespace>,
    ns_rx: UnboundedReceiver<Change<Namespace>>,
    resources: Vec<Deletable>,
) {
    let resources = resources.into_iter().filter(|r| r.namespaced).collect();
    let ctx = Arc::new(Ctx { client, resources });
    Controller::for_stream(objects(ns_rx), namespaces)
        .with_config(ControllerConfig::default().concurrency(4))
        .run(
            reconcile,
            |_, e, _| {
                debug!(error = %e, "namespace sync failed; retrying");
                Action::requeue(Duration::from_secs(2))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = ns.name_any();
    let has_finalizer = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if ns.metadata.deletion_timestamp.is_none() || !has_finalizer {
        return Ok(Action::await_change());
    }
    let mut rem = Remaining::default();
    for r in &ctx.resources {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, &r.resource);
        let del = if r.delete_collection {
            api.delete_collection(&DeleteParams::background(), &ListParams::default())
                .await
                .map(|_| ())
        } else {
            match api.list(&ListParams::default()).await {
                Ok(list) => {
                    for o in list.items {
                        let _ = api.delete(&o.name_any(), &DeleteParams::background()).await;
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        if let Err(e) = del
            && !is_status(&e, 404)
            && !is_status(&e, 405)
        {
            rem.errors.push(format!("{}: {e}", r.resource.plural));
        }
        if let Ok(list) = api.list(&ListParams::default()).await
            && !list.items.is_empty()
        {
            let key = if r.resource.group.is_empty() {
                r.resource.plural.clone()
            } else {
                format!("{}.{}", r.resource.plural, r.resource.group)
            };
            rem.counts.insert(key, list.items.len());
            for o in &list.items {
                for f in o.finalizers() {
                    *rem.finalizers.entry(f.clone()).or_default() += 1;
                }
            }
        }
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let conds = conditions(&rem, jiff::Timestamp::now());
    let same = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cur| {
            conds.iter().all(|c| {
                cur.iter()
                    .any(|x| x.type_ == c.type_ && x.status == c.status && x.message == c.message)
            })
        });
    if !same {
        let patch = json!({"status": {"conditions": conds}});
        let _ = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
    }
    if !rem.counts.is_empty() || !rem.errors.is_empty() {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    // Everything is gone: drop our finalizer through /finalize.
    let mut cur = match api.get_opt(&name).await.map_err(|source| Error {
        verb: "get",
        name: name.clone(),
        source,
    })? {
        Some(c) => c,
        None => return Ok(Action::await_change()),
    };
    if let Some(spec) = cur.spec.as_mut() {
        spec.finalizers = spec
            .finalizers
            .take()
            .map(|f| f.into_iter().filter(|x| x != FINALIZER).collect());
    }
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &cur)
        .await
    {
        Ok(_) => info!(namespace = %name, "namespace content removed; finalized"),
        Err(e) if is_status(&e, 404) => {}
        Err(source) => {
            return Err(Error {
                verb: "finalize",
                name,
                source,
            });
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_content_reads_like_upstream() {
        let r = Remaining {
            counts: [("pods".to_string(), 2)].into(),
            finalizers: [("example.com/x".to_string(), 1)].into(),
            errors: vec![],
        };
        let c = conditions(&r, jiff::Timestamp::now());
        let get = |t: &str| c.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(
            get("NamespaceContentRemaining").message.as_deref(),
            Some("Some resources are remaining: pods has 2 resource instances")
        );
        assert_eq!(get("NamespaceFinalizersRemaining").status, "True");
        assert_eq!(
            get("NamespaceDeletionContentFailure").reason.as_deref(),
            Some("ContentDeleted")
        );
    }
}
