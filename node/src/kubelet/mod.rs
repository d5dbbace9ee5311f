//! The kubelet: registers the Node, renews its Lease, posts node status,
//! and drives the pods bound to this node through containerd's CRI.
//!
//! - [`node`]: Node registration, Lease, node status.
//! - [`pods`]: the pod watch (kube-runtime reflector), one worker per pod,
//!   cleanup of pods the API no longer has.
//! - [`worker`]: one pod's worker and its sync, one module per step.
//! - [`actions`] decides a sync (pure), [`status`] computes a pod's status
//!   (pure), [`backoff`] is CrashLoopBackOff, [`probes`] runs probes,
//!   [`events`] records Events, [`metrics`] are the kubelet's metrics.
//! - [`runtime_view`]: what the kubelet knows of the runtime (each pod's
//!   sandboxes and containers, the relist, the containers' logs).
//! - [`pod_config`]: what the kubelet builds from a pod's spec for the
//!   runtime (CRI configurations, environment, `/etc/hosts`, volumes and
//!   the ConfigMaps, Secrets and tokens they read).
//! - [`pod_spec`]: what a pod's spec says (container roles, QoS class,
//!   grace period, address), read by all of the above.
//! - [`wakers`]: the workers to wake when their pod changes outside the
//!   API.
//! - [`server`]: the node's HTTPS endpoint for logs, exec and metrics.
//!
//! Imports point one way: [`pods`] uses [`worker`]; the worker uses the
//! pure decisions ([`actions`], [`status`]), [`probes`], [`pod_config`]
//! and [`runtime_view`]; [`server`] reads [`runtime_view`] and
//! [`metrics`]; [`pod_config`] uses [`metrics`] (volume set-up times) and
//! [`node`] (the machine's memory), and [`metrics`] reads
//! [`runtime_view`]'s relist; at the bottom are [`pod_spec`], [`wakers`]
//! and [`crate::cri`].
//!
//! Restart safety: nothing lives only in memory. Sandboxes and containers
//! carry the pod's UID, name and namespace and the container's spec hash
//! and attempt as CRI labels and annotations ([`crate::cri::labels`]), so a
//! restarted kubelet finds every running container again, leaves healthy
//! ones running, and removes those of pods deleted meanwhile.

pub mod actions;
pub mod auth;
pub mod backoff;
pub mod events;
pub mod metrics;
pub mod node;
pub mod pod_config;
pub mod pod_spec;
pub mod pods;
pub mod probes;
pub mod runtime_view;
pub mod server;
pub mod serving_cert;
pub mod status;
pub mod wakers;
pub mod worker;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Client;
use kube::api::Api;

use self::backoff::Backoff;
use self::events::Recorder;
use self::pod_config::configmap_secret_watch::{self, Sources};
use self::pod_config::cri_config::NodeSettings;
use self::pod_config::env;
use self::pod_config::volumes::{VolumeError, Volumes};
use self::probes::Prober;
use self::runtime_view::observed::PodRuntime;
use self::runtime_view::{relist, runtime_cache};
use self::wakers::Wakers;
use crate::cri::{Cri, CriError};

