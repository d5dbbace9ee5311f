//! The Kubernetes API server: HTTPS front end over etcd.
//!
//! `run` wires it together: certificates and the admin kubeconfig, the
//! store (etcd, watch caches, compaction), the registry, the bootstrap
//! objects, the audit log, and the HTTPS listener.

pub mod audit;
pub mod auth;
pub mod certs;
pub mod codec;
pub mod discovery;
pub mod etcd_pki;
pub mod handlers;
pub mod kubeconfig;
pub mod kubelet;
pub mod metrics;
pub mod openapi;
pub mod router;
pub mod selectors;
pub mod server;
pub mod streaming;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::registry::Registry;
use crate::registry::allocator::{RangeError, ServiceNetwork};
use crate::registry::bootstrap::Endpoint;
use crate::storage::encryption::{ConfigError, EncryptionConfig};
use crate::storage::{Encryption, EtcdTls, StorageConfig, StorageError, Store};

/// API server settings (flags named like kube-apiserver's).
#[derive(Debug, Clone)]
pub struct Config {
    pub etcd_servers: Vec<String>,
    pub bind_address: IpAddr,
    pub secure_port: u16,
    /// Address clients and pods reach the server at; defaults to the bind
    /// address (or 127.0.0.1 when binding every address).
    pub advertise_address: Option<IpAddr>,
    pub cert_dir: PathBuf,
    pub admin_kubeconfig: Option<PathBuf>,
    pub service_cluster_ip_range: String,
    pub service_node_port_range: String,
    pub etcd_request_timeout: Duration,
    pub etcd_compaction_interval: Duration,
    /// Node address types tried, in order, to reach a kubelet.
    pub kubelet_preferred_address_types: Vec<String>,
    /// `--disable-admission-plugins`: admission plugins turned off (only
    /// [`SERVICE_ACCOUNT_PLUGIN`] can be).
    pub disabled_admission_plugins: Vec<String>,
    /// Requests without credentials are `system:anonymous` (`--anonymous-auth`).
    pub anonymous_auth: bool,
    /// `--authorization-mode`: the authorizers asked, in order.
    pub authorization_modes: Vec<auth::authorizer::Mode>,
    /// `--encryption-provider-config`: an EncryptionConfiguration file
    /// naming the resources encrypted at rest and their keys.
    pub encryption_provider_config: Option<PathBuf>,
    /// `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`: etcd's CA and
    /// this server's client certificate (mutual TLS to `https://` servers).
    pub etcd_cafile: Option<PathBuf>,
    pub etcd_certfile: Option<PathBuf>,
    pub etcd_keyfile: Option<PathBuf>,
    /// `--audit-policy-file`: what is audited. Auditing is on when this
    /// and [`Config::audit_log`] are both set.
    pub audit_policy_file: Option<PathBuf>,
    /// `--audit-log-path` and its rotation: where events are written.
    pub audit_log: Option<audit::log::LogConfig>,
    /// `--service-account-jwks-uri`: the key set's URL in the issuer's
    /// discovery document, when relying parties fetch it elsewhere than
    /// from this server (by default `https://<advertise>:<port>/openid/v1/jwks`).
    pub service_account_jwks_uri: Option<String>,
}

/// The admission plugin that checks a pod's ServiceAccount and mounts its
/// token.
pub const SERVICE_ACCOUNT_PLUGIN: &str = "ServiceAccount";

impl Default for Config {
    fn default() -> Self {
        Config {
            etcd_servers: vec!["http://127.0.0.1:2379".into()],
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            secure_port: 6443,
            advertise_address: None,
            cert_dir: PathBuf::from("/var/lib/baton/pki"),
            admin_kubeconfig: None,
            service_cluster_ip_range: "10.96.0.0/12".into(),
            service_node_port_range: "30000-32767".into(),
            etcd_request_timeout: Duration::from_secs(5),
            etcd_compaction_interval: Duration::from_secs(300),
            kubelet_preferred_address_types: kubelet::DEFAULT_PREFERRED_ADDRESS_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            disabled_admission_plugins: Vec::new(),
            authorization_modes: vec![auth::authorizer::Mode::Node, auth::authorizer::Mode::Rbac],
            anonymous_auth: true,
            encryption_provider_config: None,
            etcd_cafile: None,
            etcd_certfile: None,
            etcd_keyfile: None,
            audit_policy_file: None,
            audit_log: None,
            service_account_jwks_uri: None,
        }
    }
}

