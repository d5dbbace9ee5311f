//! The eBPF service proxy: baton's kube-proxy replacement.
//!
//! It watches Services, EndpointSlices and this node's Node with
//! kube-runtime reflectors ([`watch`]), translates each Service and its
//! slices into dataplane [`ServiceSpec`](crate::dataplane::ServiceSpec)s
//! with kube-proxy's rules ([`translate`]), and keeps the BPF maps equal to
//! that desired state, writing only what changed ([`sync`], driven by the
//! coalescing loop of [`sync_loop`]). At start it reconciles with the maps
//! pinned by the previous run, so a restart keeps every established
//! connection. Failures (a full map, a frontend owned by another service)
//! are logged, counted, reported as Events on the Service ([`events`]) and
//! retried. It also serves the health-check node ports of Local-policy
//! LoadBalancer services and the node's `/healthz` ([`healthcheck`]) and
//! Prometheus metrics ([`metrics`]). Node settings (SNAT address, pod
//! routing, forwarding, NodePort addresses) and the socket/uplink
//! attachments are made at start by [`node_setup`]. The routes to the other
//! nodes' podCIDRs that NodePort forwarding also looks up belong to pod
//! networking (`podnet::routes`), started beside the proxy.

pub mod cli;
pub mod events;
pub mod healthcheck;
pub mod metrics;
pub mod node_setup;
pub mod server;
pub mod sync;
pub mod sync_loop;
pub mod translate;
pub mod watch;

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use self::server::Handler;
use kube::Client;
use prometheus_client::registry::Registry;
use tracing::info;

pub use self::{
    healthcheck::ProxyHealth,
    node_setup::{NodeSetup, NodeSetupError},
    sync::Backoff,
    translate::{ALGORITHM_ANNOTATION, ServiceRef},
};
use crate::dataplane::{Algorithm, SharedDataplane};

/// How the proxy runs. Defaults are kube-proxy's where it has one.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name (local endpoints, the Node watched).
    pub node_name: String,
    /// Backend selection of services without [`ALGORITHM_ANNOTATION`].
    pub default_algorithm: Algorithm,
    /// Node settings and attachments.
    pub node: NodeSetup,
    /// A batch of changes is synced once no change came for this long…
    pub debounce: Duration,
    /// …or once its first change is this old.
    pub max_delay: Duration,
    /// Everything is recomputed (only differences written) this often.
    pub sync_period: Duration,
    /// Expired conntrack entries are removed this often.
    pub conntrack_gc_interval: Duration,
    /// Retries of a service port that could not be programmed.
    pub retry: Backoff,
    /// Prometheus metrics (`/metrics`); `None`: off.
    pub metrics_addr: Option<SocketAddr>,
    /// `/healthz` and `/livez`; `None`: off.
    pub healthz_addr: Option<SocketAddr>,
    /// Address the health-check node ports listen on (0.0.0.0: all).
    pub health_check_bind: Ipv4Addr,
    /// Where the service names of `baton-node dataplane dump` are written.
    pub state_dir: Option<PathBuf>,
}

impl Config {
    /// kube-proxy-like defaults for `node_name` with `node`.
    #[must_use]
    pub fn new(node_name: impl Into<String>, node: NodeSetup) -> Self {
        Self {
            node_name: node_name.into(),
            default_algorithm: Algorithm::Random,
            node,
            debounce: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            sync_period: Duration::from_secs(30),
            conntrack_gc_interval: Duration::from_secs(15),
            retry: Backoff::default(),
            metrics_addr: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 10249))),
            healthz_addr: Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 10256))),
            health_check_bind: Ipv4Addr::UNSPECIFIED,
            state_dir: None,
        }
    }
}

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Node(#[from] NodeSetupError),
    #[error("listen on {addr} for {what}: {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the sync loop stopped: {0}")]
    Stopped(String),
}

/// Runs the proxy until its watches end (never, in practice); returns an
/// error if it cannot start.
pub async fn run(
    client: Client,
    dataplane: SharedDataplane,
    config: Config,
) -> Result<(), ProxyError> {
    let attachments = {
        let mut guard = dataplane
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        config.node.apply(&mut guard)?
    };

    let metrics = Arc::new(metrics::ProxyMetrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let collector = metrics::DataplaneCollector::new(Arc::clone(&dataplane));
    let names = Arc::clone(&collector.names);
    registry.register_collector(Box::new(collector));
    let registry = Arc::new(registry);
    let health = Arc::new(ProxyHealth::new(config.sync_period * 2));

    if let Some(addr) = config.metrics_addr {
        let registry = Arc::clone(&registry);
        let health = Arc::clone(&health);
        let handler: Handler =
            Arc::new(
                move |_method, path| match path.split('?').next().unwrap_or_default() {
                    "/metrics" => server::Answer::new(
                        http::StatusCode::OK,
                        crate::metrics::CONTENT_TYPE,
                        crate::metrics::render(&registry),
                    ),
                    "/healthz" | "/livez" => health.answer(path),
                    _ => server::Answer::not_found(),
                },
            );
        let bound = server::spawn(addr, handler)
            .await
            .map_err(|source| ProxyError::Listen {
                what: "metrics",
                addr,
                source,
            })?;
        info!(%bound, "metrics served at /metrics");
    }
    if let Some(addr) = config.healthz_addr {
        let health = Arc::clone(&health);
        let handler: Handler = Arc::new(move |_method, path| health.answer(path));
        let bound = server::spawn(addr, handler)
            .await
            .map_err(|source| ProxyError::Listen {
                what: "healthz",
                addr,
                source,
            })?;
        info!(%bound, "health served at /healthz and /livez");
    }

    let (changes_tx, changes_rx) = std::sync::mpsc::channel();
    let stores = watch::start(&client, &config.node_name, &changes_tx);
    drop(changes_tx);
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(events::publish(
        client,
        config.node_name.clone(),
        stores.services.clone(),
        events_rx,
    ));
    stores.ready().await;
    info!(
        services = stores.services.len(),
        endpoint_slices = stores.slices.len(),
        "proxy caches synced"
    );

    let health_checks = healthcheck::HealthChecks::new(
        config.health_check_bind,
        tokio::runtime::Handle::current(),
        Arc::clone(&health),
    );
    let sync_loop = sync_loop::SyncLoop::new(
        config,
        stores,
        changes_rx,
        dataplane,
        metrics,
        names,
        events_tx,
        health,
        health_checks,
    );
    let result = tokio::task::spawn_blocking(move || sync_loop.run()).await;
    drop(attachments);
    result.map_err(|error| ProxyError::Stopped(error.to_string()))?;
    Err(ProxyError::Stopped("every watch ended".into()))
}
