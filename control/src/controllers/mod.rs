//! `baton-control controllers`: the controller manager (kube-controller-manager's
//! job). Every controller talks to the API server only through its public
//! API: shared informers (kube-runtime watchers and reflector stores, see
//! [`crate::client`]) feed kube-runtime `Controller`s whose reconcilers decide
//! with pure functions (each module's `reconcile`/`plan`/`desired`) and then
//! write. One Lease (`kube-system/kube-controller-manager`) elects the
//! active instance.

pub mod bootstrap_signer;
pub mod certificates;
pub mod cli;
pub mod clusterrole_aggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpointslice;
pub mod expectations;
pub mod garbagecollector;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod podutil;
pub mod replicaset;
pub mod resource_discovery;
pub mod root_ca;
pub mod serviceaccount;
pub mod token_cleaner;
pub mod ttl_after_finished;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, Node, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::Api;
use kube::runtime::watcher;
use tracing::{info, warn};

use crate::client::{Informer, Start, kubeconfig, leader};

/// Every controller this manager runs, by its kube-controller-manager name.
pub const ALL: &[&str] = &[
    "deployment",
    "replicaset",
    "job",
    "cronjob",
    "ttl-after-finished",
    "daemonset",
    "disruption",
    "endpointslice",
    "endpoints",
    "nodelifecycle",
    "nodeipam",
    "garbagecollector",
    "namespace",
    "serviceaccount",
    "root-ca-cert-publisher",
    "clusterrole-aggregation",
    "csrapproving",
    "csrsigning",
    "tokencleaner",
    "bootstrapsigner",
    "podgc",
];

/// Settings (flags of `baton-control controllers`, named like
/// kube-controller-manager's).
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig: PathBuf,
    pub leader_elect: bool,
    pub leader_elect_resource_name: String,
    /// `--controllers`: `*`, names, `-name` to disable.
    pub controllers: Vec<String>,
    /// `--cluster-cidr` (node IPAM runs when `allocate_node_cidrs`).
    pub cluster_cidr: String,
    pub node_cidr_mask_size: u8,
    pub allocate_node_cidrs: bool,
    pub node_monitor_grace_period: Duration,
    pub node_monitor_period: Duration,
    pub concurrent_syncs: u16,
    /// `--root-ca-file`: the bundle published as `kube-root-ca.crt`; by
    /// default the CA the kubeconfig trusts for the API server.
    pub root_ca_file: Option<PathBuf>,
    /// The CA the CSR signer issues from, and its key.
    pub cluster_signing_cert_file: Option<PathBuf>,
    pub cluster_signing_key_file: Option<PathBuf>,
    pub cluster_signing_duration: Duration,
    /// `--terminated-pod-gc-threshold`: terminated pods kept before the
    /// oldest are deleted (0: all kept).
    pub terminated_pod_gc_threshold: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kubeconfig: PathBuf::new(),
            leader_elect: true,
            leader_elect_resource_name: "kube-controller-manager".into(),
            controllers: vec!["*".into()],
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask_size: 24,
            allocate_node_cidrs: true,
            node_monitor_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            concurrent_syncs: 5,
            root_ca_file: None,
            cluster_signing_cert_file: None,
            cluster_signing_key_file: None,
            cluster_signing_duration: Duration::from_secs(365 * 24 * 3600),
            terminated_pod_gc_threshold: 12500,
        }
    }
}

impl Config {
    /// Whether `name` is enabled by `--controllers` (`*` enables all;
    /// `-name` disables one).
    pub fn enabled(&self, name: &str) -> bool {
        let mut on = false;
        for c in &self.controllers {
            if c == "*" {
                on = true;
            } else if c == name {
                return true;
            } else if c.strip_prefix('-') == Some(name) {
                return false;
            }
        }
        on
    }
}

/// Failure to start.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Client(#[from] kubeconfig::ClientError),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    #[error("invalid --cluster-cidr: {0}")]
    Cidr(#[from] nodeipam::CidrError),
}

/// Runs the controller manager until leadership is lost.
pub async fn run(cfg: Config) -> Result<(), ManagerError> {
    let cidrs = nodeipam::CidrSet::new(&cfg.cluster_cidr, cfg.node_cidr_mask_size)?;
    let client = kubeconfig::from_kubeconfig(&cfg.kubeconfig).await?;
    if cfg.leader_elect {
        let lcfg = leader::Config::new(&cfg.leader_elect_resource_name, leader::identity());
        leader::run_as_leader(client.clone(), lcfg, run_controllers(client, cfg, cidrs)).await?;
    } else {
        run_controllers(client, cfg, cidrs).await;
    }
    Ok(())
}

fn informer<K>(client: &kube::Client) -> Informer<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    Informer::new(Api::<K>::all(client.clone()), watcher::Config::default())
}

