//! `baton-control scheduler`: assigns pending pods to nodes, talking to the
//! API server only through its public API (watch pods/nodes/volumes, write
//! `pods/binding`, events and pod status), like kube-scheduler.
//!
//! Layout: [`cache`] (what is placed where, with assumed pods), [`queue`]
//! (active/backoff/unschedulable), [`framework`] and [`plugins`] (filters
//! and scores), [`algorithm`] (one cycle), [`preemption`], [`binder`] (API
//! writes) and [`handlers`] (informer events → cache and queue).

pub mod affinity;
pub mod algorithm;
pub mod binder;
pub mod cache;
pub mod cli;
pub mod framework;
pub mod handlers;
pub mod plugins;
pub mod preemption;
pub mod queue;
pub mod resources;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::client::informer::tokio_stream_from;
use crate::client::recorder::{self, Recorder};
use crate::client::{Informer, Start, kubeconfig, leader};
use algorithm::Algorithm;
use cache::{Cache, PodInfo};
use plugins::Profile;
use queue::{Backoff, SchedulingQueue};

/// Scheduler settings (flags of `baton-control scheduler`).
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig: PathBuf,
    /// Pods whose `spec.schedulerName` is this are ours.
    pub scheduler_name: String,
    pub leader_elect: bool,
    /// Lease kube-system/<name>.
    pub leader_elect_resource_name: String,
    /// Share of nodes to find feasible before scoring (adaptive if None).
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Bindings written at once.
    pub parallelism: usize,
    pub backoff: Backoff,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kubeconfig: PathBuf::new(),
            scheduler_name: "default-scheduler".into(),
            leader_elect: true,
            leader_elect_resource_name: "kube-scheduler".into(),
            percentage_of_nodes_to_score: None,
            parallelism: 16,
            backoff: Backoff::default(),
        }
    }
}

/// Failure to start.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Client(#[from] kubeconfig::ClientError),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
}

/// Runs the scheduler until leadership is lost.
pub async fn run(cfg: Config) -> Result<(), SchedulerError> {
    let client = kubeconfig::from_kubeconfig(&cfg.kubeconfig).await?;
    if cfg.leader_elect {
        let lcfg = leader::Config::new(&cfg.leader_elect_resource_name, leader::identity());
        leader::run_as_leader(client.clone(), lcfg, run_scheduler(client, cfg)).await?;
    } else {
        run_scheduler(client, cfg).await;
    }
    Ok(())
}

struct Scheduler {
    client: kube::Client,
    cache: Arc<Mutex<Cache>>,
    queue: SchedulingQueue,
    algorithm: Mutex<Algorithm>,
    recorder: Recorder,
    binds: Arc<Semaphore>,
    pods: kube::runtime::reflector::Store<Pod>,
}

/// Starts the informers and schedules until the process ends.
pub async fn run_scheduler(client: kube::Client, cfg: Config) {
    let mut pods = Informer::new(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed"),
    );
    let mut nodes = Informer::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    let mut pvcs = Informer::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    );
    let mut pvs = Informer::new(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    );
    let cache = Arc::new(Mutex::new(Cache::default()));
    let queue = SchedulingQueue::new(cfg.backoff);
    let profile = Profile::default_profile(plugins::volume_binding::VolumeBinding {
        claims: Some(pvcs.store()),
        volumes: Some(pvs.store()),
    });
    let (pod_rx, node_rx, pvc_rx, pv_rx) = (
        pods.subscribe(),
        nodes.subscribe(),
        pvcs.subscribe(),
        pvs.subscribe(),
    );
    let sched = Arc::new(Scheduler {
        recorder: recorder::for_component(client.clone(), &cfg.scheduler_name),
        client,
        cache: cache.clone(),
        queue: queue.clone(),
        algorithm: Mutex::new(Algorithm::new(profile, cfg.percentage_of_nodes_to_score)),
        binds: Arc::new(Semaphore::new(cfg.parallelism.max(1))),
        pods: pods.store(),
    });
    for i in [&mut pods as &mut dyn Start, &mut nodes, &mut pvcs, &mut pvs] {
        i.start();
    }
    {
        let (cache, queue) = (cache.clone(), queue.clone());
        let name = cfg.scheduler_name.clone();
        tokio::spawn(tokio_stream_from(pod_rx).for_each(move |c| {
            handlers::on_pod(c, &cache, &queue, &name);
            futures::future::ready(())
        }));
    }
    {
        let (cache, queue) = (cache.clone(), queue.clone());
        tokio::spawn(tokio_stream_from(node_rx).for_each(move |c| {
            handlers::on_node(c, &cache, &queue);
            futures::future::ready(())
        }));
    }
    for rx in [
        tokio_stream_from(pvc_rx).map(|_| ()).boxed(),
        tokio_stream_from(pv_rx).map(|_| ()).boxed(),
    ] {
        let queue = queue.clone();
        tokio::spawn(rx.for_each(move |()| {
            queue.move_all_to_active_or_backoff();
            futures::future::ready(())
        }));
    }
    {
        let (queue, cache) = (queue.clone(), cache.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                queue.flush();
                cache.lock().expect("cache").cleanup_expired();
            }
        });
    }
    // Schedule only once the nodes and pods are known.
    crate::client::informer::synced(&nodes.store()).await;
    crate::client::informer::synced(&pods.store()).await;
    info!(
        nodes = cache.lock().expect("cache").node_count(),
        "scheduler caches synced; scheduling"
    );
    while let Some(qp) = queue.pop().await {
        sched.clone().schedule_one(qp).await;
    }
}

