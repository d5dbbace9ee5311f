//! The API writes of a scheduling decision: the `pods/binding` subresource,
//! the `Scheduled`/`FailedScheduling` events, the `PodScheduled=False`
//! condition with `nominatedNodeName`, and preemption's victim deletions —
//! as kube-scheduler writes them.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::{debug, warn};

use super::cache::PodInfo;
use crate::client::recorder::{EventType, Recorder};
use crate::client::time::now;

/// Writes the binding of `pod` to `node`.
pub async fn bind(api: &Api<Pod>, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        },
    };
    api.create_subresource::<Binding, serde_json::Value>(
        "binding",
        &name,
        &PostParams::default(),
        &binding,
    )
    .await
    .map(|_| ())
}

/// The `Scheduled` event.
pub fn scheduled_event(rec: &Recorder, pod: &Pod, node: &str) {
    let msg = format!(
        "Successfully assigned {}/{} to {node}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    rec.event(pod, EventType::Normal, "Scheduled", msg);
}

/// Records a failed attempt: the event and the pod's condition.
pub async fn report_failure(
    api: &Api<Pod>,
    rec: &Recorder,
    pod: &Pod,
    reason: &str,
    message: &str,
    nominated: Option<&str>,
) {
    rec.event(pod, EventType::Warning, "FailedScheduling", message);
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
    let same = current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
    });
    let nominated_same = nominated.is_none_or(|n| {
        pod.status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            == Some(n)
    });
    if same && nominated_same {
        return;
    }
    let transition = if current.is_some_and(|c| c.status == "False") {
        current.and_then(|c| c.last_transition_time.clone())
    } else {
        Some(now())
    };
    let mut status = json!({"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": reason, "message": message,
        "lastProbeTime": null, "lastTransitionTime": transition,
    }]});
    if let Some(n) = nominated {
        status["nominatedNodeName"] = json!(n);
    }
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if let Err(e) = api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"status": status})),
        )
        .await
    {
        debug!(pod = name, error = %e, "updating the PodScheduled condition failed");
    }
}

/// Evicts preemption victims: a `DisruptionTarget` condition, the deletion,
/// and a `Preempted` event on each.
pub async fn delete_victims(
    client: &kube::Client,
    rec: &Recorder,
    preemptor: &Pod,
    node: &str,
    victims: &[std::sync::Arc<PodInfo>],
) {
    for v in victims {
        let pod = &v.pod;
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), v.namespace());
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let cond = json!({"status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
            "message": format!("{}: preempting to accommodate a higher priority pod",
                preemptor.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()).unwrap_or("default-scheduler")),
            "lastTransitionTime": now(),
        }]}});
        let _ = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(cond))
            .await;
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => {
                warn!(victim = name, error = %e, "preempting a pod failed");
                continue;
            }
        }
        let msg = format!(
            "Preempted by pod {} on node {node}",
            preemptor.metadata.uid.as_deref().unwrap_or_default()
        );
        rec.event(pod.as_ref(), EventType::Normal, "Preempted", msg);
    }
}
