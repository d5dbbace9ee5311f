//! Health endpoints as kube-proxy serves them (`pkg/proxy/healthcheck`):
//!
//! - one HTTP server per `healthCheckNodePort` of a LoadBalancer service
//!   with `externalTrafficPolicy: Local`, on every address of the node,
//!   answering any request with
//!   `{"service":{"namespace":…,"name":…},"localEndpoints":N,"serviceProxyHealthy":…}`
//!   and `X-Load-Balancing-Endpoint-Weight: N` — 200 when N > 0 and the
//!   proxy is healthy, 503 otherwise — so an external load balancer only
//!   sends to nodes with a local endpoint;
//! - the proxy's own health ([`ProxyHealth`]) for `/healthz` and `/livez`:
//!   healthy once the first sync is done and while no queued change has
//!   waited longer than the timeout (twice the sync period, as kube-proxy);
//!   `/healthz` also needs the node to be eligible (not being deleted, not
//!   tainted `ToBeDeletedByClusterAutoscaler`).

use std::{
    collections::{BTreeMap, HashMap},
    net::{Ipv4Addr, SocketAddr, TcpListener},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime},
};

use http::{Method, StatusCode};
use jiff::Timestamp;
use tracing::{info, warn};

use super::{
    server::{self, Answer, Handler},
    translate::{HealthCheck, ServiceRef},
};

/// The proxy's health, shared by the sync loop and the servers.
#[derive(Debug)]
pub struct ProxyHealth {
    timeout: Duration,
    inner: Mutex<HealthInner>,
}

#[derive(Debug, Clone, Copy)]
struct HealthInner {
    last_updated: Option<SystemTime>,
    oldest_queued: Option<Instant>,
    node_eligible: bool,
}

impl ProxyHealth {
    /// Unhealthy until the first [`Self::updated`].
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            inner: Mutex::new(HealthInner {
                last_updated: None,
                oldest_queued: None,
                node_eligible: true,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HealthInner) -> T) -> T {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// A change was queued for a sync.
    pub fn queued(&self) {
        self.with(|inner| {
            inner.oldest_queued.get_or_insert_with(Instant::now);
        });
    }

    /// A sync finished with everything queued so far.
    pub fn updated(&self) {
        self.with(|inner| {
            inner.last_updated = Some(SystemTime::now());
            inner.oldest_queued = None;
        });
    }

    /// Whether the node may get load-balancer traffic.
    pub fn set_node_eligible(&self, eligible: bool) {
        self.with(|inner| inner.node_eligible = eligible);
    }

    /// Whether the proxy is keeping up.
    #[must_use]
    pub fn healthy(&self) -> bool {
        self.with(|inner| {
            inner.last_updated.is_some()
                && inner
                    .oldest_queued
                    .is_none_or(|queued| queued.elapsed() < self.timeout)
        })
    }

    /// `/healthz` and `/livez` as kube-proxy answers them.
    #[must_use]
    pub fn answer(&self, path: &str) -> Answer {
        let path = path.split('?').next().unwrap_or_default();
        let healthy = self.healthy();
        let inner = self.with(|inner| *inner);
        let stamp = |time: Option<SystemTime>| {
            time.and_then(|time| Timestamp::try_from(time).ok())
                .map_or_else(String::new, |time| time.to_string())
        };
        let (ok, body) = match path {
            "/healthz" => (
                healthy && inner.node_eligible,
                format!(
                    "{{\"lastUpdated\": {:?},\"currentTime\": {:?}, \"nodeEligible\": {}}}",
                    stamp(inner.last_updated),
                    stamp(Some(SystemTime::now())),
                    inner.node_eligible
                ),
            ),
            "/livez" => (
                healthy,
                format!(
                    "{{\"lastUpdated\": {:?},\"currentTime\": {:?}}}",
                    stamp(inner.last_updated),
                    stamp(Some(SystemTime::now()))
                ),
            ),
            _ => return Answer::not_found(),
        };
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut answer = Answer::new(status, "application/json", body);
        answer
            .headers
            .push(("X-Content-Type-Options", "nosniff".into()));
        answer
    }
}

/// The answer of a service's health-check node port.
#[must_use]
pub fn service_answer(service: &ServiceRef, local_endpoints: usize, proxy_healthy: bool) -> Answer {
    let status = if local_endpoints != 0 && proxy_healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "service": {"namespace": service.namespace, "name": service.name},
        "localEndpoints": local_endpoints,
        "serviceProxyHealthy": proxy_healthy,
    });
    let mut answer = Answer::new(status, "application/json", body.to_string());
    answer
        .headers
        .push(("X-Content-Type-Options", "nosniff".into()));
    answer.headers.push((
        "X-Load-Balancing-Endpoint-Weight",
        local_endpoints.to_string(),
    ));
    answer
}

/// One health-check server.
#[derive(Debug)]
struct Server {
    service: ServiceRef,
    task: tokio::task::JoinHandle<()>,
}

/// The health-check node port servers of this node.
#[derive(Debug)]
pub struct HealthChecks {
    bind: Ipv4Addr,
    runtime: tokio::runtime::Handle,
    health: Arc<ProxyHealth>,
    /// Service → (port, local endpoints), read by the servers.
    counts: Arc<RwLock<HashMap<ServiceRef, usize>>>,
    servers: BTreeMap<u16, Server>,
    /// Ports that could not be opened, with the error last reported.
    failed: BTreeMap<u16, String>,
}