impl Scheduler {
    /// One pod: pick a node and bind asynchronously, or record why not
    /// (and try preemption).
    async fn schedule_one(self: Arc<Self>, qp: queue::QueuedPod) {
        // The latest state from the informer; skip pods that went away or
        // got bound meanwhile.
        let key = kube::runtime::reflector::ObjectRef::<Pod>::new(
            qp.pod.metadata.name.as_deref().unwrap_or_default(),
        )
        .within(qp.pod.metadata.namespace.as_deref().unwrap_or_default());
        let pod = self.pods.get(&key).unwrap_or_else(|| qp.pod.clone());
        if pod.metadata.deletion_timestamp.is_some()
            || pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        {
            self.queue.done(&qp.key);
            return;
        }
        let info = Arc::new(PodInfo::new(pod.clone()));
        let result = {
            let mut cache = self.cache.lock().expect("cache");
            let mut rng = rand::rng();
            let r = self
                .algorithm
                .lock()
                .expect("algorithm")
                .schedule(&info, &cache, &mut rng);
            if let Ok(node) = &r {
                cache.assume(info.clone(), node);
            }
            r
        };
        match result {
            Ok(node) => {
                self.queue.done(&qp.key);
                let permit = self
                    .binds
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore open");
                let me = self.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    me.bind(qp, pod, node).await;
                });
            }
            Err(failure) => {
                let (post, nominated) = {
                    let cache = self.cache.lock().expect("cache");
                    let algo = self.algorithm.lock().expect("algorithm");
                    match preemption::preempt(&algo, &info, &cache, &failure) {
                        Ok(plan) => (None, Some(plan)),
                        Err(msg) => (Some(msg), None),
                    }
                };
                let rejections: Vec<_> = failure.per_node.iter().map(|(_, r)| r.clone()).collect();
                let msg = framework::fit_error_message(
                    failure.total_nodes,
                    failure.pre_filter.as_ref(),
                    &rejections,
                    post.as_deref(),
                );
                debug!(pod = %qp.key, %msg, "unschedulable");
                let api: Api<Pod> = Api::namespaced(self.client.clone(), info.namespace());
                if let Some(plan) = &nominated {
                    info!(pod = %qp.key, node = %plan.node, victims = plan.victims.len(), "preempting");
                    binder::delete_victims(
                        &self.client,
                        &self.recorder,
                        &pod,
                        &plan.node,
                        &plan.victims,
                    )
                    .await;
                }
                binder::report_failure(
                    &api,
                    &self.recorder,
                    &pod,
                    "Unschedulable",
                    &msg,
                    nominated.as_ref().map(|p| p.node.as_str()),
                )
                .await;
                self.queue.requeue(&qp, true);
            }
        }
    }

    async fn bind(&self, qp: queue::QueuedPod, pod: Arc<Pod>, node: String) {
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        match binder::bind(&api, &pod, &node).await {
            Ok(()) => {
                self.cache.lock().expect("cache").finish_binding(&qp.key);
                binder::scheduled_event(&self.recorder, &pod, &node);
            }
            Err(e) => {
                warn!(pod = %qp.key, %node, error = %e, "binding failed");
                self.cache.lock().expect("cache").forget(&qp.key);
                let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
                if !gone {
                    binder::report_failure(
                        &api,
                        &self.recorder,
                        &pod,
                        "SchedulerError",
                        &format!("binding rejected: {e}"),
                        None,
                    )
                    .await;
                    self.queue.add_or_update(pod);
                }
            }
        }
    }
}