impl Config {
    pub fn advertise(&self) -> IpAddr {
        match self.advertise_address {
            Some(a) => a,
            None if self.bind_address.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            None => self.bind_address,
        }
    }

    /// `https://<advertise>:<port>`.
    pub fn server_url(&self) -> String {
        match self.advertise() {
            IpAddr::V6(a) => format!("https://[{a}]:{}", self.secure_port),
            a => format!("https://{a}:{}", self.secure_port),
        }
    }
}

/// Errors starting the API server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    #[error(transparent)]
    Range(#[from] RangeError),
    #[error(transparent)]
    Kubelet(#[from] kubelet::KubeletError),
    #[error(transparent)]
    Tokens(#[from] auth::tokens::TokenError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    IssuerDiscovery(#[from] auth::issuer_discovery::DiscoveryError),
    #[error("admission plugin {0:?} cannot be disabled (only {SERVICE_ACCOUNT_PLUGIN:?} can)")]
    AdmissionPlugin(String),
    #[error(transparent)]
    Encryption(#[from] ConfigError),
    #[error("etcd TLS: {0}")]
    EtcdTls(String),
}

/// A running API server.
pub struct Running {
    pub addr: SocketAddr,
    pub registry: Arc<Registry>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Serves until the process ends.
    pub async fn wait(mut self) {
        if let Some(t) = self.tasks.pop() {
            let _ = t.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the API server: returns once it listens.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let mut service_account_admission = true;
    for plugin in &config.disabled_admission_plugins {
        if plugin != SERVICE_ACCOUNT_PLUGIN {
            return Err(StartError::AdmissionPlugin(plugin.clone()));
        }
        service_account_admission = false;
    }
    let network = ServiceNetwork::parse(
        &config.service_cluster_ip_range,
        &config.service_node_port_range,
    )?;
    let ca = certs::Ca::load_or_create(&config.cert_dir)?;
    let advertise = config.advertise();
    let mut ips = vec![
        advertise,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(network.first_ip()),
    ];
    if !config.bind_address.is_unspecified() {
        ips.push(config.bind_address);
    }
    ips.sort();
    ips.dedup();
    let mut dns: Vec<String> = certs::SERVICE_DNS_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim().to_string();
        if !h.is_empty() && !dns.contains(&h) {
            dns.push(h);
        }
    }
    let serving = certs::serving_pair(&ca, &config.cert_dir, &dns, &ips)?;
    if let Some(path) = &config.admin_kubeconfig {
        let admin = certs::client_pair(
            &ca,
            &config.cert_dir,
            "admin",
            "kubernetes-admin",
            &["system:masters".to_string()],
        )?;
        let text = kubeconfig::render(
            &config.server_url(),
            &ca.cert_pem,
            "kubernetes-admin",
            &admin,
        )?;
        kubeconfig::write(path, &text)?;
    }
    // The client certificate kubelets accept from the API server
    // (kubeadm's `apiserver-kubelet-client`).
    let kubelet_client = certs::client_pair(
        &ca,
        &config.cert_dir,
        "apiserver-kubelet-client",
        crate::registry::bootstrap_policy::APISERVER_KUBELET_CLIENT,
        &["kubeadm:cluster-admins".to_string()],
    )?;
    let kubelet = Arc::new(kubelet::KubeletClient::new(
        &ca.cert_pem,
        &kubelet_client,
        config.kubelet_preferred_address_types.clone(),
    )?);
    let tokens = Arc::new(auth::tokens::ServiceAccountKey::new(
        &certs::service_account_key(&config.cert_dir)?,
    )?);
    let auditor = match (&config.audit_policy_file, &config.audit_log) {
        (Some(policy), Some(log)) => Some(Arc::new(audit::Auditor::open(policy, log)?)),
        (Some(_), None) => {
            tracing::warn!("--audit-policy-file without --audit-log-path: no audit log is written");
            None
        }
        (None, Some(_)) => {
            tracing::warn!("--audit-log-path without --audit-policy-file: nothing is audited");
            None
        }
        (None, None) => None,
    };
    let tls = server::tls_config(&ca.cert_pem, &serving)?;
    let encryption = match &config.encryption_provider_config {
        Some(path) => Encryption::new(EncryptionConfig::load(path)?),
        None => Encryption::none(),
    };
    let etcd_tls = match (
        &config.etcd_cafile,
        &config.etcd_certfile,
        &config.etcd_keyfile,
    ) {
        (None, None, None) => None,
        (Some(ca), Some(cert), Some(key)) => Some(EtcdTls::load(ca, cert, key).map_err(|e| {
            StartError::EtcdTls(format!(
                "reading {}, {}, {}: {e}",
                ca.display(),
                cert.display(),
                key.display()
            ))
        })?),
        _ => {
            return Err(StartError::EtcdTls(
                "--etcd-cafile, --etcd-certfile and --etcd-keyfile go together".into(),
            ));
        }
    };
    let store = Store::start(&StorageConfig {
        endpoints: config.etcd_servers.clone(),
        request_timeout: config.etcd_request_timeout,
        compaction_interval: config.etcd_compaction_interval,
        tls: etcd_tls,
        encryption: Arc::new(encryption),
    })
    .await?;
    let registry = Arc::new(Registry {
        store,
        network,
        service_account_admission,
    });
    // apiserver_storage_objects, refreshed like kube-apiserver's (which
    // counts every minute; the watch caches make it cheap to do more often).
    let counted = registry.clone();
    let counter = tokio::spawn(async move {
        loop {
            for r in crate::kinds::RESOURCES {
                if let Some(cache) = counted.store.cache(r)
                    && cache.is_ready()
                {
                    metrics::set_objects(r.group, r.version, r.kind, cache.len());
                }
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let bootstrap = tokio::spawn(registry.clone().run_bootstrap(
        Endpoint {
            address: advertise,
            port: config.secure_port,
            ca_pem: ca.cert_pem.clone(),
        },
        ready_tx,
    ));
    let listener = server::bind(SocketAddr::new(config.bind_address, config.secure_port)).await?;
    let addr = listener
        .local_addr()
        .unwrap_or(SocketAddr::new(config.bind_address, config.secure_port));
    let server_address = format!("{}:{}", advertise, addr.port());
    let external_address = match advertise {
        IpAddr::V6(a) => format!("[{a}]:{}", addr.port()),
        a => format!("{a}:{}", addr.port()),
    };
    let jwks_uri = config
        .service_account_jwks_uri
        .clone()
        .unwrap_or_else(|| auth::issuer_discovery::default_jwks_uri(&external_address));
    let issuer_discovery = Arc::new(auth::issuer_discovery::IssuerDiscovery::new(
        auth::tokens::ISSUER,
        &jwks_uri,
        &[&tokens],
    )?);
    let api = Arc::new(handlers::Api {
        registry: registry.clone(),
        server_address,
        bootstrapped: ready_rx,
        kubelet,
        token_auth: auth::token_auth::TokenAuthenticator::new(tokens.clone(), registry.clone()),
        authorizer: Arc::new(auth::authorizer::Authorizer::new(
            config.authorization_modes.clone(),
            registry.clone(),
        )),
        anonymous_auth: config.anonymous_auth,
        tokens,
        issuer_discovery,
        auditor,
    });
    info!(%addr, url = %config.server_url(), "API server listening");
    let serving_task = tokio::spawn(server::serve(listener, tls, api));
    Ok(Running {
        addr,
        registry,
        tasks: vec![counter, bootstrap, serving_task],
    })
}