impl HealthChecks {
    /// Servers bind `bind` (0.0.0.0: every address of the node) and spawn
    /// on `runtime`.
    #[must_use]
    pub fn new(bind: Ipv4Addr, runtime: tokio::runtime::Handle, health: Arc<ProxyHealth>) -> Self {
        Self {
            bind,
            runtime,
            health,
            counts: Arc::default(),
            servers: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    /// Opens, keeps or closes servers so that exactly `desired` are served,
    /// with its counts. Returns the ports that newly failed to open (for
    /// an Event), as (service, message); they are tried again on the next
    /// call.
    pub fn sync(
        &mut self,
        desired: &BTreeMap<ServiceRef, HealthCheck>,
    ) -> Vec<(ServiceRef, String)> {
        if let Ok(mut counts) = self.counts.write() {
            counts.clear();
            counts.extend(
                desired
                    .iter()
                    .map(|(service, check)| (service.clone(), check.local_endpoints)),
            );
        }
        let wanted: BTreeMap<u16, &ServiceRef> = desired
            .iter()
            .map(|(service, check)| (check.port, service))
            .collect();
        let stale: Vec<u16> = self
            .servers
            .iter()
            .filter(|(port, server)| wanted.get(port) != Some(&&server.service))
            .map(|(port, _)| *port)
            .collect();
        for port in stale {
            if let Some(server) = self.servers.remove(&port) {
                server.task.abort();
                info!(port, service = %server.service, "health check closed");
            }
        }
        self.failed.retain(|port, _| wanted.contains_key(port));
        let mut failures = Vec::new();
        for (port, service) in wanted {
            if self.servers.contains_key(&port) {
                continue;
            }
            match self.open(port, service) {
                Ok(task) => {
                    self.failed.remove(&port);
                    info!(port, %service, "health check serving");
                    self.servers.insert(
                        port,
                        Server {
                            service: service.clone(),
                            task,
                        },
                    );
                }
                Err(error) => {
                    let message = format!(
                        "failed to start healthcheck \"{service}\" on port {port}: {error}"
                    );
                    if self.failed.get(&port) != Some(&message) {
                        warn!(port, %service, %error, "health check not serving");
                        failures.push((service.clone(), message.clone()));
                    }
                    self.failed.insert(port, message);
                }
            }
        }
        failures
    }

    /// Ports being served.
    #[must_use]
    pub fn ports(&self) -> Vec<u16> {
        self.servers.keys().copied().collect()
    }

    fn open(
        &self,
        port: u16,
        service: &ServiceRef,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let listener = TcpListener::bind(SocketAddr::from((self.bind, port)))?;
        listener.set_nonblocking(true)?;
        let _guard = self.runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let counts = Arc::clone(&self.counts);
        let health = Arc::clone(&self.health);
        let service = service.clone();
        let handler: Handler = Arc::new(move |_method: &Method, _path: &str| {
            let count = counts
                .read()
                .ok()
                .and_then(|counts| counts.get(&service).copied())
                .unwrap_or(0);
            service_answer(&service, count, health.healthy())
        });
        Ok(self.runtime.spawn(server::serve(listener, handler)))
    }
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for server in self.servers.values() {
            server.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_answers_follow_kube_proxy() {
        let service = ServiceRef::new("shop", "web");
        let ok = service_answer(&service, 2, true);
        assert_eq!(ok.status, StatusCode::OK);
        let body: serde_json::Value = serde_json::from_str(&ok.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"service": {"namespace": "shop", "name": "web"},
                               "localEndpoints": 2, "serviceProxyHealthy": true})
        );
        assert!(
            ok.headers
                .contains(&("X-Load-Balancing-Endpoint-Weight", "2".into()))
        );
        assert_eq!(
            service_answer(&service, 0, true).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            service_answer(&service, 3, false).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn proxy_health_needs_a_sync_and_no_stale_queue() {
        let health = ProxyHealth::new(Duration::from_millis(50));
        assert!(!health.healthy());
        assert_eq!(
            health.answer("/healthz").status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.updated();
        assert!(health.healthy());
        assert_eq!(health.answer("/livez").status, StatusCode::OK);
        health.queued();
        assert!(health.healthy());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!health.healthy(), "a change waited longer than the timeout");
        health.updated();
        assert!(health.healthy());
        health.set_node_eligible(false);
        assert_eq!(
            health.answer("/healthz").status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(health.answer("/livez").status, StatusCode::OK);
        assert!(
            health
                .answer("/healthz")
                .body
                .contains("\"nodeEligible\": false")
        );
        assert_eq!(health.answer("/other").status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn servers_open_close_and_report_busy_ports() {
        let health = Arc::new(ProxyHealth::new(Duration::from_secs(60)));
        health.updated();
        let mut checks = HealthChecks::new(
            Ipv4Addr::LOCALHOST,
            tokio::runtime::Handle::current(),
            Arc::clone(&health),
        );
        // A port in use by someone else.
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let free_port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let web = ServiceRef::new("default", "web");
        let db = ServiceRef::new("default", "db");
        let desired = BTreeMap::from([
            (
                web.clone(),
                HealthCheck {
                    port: free_port,
                    local_endpoints: 1,
                },
            ),
            (
                db.clone(),
                HealthCheck {
                    port: busy_port,
                    local_endpoints: 1,
                },
            ),
        ]);
        let failures = checks.sync(&desired);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, db);
        assert_eq!(checks.ports(), vec![free_port]);
        // Reported once, not again while still failing.
        assert!(checks.sync(&desired).is_empty());

        let body = get(free_port).await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("\"localEndpoints\":1"), "{body}");

        let desired = BTreeMap::from([(
            web.clone(),
            HealthCheck {
                port: free_port,
                local_endpoints: 0,
            },
        )]);
        checks.sync(&desired);
        let body = get(free_port).await;
        assert!(body.starts_with("HTTP/1.1 503"), "{body}");

        checks.sync(&BTreeMap::new());
        assert!(checks.ports().is_empty());
        drop(busy);
    }

    async fn get(port: u16) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }
}
