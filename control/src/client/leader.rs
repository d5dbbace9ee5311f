//! Leader election through a coordination.k8s.io/v1 Lease, with client-go's
//! `leaderelection` semantics: a candidate acquires the lease when it is
//! free or when its holder has not renewed it for `lease_duration` (measured
//! on the candidate's own clock from when it last saw the record change),
//! the leader renews every `retry_period` and gives up if it could not renew
//! within `renew_deadline`. Updates are optimistic (resourceVersion), so two
//! candidates can never both win one round.
//!
//! Written here because no leader-election crate builds against kube 5; the
//! protocol is small and its timing rules are what matter.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;
use tracing::{info, warn};

use super::time::now_micro;

/// Timing and identity of a candidate.
#[derive(Debug, Clone)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// leaseDurationSeconds written into the lease (default 15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up (10 s).
    pub renew_deadline: Duration,
    /// Interval between attempts (2 s).
    pub retry_period: Duration,
}

impl Config {
    /// kube-controller-manager's defaults for the lease `kube-system/<name>`.
    #[must_use]
    pub fn new(name: &str, identity: String) -> Self {
        Config {
            namespace: "kube-system".into(),
            name: name.into(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A unique identity like client-go's: `<hostname>_<uuid>`.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// Leadership ended.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election lost: could not renew lease {namespace}/{name} within {deadline:?}")]
    Lost {
        namespace: String,
        name: String,
        deadline: Duration,
    },
}

/// What the candidate last saw of the lease, and when (its own clock).
struct Observed {
    holder: Option<String>,
    renew: Option<jiff::Timestamp>,
    duration: Duration,
    at: Instant,
}

struct Elector {
    api: Api<Lease>,
    cfg: Config,
    observed: Option<Observed>,
}

impl Elector {
    /// One acquire-or-renew round (client-go's `tryAcquireOrRenew`).
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = now_micro();
        let spec_for = |prev: Option<&LeaseSpec>, cfg: &Config| {
            let mine =
                prev.and_then(|p| p.holder_identity.as_deref()) == Some(cfg.identity.as_str());
            LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(cfg.lease_duration.as_secs() as i32),
                acquire_time: if mine {
                    prev.and_then(|p| p.acquire_time.clone())
                } else {
                    Some(now.clone())
                },
                renew_time: Some(now.clone()),
                lease_transitions: Some(match prev {
                    Some(p) if mine => p.lease_transitions.unwrap_or(0),
                    Some(p) if p.holder_identity.as_deref().is_some_and(|h| !h.is_empty()) => {
                        p.lease_transitions.unwrap_or(0) + 1
                    }
                    Some(p) => p.lease_transitions.unwrap_or(0),
                    None => 0,
                }),
                ..Default::default()
            }
        };
        let current = match self.api.get_opt(&self.cfg.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec_for(None, &self.cfg)),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                };
            }
            Some(l) => l,
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let renew = spec.renew_time.as_ref().map(|t| t.0);
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.holder != holder || o.renew != renew);
        if changed {
            self.observed = Some(Observed {
                holder: holder.clone(),
                renew,
                duration,
                at: Instant::now(),
            });
        }
        let observed = self.observed.as_ref().expect("set above");
        let held_by_other = holder.as_deref().is_some_and(|h| h != self.cfg.identity);
        // client-go measures expiry from when the candidate saw the record
        // change (clock-skew safe); when the holder's renewTime is older
        // than that on our clock, it counts from renewTime instead, so a
        // dead leader is replaced within the lease duration plus one retry.
        let since_seen = observed.at.elapsed();
        let since_renew = renew
            .and_then(|r| Duration::try_from(jiff::Timestamp::now().duration_since(r)).ok())
            .unwrap_or(since_seen);
        if held_by_other && since_seen.max(since_renew) < observed.duration {
            return Ok(false);
        }
        let mut next = current.clone();
        next.spec = Some(spec_for(Some(&spec), &self.cfg));
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &next)
            .await
        {
            Ok(l) => {
                let s = l.spec.unwrap_or_default();
                self.observed = Some(Observed {
                    holder: s.holder_identity,
                    renew: s.renew_time.map(|t| t.0),
                    duration: self.cfg.lease_duration,
                    at: Instant::now(),
                });
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Waits until this candidate leads, then runs `work` while renewing the
/// lease; returns when `work` ends or leadership is lost (then `work` is
/// dropped and the caller should exit, as kube-controller-manager does).
pub async fn run_as_leader<F>(client: kube::Client, cfg: Config, work: F) -> Result<(), LeaderError>
where
    F: Future<Output = ()>,
{
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut el = Elector {
        api,
        cfg: cfg.clone(),
        observed: None,
    };
    info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), identity = %cfg.identity, "attempting to acquire leader lease");
    loop {
        match el.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => warn!(error = %e, "error retrieving resource lock"),
        }
        tokio::time::sleep(jittered(cfg.retry_period)).await;
    }
    info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), identity = %cfg.identity, "successfully acquired lease");
    let renew = async {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(cfg.retry_period).await;
            match tokio::time::timeout(cfg.renew_deadline, el.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renew = Instant::now(),
                Ok(Ok(false)) => {
                    return LeaderError::Lost {
                        namespace: cfg.namespace.clone(),
                        name: cfg.name.clone(),
                        deadline: cfg.renew_deadline,
                    };
                }
                Ok(Err(e)) => warn!(error = %e, "failed to renew lease"),
                Err(_) => warn!("renewing the lease timed out"),
            }
            if last_renew.elapsed() > cfg.renew_deadline {
                return LeaderError::Lost {
                    namespace: cfg.namespace.clone(),
                    name: cfg.name.clone(),
                    deadline: cfg.renew_deadline,
                };
            }
        }
    };
    tokio::select! {
        () = work => Ok(()),
        lost = renew => Err(lost),
    }
}

/// The retry period with up to 20 % jitter (client-go jitters by up to 120 %;
/// less keeps a takeover close to the lease duration).
fn jittered(d: Duration) -> Duration {
    d + d.mul_f64(0.2 * rand::random::<f64>())
}