/// Starts the informers and every enabled controller.
pub async fn run_controllers(client: kube::Client, cfg: Config, cidrs: nodeipam::CidrSet) {
    let mut pods = informer::<Pod>(&client);
    let mut rss = informer::<ReplicaSet>(&client);
    let mut deps = informer::<Deployment>(&client);
    let mut jobs = informer::<Job>(&client);
    let mut cron_jobs = informer::<CronJob>(&client);
    let mut daemonsets = informer::<DaemonSet>(&client);
    let mut revisions = informer::<ControllerRevision>(&client);
    let mut budgets = informer::<PodDisruptionBudget>(&client);
    let mut svcs = informer::<Service>(&client);
    let mut slices = informer::<EndpointSlice>(&client);
    let mut eps = informer::<Endpoints>(&client);
    let mut sas = informer::<ServiceAccount>(&client);
    let mut nodes = Informer::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    let mut nss = Informer::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    );
    let mut leases = Informer::new(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        watcher::Config::default(),
    );
    let workers = cfg.concurrent_syncs.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let endpoints_on = cfg.enabled("endpointslice") || cfg.enabled("endpoints");
    // Subscriptions are taken before the informers start.
    if cfg.enabled("replicaset") {
        tasks.spawn(replicaset::run(
            client.clone(),
            rss.store(),
            rss.subscribe(),
            pods.store(),
            pods.subscribe(),
            workers,
        ));
    }
    if cfg.enabled("deployment") {
        tasks.spawn(deployment::run(
            client.clone(),
            deps.store(),
            deps.subscribe(),
            rss.store(),
            rss.subscribe(),
            pods.store(),
            pods.subscribe(),
            workers,
        ));
    }
    if cfg.enabled("job") {
        tasks.spawn(job::run(
            client.clone(),
            jobs.store(),
            jobs.subscribe(),
            pods.store(),
            pods.subscribe(),
            workers,
        ));
    }
    if cfg.enabled("cronjob") {
        tasks.spawn(cronjob::run(
            client.clone(),
            cron_jobs.store(),
            cron_jobs.subscribe(),
            jobs.store(),
            jobs.subscribe(),
            workers,
        ));
    }
    if cfg.enabled("ttl-after-finished") {
        tasks.spawn(ttl_after_finished::run(
            client.clone(),
            jobs.store(),
            jobs.subscribe(),
        ));
    }
    if cfg.enabled("daemonset") {
        let inputs = daemonset::Inputs {
            daemonsets: daemonsets.store(),
            daemonset_rx: daemonsets.subscribe(),
            pods: pods.store(),
            pod_rx: pods.subscribe(),
            nodes: nodes.store(),
            node_rx: nodes.subscribe(),
            revisions: revisions.store(),
            revision_rx: revisions.subscribe(),
        };
        tasks.spawn(daemonset::run(client.clone(), inputs, workers));
    }
    if cfg.enabled("disruption") {
        let inputs = disruption::Inputs {
            budgets: budgets.store(),
            budget_rx: budgets.subscribe(),
            pods: pods.store(),
            pod_rx: pods.subscribe(),
            stale_rx: pods.subscribe(),
            replicasets: rss.store(),
            deployments: deps.store(),
        };
        tasks.spawn(disruption::run(client.clone(), inputs, workers));
    }
    if endpoints_on {
        let inputs = endpointslice::Inputs {
            services: svcs.store(),
            service_rx: svcs.subscribe(),
            pods: pods.store(),
            pod_rx: pods.subscribe(),
            nodes: nodes.store(),
            slices: slices.store(),
            slice_rx: slices.subscribe(),
            endpoints: eps.store(),
        };
        tasks.spawn(endpointslice::run(client.clone(), inputs, workers));
    }
    if cfg.enabled("nodelifecycle") {
        let timing = nodelifecycle::Timing {
            grace: cfg.node_monitor_grace_period,
            period: cfg.node_monitor_period,
        };
        tasks.spawn(nodelifecycle::run(
            client.clone(),
            nodes.store(),
            nodes.subscribe(),
            leases.store(),
            leases.subscribe(),
            pods.store(),
            pods.subscribe(),
            timing,
        ));
    }
    if cfg.enabled("nodeipam") && cfg.allocate_node_cidrs {
        tasks.spawn(nodeipam::run(
            client.clone(),
            nodes.store(),
            nodes.subscribe(),
            cidrs,
        ));
    }
    if cfg.enabled("serviceaccount") {
        tasks.spawn(serviceaccount::run(
            client.clone(),
            nss.store(),
            nss.subscribe(),
            sas.store(),
            sas.subscribe(),
        ));
    }
    let mut root_cas = Informer::new(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={}", root_ca::NAME)),
    );
    if cfg.enabled("root-ca-cert-publisher") {
        match root_ca_bundle(&cfg).await {
            Ok(ca) if !ca.is_empty() => {
                tasks.spawn(root_ca::run(
                    client.clone(),
                    ca,
                    nss.store(),
                    nss.subscribe(),
                    root_cas.store(),
                    root_cas.subscribe(),
                ));
            }
            Ok(_) => warn!("no root CA to publish: the kubeconfig names none"),
            Err(e) => warn!(error = %e, "no root CA to publish"),
        }
    }
    let mut cluster_roles = Informer::new(
        Api::<ClusterRole>::all(client.clone()),
        watcher::Config::default(),
    );
    if cfg.enabled("clusterrole-aggregation") {
        tasks.spawn(clusterrole_aggregation::run(
            client.clone(),
            cluster_roles.store(),
            cluster_roles.subscribe(),
        ));
    }
    let mut requests = Informer::new(
        Api::<CertificateSigningRequest>::all(client.clone()),
        watcher::Config::default(),
    );
    let signer = if cfg.enabled("csrsigning") {
        csr_signer(&cfg)
    } else {
        None
    };
    if signer.is_some() || cfg.enabled("csrapproving") {
        tasks.spawn(certificates::run(
            client.clone(),
            requests.store(),
            requests.subscribe(),
            signer,
            cfg.enabled("csrapproving"),
        ));
    }
    let mut bootstrap_tokens = Informer::new(
        Api::<Secret>::namespaced(client.clone(), "kube-system"),
        watcher::Config::default().fields("type=bootstrap.kubernetes.io/token"),
    );
    if cfg.enabled("tokencleaner") {
        tasks.spawn(token_cleaner::run(
            client.clone(),
            bootstrap_tokens.store(),
            bootstrap_tokens.subscribe(),
        ));
    }
    let mut cluster_info = Informer::new(
        Api::<ConfigMap>::namespaced(client.clone(), "kube-public"),
        watcher::Config::default().fields("metadata.name=cluster-info"),
    );
    if cfg.enabled("bootstrapsigner") {
        tasks.spawn(bootstrap_signer::run(
            client.clone(),
            cluster_info.store(),
            cluster_info.subscribe(),
            bootstrap_tokens.store(),
            bootstrap_tokens.subscribe(),
        ));
    }
    if cfg.enabled("podgc") {
        tasks.spawn(podgc::run(
            client.clone(),
            pods.store(),
            nodes.store(),
            cfg.terminated_pod_gc_threshold,
        ));
    }
    let ns_sub = cfg
        .enabled("namespace")
        .then(|| (nss.store(), nss.subscribe()));
    for i in [
        &mut pods as &mut dyn Start,
        &mut rss,
        &mut deps,
        &mut jobs,
        &mut cron_jobs,
        &mut daemonsets,
        &mut revisions,
        &mut budgets,
        &mut svcs,
        &mut slices,
        &mut eps,
        &mut sas,
        &mut nodes,
        &mut nss,
        &mut leases,
        &mut root_cas,
        &mut cluster_roles,
        &mut requests,
        &mut bootstrap_tokens,
        &mut cluster_info,
    ] {
        i.start();
    }
    // The collectors need discovery; retried until the server answers.
    if cfg.enabled("garbagecollector") || ns_sub.is_some() {
        let resources = loop {
            match resource_discovery::deletable(&client).await {
                Ok(r) => break r,
                Err(e) => {
                    warn!(error = %e, "API discovery failed; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        if let Some((store, rx)) = ns_sub {
            tasks.spawn(namespace::run(client.clone(), store, rx, resources.clone()));
        }
        if cfg.enabled("garbagecollector") {
            tasks.spawn(garbagecollector::run(
                client.clone(),
                resources.into_iter().filter(|r| r.collected()).collect(),
                workers as usize * 4,
            ));
        }
    }
    info!(controllers = ?ALL.iter().filter(|c| cfg.enabled(c)).collect::<Vec<_>>(), "controllers started");
    while tasks.join_next().await.is_some() {}
}

/// The CSR signer, when the signing CA is configured and readable.
fn csr_signer(cfg: &Config) -> Option<certificates::signer::Signer> {
    let (Some(cert), Some(key)) = (
        &cfg.cluster_signing_cert_file,
        &cfg.cluster_signing_key_file,
    ) else {
        warn!("no --cluster-signing-cert-file/--cluster-signing-key-file: CSRs are not signed");
        return None;
    };
    let read =
        |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let signer = read(cert).and_then(|cert| {
        let key = read(key)?;
        certificates::signer::Signer::new(cert, &key, cfg.cluster_signing_duration)
            .map_err(|e| e.to_string())
    });
    match signer {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "the CSR signer cannot load its CA");
            None
        }
    }
}

/// Why there is no bundle to publish.
#[derive(Debug, thiserror::Error)]
enum RootCaError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::ClientError),
}

/// The bundle `kube-root-ca.crt` publishes: `--root-ca-file`, or the CA
/// the controller manager's kubeconfig trusts for the API server.
async fn root_ca_bundle(cfg: &Config) -> Result<String, RootCaError> {
    match &cfg.root_ca_file {
        Some(path) => std::fs::read_to_string(path).map_err(|source| RootCaError::Read {
            path: path.clone(),
            source,
        }),
        None => Ok(kubeconfig::server_ca_pem(&cfg.kubeconfig).await?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_flag_enables_and_disables() {
        let mut c = Config::default();
        assert!(c.enabled("deployment"));
        c.controllers = vec!["*".into(), "-nodeipam".into()];
        assert!(!c.enabled("nodeipam") && c.enabled("replicaset"));
        c.controllers = vec!["replicaset".into()];
        assert!(c.enabled("replicaset") && !c.enabled("deployment"));
    }
}
