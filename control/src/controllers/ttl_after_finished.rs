//! The TTL-after-finished controller (pkg/controller/ttlafterfinished):
//! deletes a finished Job `spec.ttlSecondsAfterFinished` seconds after its
//! `Complete` or `Failed` condition turned True, in the foreground (its
//! pods first), checking a fresh copy before it does.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::debug;

use crate::client::informer::objects;
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
}

/// When the Job finished: the transition time of its True `Complete` or
/// `Failed` condition (`getFinishAndExpireTime`).
fn finished_at(job: &Job) -> Option<Timestamp> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
        })
}

/// How long until the Job expires: `None` when it has no TTL, is not
/// finished or is being deleted; zero once it has expired.
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let done = finished_at(job)?;
    let expire_ms = done.as_millisecond() + i64::from(ttl) * 1000;
    Some(Duration::from_millis(
        (expire_ms - now.as_millisecond()).max(0) as u64,
    ))
}

/// Runs the controller.
pub async fn run(client: kube::Client, jobs: Store<Job>, rx: UnboundedReceiver<Change<Job>>) {
    Controller::for_stream(objects(rx), jobs)
        .with_config(ControllerConfig::default().concurrency(5))
        .run(
            reconcile,
            |_, e, _| {
                debug!(error = %e, "ttl-after-finished sync failed; retrying");
                Action::requeue(Duration::from_secs(5))
            },
            Arc::new(client),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(job: Arc<Job>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let Some(left) = time_left(&job, Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    if !left.is_zero() {
        return Ok(Action::requeue(left));
    }
    let api: Api<Job> = Api::namespaced((*client).clone(), &job.namespace().unwrap_or_default());
    let name = job.name_any();
    let api_err = |verb, source| Error::Api {
        verb,
        what: name.clone(),
        source,
    };
    // The cached copy may be stale (the TTL changed, the Job restarted).
    let fresh = match api.get(&name).await {
        Ok(j) => j,
        Err(e) if is_status(&e, 404) => return Ok(Action::await_change()),
        Err(e) => return Err(api_err("get", e)),
    };
    match time_left(&fresh, Timestamp::now()) {
        None => return Ok(Action::await_change()),
        Some(d) if !d.is_zero() => return Ok(Action::requeue(d)),
        Some(_) => {}
    }
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: fresh.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(Action::await_change()),
        Err(e) => Err(api_err("delete", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expires_ttl_seconds_after_the_finished_condition() {
        let job = |ttl: Option<i32>, cond: &str| -> Job {
            serde_json::from_value(json!({"metadata": {"name": "pi"},
                "spec": {"ttlSecondsAfterFinished": ttl, "template": {}},
                "status": {"conditions": [{"type": cond, "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}))
            .unwrap()
        };
        let now: Timestamp = "2024-01-01T00:00:40Z".parse().unwrap();
        assert_eq!(
            time_left(&job(Some(100), "Complete"), now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            time_left(&job(Some(10), "Failed"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(time_left(&job(None, "Complete"), now), None);
        assert_eq!(time_left(&job(Some(10), "SuccessCriteriaMet"), now), None);
    }
}