/// A kubelet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error(transparent)]
    Cri(#[from] CriError),
    #[error("{action}: {source}")]
    Api {
        action: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    Env(env::EnvError),
    #[error(transparent)]
    Source(configmap_secret_watch::NotListed),
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An ephemeral container's target is not running (`getTargetID`).
    #[error("unable to find target container {name}")]
    TargetNotRunning { name: String },
    #[error("the pod watch ended before its first list")]
    WatchClosed,
    #[error("the node's podCIDR {cidr} is not an IPv4 network")]
    PodCidr { cidr: String },
    #[error(transparent)]
    Server(#[from] server::ServerError),
}

impl KubeletError {
    /// Wraps an API error with what was being done.
    pub fn api(action: &'static str) -> impl FnOnce(kube::Error) -> Self {
        move |source| Self::Api {
            action,
            source: Box::new(source),
        }
    }
}

/// The kubelet's configuration (see `baton-node run --help`).
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    /// The node's InternalIP (its fabric address).
    pub node_ip: String,
    /// The podCIDR to register with when the Node has none (else the
    /// controller's allocation is used).
    pub pod_cidr: Option<String>,
    /// Where pods' volumes, logs and IPAM state live.
    pub root_dir: PathBuf,
    pub cgroup_root: String,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// Port of the HTTPS kubelet server (logs, exec, metrics).
    pub port: u16,
    /// CA certificate and key of the cluster: the server's certificate is
    /// issued from them and client certificates are verified against the CA.
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
}

/// What every pod worker shares.
pub struct Context {
    pub cri: Cri,
    pub client: Client,
    pub node_name: String,
    pub host_ip: String,
    pub settings: NodeSettings,
    pub root_dir: PathBuf,
    pub volumes: Volumes,
    pub recorder: Recorder,
    pub backoff: Mutex<Backoff>,
    pub prober: Prober,
    /// The kubelet's Prometheus metrics (`/metrics`).
    pub metrics: metrics::KubeletMetrics,
    /// The `kubernetes` Service (ClusterIP, port) for pod environments.
    pub master_service: Option<(String, i32)>,
    /// Sandbox IPs and container statuses that cannot have changed.
    pub runtime_cache: Mutex<runtime_cache::RuntimeCache>,
    /// The latest node-wide relist of the runtime.
    pub relist: Arc<Mutex<relist::Snapshot>>,
    /// Pod workers the relist (and a change of a mounted source) wakes
    /// when their pod changes.
    pub relist_wakers: Arc<Wakers>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("node", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// `<root>/logs/<namespace>_<name>_<uid>` (the kubelet's
    /// `/var/log/pods` layout, under this node's root).
    #[must_use]
    pub fn log_dir(&self, pod: &Pod) -> PathBuf {
        log_dir(&self.root_dir, pod)
    }

    /// The containers of `runtime` whose liveness or startup probe failed,
    /// and those whose startup probe has not passed yet.
    #[must_use]
    pub fn probe_results(&self, runtime: &PodRuntime) -> actions::Probes {
        let results = self
            .prober
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ids = |keep: &dyn Fn(&str) -> bool| -> HashSet<String> {
            runtime
                .containers
                .iter()
                .filter(|c| keep(&c.id))
                .map(|c| c.id.clone())
                .collect()
        };
        actions::Probes {
            failed: ids(&|id| results.failed.contains(id)),
            not_started: ids(&|id| results.started.get(id) == Some(&false)),
        }
    }

    /// Whether the readiness probe of container `id` has passed.
    #[must_use]
    pub fn is_ready(&self, id: &str) -> bool {
        self.prober
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready
            .get(id)
            .copied()
            .unwrap_or(false)
    }

    /// Drops the probes and results of a killed container.
    pub fn forget_probes(&self, id: &str) {
        self.prober
            .retain(&HashSet::new(), &HashSet::from([id.to_owned()]));
    }
}

/// The log directory of a pod under `root`.
#[must_use]
pub fn log_dir(root: &Path, pod: &Pod) -> PathBuf {
    root.join("logs").join(format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    ))
}

/// Registers the node and runs the kubelet until an unrecoverable error.
/// `on_pod_cidr` is called with the node's podCIDR once known (baton-node
/// writes the CNI configuration from it).
pub async fn run(
    config: Config,
    client: Client,
    cri: Cri,
    on_pod_cidr: impl FnOnce(&str) -> Result<(), KubeletError> + Send,
) -> Result<(), KubeletError> {
    let identity = node::Identity {
        name: config.node_name.clone(),
        internal_ip: config.node_ip.clone(),
        kubelet_port: config.port,
        pod_cidr: config.pod_cidr.clone(),
        root_dir: config.root_dir.clone(),
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let registered = node::register(&nodes, &identity, &cri).await?;
    // The podCIDR: the Node's (allocated by the controller) or ours.
    let mut registered = registered;
    let cidr = loop {
        if let Some(cidr) = registered.spec.as_ref().and_then(|s| s.pod_cidr.clone()) {
            break cidr;
        }
        tracing::info!("waiting for the node's podCIDR");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        registered = nodes
            .get(&config.node_name)
            .await
            .map_err(KubeletError::api("get node"))?;
    };
    on_pod_cidr(&cidr)?;

    let master_service = Api::<Service>::namespaced(client.clone(), "default")
        .get_opt("kubernetes")
        .await
        .ok()
        .flatten()
        .and_then(|s| {
            let spec = s.spec?;
            let ip = spec.cluster_ip?;
            let port = spec.ports?.first()?.port;
            Some((ip, port))
        });
    let wakers: Arc<Wakers> = Arc::default();
    let sources = Sources::new(client.clone(), Arc::clone(&wakers));
    let ctx = Arc::new(Context {
        cri: cri.clone(),
        client: client.clone(),
        node_name: config.node_name.clone(),
        host_ip: config.node_ip.clone(),
        settings: NodeSettings {
            cgroup_root: config.cgroup_root.clone(),
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: config.cluster_domain.clone(),
        },
        root_dir: config.root_dir.clone(),
        volumes: Volumes::new(client.clone(), config.root_dir.clone(), sources),
        recorder: Recorder::new(client.clone(), config.node_name.clone()),
        backoff: Mutex::new(Backoff::default()),
        prober: Prober::default(),
        metrics: metrics::KubeletMetrics::new(&config.node_name),
        master_service,
        runtime_cache: Mutex::default(),
        relist: Arc::default(),
        relist_wakers: wakers,
    });

    // Lease every 10 s.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease_node = registered.clone();
    tokio::spawn(async move {
        loop {
            if let Err(err) = node::renew_lease(&leases, &lease_node).await {
                tracing::warn!(%err, "renewing the node lease");
            }
            tokio::time::sleep(node::LEASE_RENEW).await;
        }
    });
    // Node status every minute, or sooner when the Ready condition changes.
    let status_cri = cri.clone();
    tokio::spawn(async move {
        let mut last_ready = None;
        let mut last_post = std::time::Instant::now();
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            let conditions = node::conditions(&status_cri, jiff::Timestamp::now()).await;
            let ready = conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status.clone());
            if ready != last_ready || last_post.elapsed() >= node::STATUS_REPORT {
                match node::post_status(&nodes, &identity, &status_cri).await {
                    Ok(_) => {
                        last_ready = ready;
                        last_post = std::time::Instant::now();
                    }
                    Err(err) => tracing::warn!(%err, "posting node status"),
                }
            }
        }
    });
    server::spawn(Arc::clone(&ctx), &config).await?;
    pods::run(ctx).await
}
