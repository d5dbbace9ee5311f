//! The Deployment controller: owns ReplicaSets (one per template, labelled
//! and selected by `pod-template-hash`), rolls out template changes with
//! RollingUpdate or Recreate, keeps revisions and history, and writes the
//! status `kubectl rollout status` reads. The decisions are in [`plan`]
//! (pure); this module observes, runs the plan's writes and records events.

pub mod plan;
pub mod status;
pub mod util;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::debug;

use self::plan::{Observed, Step};
use super::podutil::{controller_of, is_terminal};
use super::replicaset::api_message;
use crate::client::informer::{objects, tokio_stream_from};
use crate::client::recorder::{self, EventType, Recorder};
use crate::client::{Change, is_status};

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{verb} {what}: {source}")]
    Api {
        verb: &'static str,
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("replica set {name} is not in the cache yet")]
    Stale { name: String },
}

struct Ctx {
    client: kube::Client,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    recorder: Recorder,
}

fn owner_deployment(meta: &kube::api::ObjectMeta, ns: &str) -> Option<ObjectRef<Deployment>> {
    controller_of(meta)
        .filter(|o| o.kind == "Deployment")
        .map(|o| ObjectRef::new(&o.name).within(ns))
}

/// Runs the controller.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: kube::Client,
    deployments: Store<Deployment>,
    dep_rx: UnboundedReceiver<Change<Deployment>>,
    replicasets: Store<ReplicaSet>,
    rs_rx: UnboundedReceiver<Change<ReplicaSet>>,
    pods: Store<Pod>,
    pod_rx: UnboundedReceiver<Change<Pod>>,
    workers: u16,
) {
    let ctx = Arc::new(Ctx {
        recorder: recorder::for_component(client.clone(), "deployment-controller"),
        client,
        replicasets: replicasets.clone(),
        pods,
    });
    let rs_for_pods = replicasets.clone();
    // Only pod deletions matter here (Recreate waits for old pods to go).
    let pod_deletions = tokio_stream_from(pod_rx).filter_map(|c| {
        futures::future::ready(match c {
            Change::Deleted(p) => Some(Ok((*p).clone())),
            _ => None,
        })
    });
    Controller::for_stream(objects(dep_rx), deployments)
        .watches_stream(objects(rs_rx), |rs: ReplicaSet| {
            owner_deployment(&rs.metadata, &rs.namespace().unwrap_or_default())
        })
        .watches_stream(pod_deletions, move |p: Pod| {
            let ns = p.namespace().unwrap_or_default();
            controller_of(&p.metadata)
                .filter(|o| o.kind == "ReplicaSet")
                .and_then(|o| rs_for_pods.get(&ObjectRef::new(&o.name).within(&ns)))
                .and_then(|rs| owner_deployment(&rs.metadata, &ns))
        })
        .with_config(ControllerConfig::default().concurrency(workers))
        .run(
            reconcile,
            |_, e, _| {
                debug!(error = %e, "deployment sync failed; retrying");
                Action::requeue(Duration::from_secs(1))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = d.namespace().unwrap_or_default();
    let dname = d.name_any();
    let uid = d.uid().unwrap_or_default();
    let rss: Vec<ReplicaSet> = ctx
        .replicasets
        .state()
        .iter()
        .filter(|r| {
            r.namespace().as_deref() == Some(ns.as_str())
                && controller_of(&r.metadata).is_some_and(|o| o.uid == uid)
        })
        .map(|r| (**r).clone())
        .collect();
    let mut pods_per_rs: HashMap<String, usize> = HashMap::new();
    for p in ctx
        .pods
        .state()
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && !is_terminal(p))
    {
        if let Some(o) = controller_of(&p.metadata).filter(|o| o.kind == "ReplicaSet") {
            *pods_per_rs.entry(o.uid.clone()).or_default() += 1;
        }
    }
    let plan = plan::sync(Observed {
        deployment: &d,
        replicasets: rss,
        pods_per_rs,
        now: jiff::Timestamp::now(),
    });
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let mut status = plan.status.clone();
    for step in &plan.steps {
        match step {
            Step::Create(rs) => match rs_api.create(&PostParams::default(), rs).await {
                Ok(created) => {
                    let to = util::rs_replicas(&created);
                    ctx.recorder.event(
                        d.as_ref(),
                        EventType::Normal,
                        "ScalingReplicaSet",
                        format!(
                            "Scaled up replica set {} from 0 to {to}",
                            created.name_any()
                        ),
                    );
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    // Same name, other template: a hash collision; retry
                    // with the next collision count.
                    let name = rs.name_any();
                    if let Ok(existing) = rs_api.get(&name).await {
                        let same = existing
                            .spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .zip(rs.spec.as_ref().and_then(|s| s.template.as_ref()))
                            .is_some_and(|(a, b)| util::equal_ignore_hash(a, b));
                        let ours = controller_of(&existing.metadata).is_some_and(|o| o.uid == uid);
                        if !(same && ours) {
                            let count = d
                                .status
                                .as_ref()
                                .and_then(|s| s.collision_count)
                                .unwrap_or(0)
                                + 1;
                            let patch = json!({"status": {"collisionCount": count}});
                            d_api
                                .patch_status(
                                    &dname,
                                    &PatchParams::default(),
                                    &Patch::Merge(&patch),
                                )
                                .await
                                .map_err(|source| Error::Api {
                                    verb: "update status of",
                                    what: dname.clone(),
                                    source,
                                })?;
                        }
                    }
                    return Ok(Action::requeue(Duration::from_millis(200)));
                }
                Err(source) => {
                    let msg = format!(
                        "Failed to create new replica set \"{}\": {}",
                        rs.name_any(),
                        api_message(&source)
                    );
                    ctx.recorder
                        .event(d.as_ref(), EventType::Warning, "FailedCreate", msg.clone());
                    let c = status::condition(
                        "ReplicaFailure",
                        "True",
                        "FailedCreate",
                        msg,
                        jiff::Timestamp::now(),
                    );
                    status::set(&mut status, c);
                    let _ = d_api
                        .patch_status(
                            &dname,
                            &PatchParams::default(),
                            &Patch::Merge(&json!({"status": status})),
                        )
                        .await;
                    return Err(Error::Api {
                        verb: "create",
                        what: rs.name_any(),
                        source,
                    });
                }
            },
            Step::Scale {
                name,
                from,
                to,
                annotations,
            } => {
                let mut rs = current(&ctx, &ns, name)?;
                rs.spec.get_or_insert_with(Default::default).replicas = Some(*to);
                rs.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .extend(annotations.clone());
                rs_api
                    .replace(name, &PostParams::default(), &rs)
                    .await
                    .map_err(|source| Error::Api {
                        verb: "scale",
                        what: name.clone(),
                        source,
                    })?;
                if from != to {
                    let dir = if to > from { "up" } else { "down" };
                    ctx.recorder.event(
                        d.as_ref(),
                        EventType::Normal,
                        "ScalingReplicaSet",
                        format!("Scaled {dir} replica set {name} from {from} to {to}"),
                    );
                }
            }
            Step::Annotate { name, annotations } => {
                let mut rs = current(&ctx, &ns, name)?;
                rs.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .extend(annotations.clone());
                rs_api
                    .replace(name, &PostParams::default(), &rs)
                    .await
                    .map_err(|source| Error::Api {
                        verb: "update",
                        what: name.clone(),
                        source,
                    })?;
            }
            Step::Delete { name } => match rs_api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(source) => {
                    return Err(Error::Api {
                        verb: "delete",
                        what: name.clone(),
                        source,
                    });
                }
            },
            Step::Revision(rev) => {
                let patch = json!({"metadata": {"annotations": {util::REVISION: rev}}});
                d_api
                    .patch(&dname, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|source| Error::Api {
                        verb: "update",
                        what: dname.clone(),
                        source,
                    })?;
            }
        }
    }
    if d.status.as_ref() != Some(&status) {
        let patch = json!({"status": status});
        match d_api
            .patch_status(&dname, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(source) => {
                return Err(Error::Api {
                    verb: "update status of",
                    what: dname,
                    source,
                });
            }
        }
    }
    Ok(match plan.requeue_after {
        Some(s) => Action::requeue(Duration::from_secs(s.max(1) as u64)),
        None => Action::await_change(),
    })
}

fn current(ctx: &Ctx, ns: &str, name: &str) -> Result<ReplicaSet, Error> {
    ctx.replicasets
        .get(&ObjectRef::new(name).within(ns))
        .map(|r| (*r).clone())
        .ok_or_else(|| Error::Stale { name: name.into() })
}
