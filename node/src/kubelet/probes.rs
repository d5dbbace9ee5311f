//! Liveness, readiness and startup probes: one task per probed container
//! running its probe (`httpGet` and `tcpSocket` from the node's network
//! namespace to the pod IP, `exec` through CRI `ExecSync`) every
//! `periodSeconds` after `initialDelaySeconds`, with `timeoutSeconds`, and
//! `successThreshold`/`failureThreshold` deciding when a result flips
//! (`pkg/kubelet/prober/worker.go`). The results drive the Ready
//! condition and liveness restarts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cri::Cri;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::Startup => "Startup",
        }
    }
}

/// One probe run's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

/// The probe settings with Kubernetes' defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    #[must_use]
    pub fn of(probe: &Probe) -> Self {
        let secs = |v: Option<i32>, default: i32| {
            Duration::from_secs(u64::try_from(v.unwrap_or(default).max(0)).unwrap_or(0))
        };
        let count =
            |v: Option<i32>, default: i32| u32::try_from(v.unwrap_or(default).max(1)).unwrap_or(1);
        Self {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// Turns consecutive outcomes into a result, per thresholds.
#[derive(Debug, Clone)]
pub struct Tracker {
    timing: Timing,
    successes: u32,
    failures: u32,
    /// The current result (`None` until a threshold is reached).
    pub result: Option<bool>,
}

impl Tracker {
    #[must_use]
    pub fn new(timing: Timing, initial: Option<bool>) -> Self {
        Self {
            timing,
            successes: 0,
            failures: 0,
            result: initial,
        }
    }

    /// Records one outcome; returns the result when it changed.
    pub fn observe(&mut self, outcome: &Outcome) -> Option<bool> {
        match outcome {
            Outcome::Success => {
                self.successes += 1;
                self.failures = 0;
                if self.successes >= self.timing.success_threshold && self.result != Some(true) {
                    self.result = Some(true);
                    return Some(true);
                }
            }
            Outcome::Failure(_) => {
                self.failures += 1;
                self.successes = 0;
                if self.failures >= self.timing.failure_threshold && self.result != Some(false) {
                    self.result = Some(false);
                    return Some(false);
                }
            }
        }
        None
    }
}

/// The results every probe task writes and the pod workers read.
#[derive(Debug, Default)]
pub struct Results {
    /// Readiness per container ID.
    pub ready: HashMap<String, bool>,
    /// Startup passed, per container ID.
    pub started: HashMap<String, bool>,
    /// Containers whose liveness or startup probe has failed.
    pub failed: HashSet<String>,
}

/// A probe failure to report as an `Unhealthy` event.
#[derive(Debug, Clone)]
pub struct Failure {
    pub container: String,
    pub kind: Kind,
    pub message: String,
}

/// Runs one probe once.
pub async fn run_once(
    cri: &Cri,
    container_id: &str,
    pod_ip: &str,
    probe: &Probe,
    timeout: Duration,
) -> Outcome {
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        return match cri.exec_sync(container_id, cmd, timeout).await {
            Ok(out) if out.exit_code == 0 => Outcome::Success,
            Ok(out) => Outcome::Failure(format!(
                "command failed with exit code {}: {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stdout).trim()
            )),
            Err(err) => Outcome::Failure(err.to_string()),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp.host.clone().unwrap_or_else(|| pod_ip.to_owned());
        let Some(port) = port_of(&tcp.port) else {
            return Outcome::Failure(format!("couldn't find port: {:?}", tcp.port));
        };
        return match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await
        {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(err)) => Outcome::Failure(format!("dial tcp {host}:{port}: {err}")),
            Err(_) => Outcome::Failure(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if let Some(http) = &probe.http_get {
        return match tokio::time::timeout(timeout, http_get(http, pod_ip)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failure(format!(
                "Get \"http://{pod_ip}{}\": context deadline exceeded",
                http.path.as_deref().unwrap_or("/")
            )),
        };
    }
    Outcome::Failure("probe has no handler".into())
}

/// `probe` with its named ports (`port: http`) replaced by the number of
/// the container's port of that name, as the kubelet's prober resolves them
/// (`findPortByName`). A name no port has is left for the run to report.
#[must_use]
pub fn with_named_ports(probe: &Probe, container: &Container) -> Probe {
    let resolve = |port: &mut IntOrString| {
        if let IntOrString::String(name) = port
            && name.parse::<u16>().is_err()
            && let Some(p) = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
        {
            *port = IntOrString::Int(p.container_port);
        }
    };
    let mut probe = probe.clone();
    if let Some(tcp) = &mut probe.tcp_socket {
        resolve(&mut tcp.port);
    }
    if let Some(http) = &mut probe.http_get {
        resolve(&mut http.port);
    }
    probe
}

fn port_of(port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(s) => s.parse().ok(),
    }
}

/// An HTTP/1.1 GET as the kubelet's prober does it: success for status
/// 200–399. Written directly over TCP: one request, `Connection: close`,
/// only the status line matters.
async fn http_get(http: &HTTPGetAction, pod_ip: &str) -> Outcome {
    let host = http
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod_ip.to_owned());
    let Some(port) = port_of(&http.port) else {
        return Outcome::Failure(format!("couldn't find port: {:?}", http.port));
    };
    let path = http.path.clone().unwrap_or_else(|| "/".into());
    let url = format!("http://{host}:{port}{path}");
    if http.scheme.as_deref() == Some("HTTPS") {
        return Outcome::Failure(format!(
            "Get \"https://{host}:{port}{path}\": HTTPS probes are not supported"
        ));
    }
    let mut stream = match TcpStream::connect((host.as_str(), port)).await {
        Ok(s) => s,
        Err(err) => {
            return Outcome::Failure(format!("Get \"{url}\": dial tcp {host}:{port}: {err}"));
        }
    };
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for h in http.http_headers.iter().flatten() {
        request.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    request.push_str("\r\n");
    if let Err(err) = stream.write_all(request.as_bytes()).await {
        return Outcome::Failure(format!("Get \"{url}\": {err}"));
    }
    let mut head = vec![0u8; 256];
    let mut filled = 0;
    while filled < head.len() && !head[..filled].contains(&b'\n') {
        match stream.read(&mut head[filled..]).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) => return Outcome::Failure(format!("Get \"{url}\": {err}")),
        }
    }
    let line = String::from_utf8_lossy(&head[..filled]);
    let code: Option<u16> = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    match code {
        Some(c) if (200..400).contains(&c) => Outcome::Success,
        Some(c) => Outcome::Failure(format!("HTTP probe failed with statuscode: {c}")),
        None => Outcome::Failure(format!("Get \"{url}\": malformed HTTP response")),
    }
}

/// A running probe task and the way to make it probe at once.
#[derive(Debug)]
struct Task {
    handle: JoinHandle<()>,
    trigger: Arc<Notify>,
}

/// The probe tasks of one node.
#[derive(Debug, Default)]
pub struct Prober {
    pub results: Arc<Mutex<Results>>,
    tasks: Mutex<HashMap<(String, Kind), Task>>,
}

impl Prober {
    /// Starts the probe `kind` of a running container unless it runs;
    /// returns whether it started it (its first run is at once, after
    /// `initialDelaySeconds`). `notify` wakes the pod's worker on a
    /// change; `failures` gets every failed run (for `Unhealthy` events).
    #[allow(clippy::too_many_arguments)]
    pub fn ensure(
        &self,
        cri: &Cri,
        container_id: &str,
        container: &str,
        pod_ip: &str,
        kind: Kind,
        probe: &Probe,
        notify: Arc<Notify>,
        failures: tokio::sync::mpsc::UnboundedSender<Failure>,
    ) -> bool {
        let key = (container_id.to_owned(), kind);
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tasks.get(&key).is_some_and(|t| !t.handle.is_finished()) {
            return false;
        }
        let trigger = Arc::new(Notify::new());
        let triggered = Arc::clone(&trigger);
        let timing = Timing::of(probe);
        let results = Arc::clone(&self.results);
        let (cri, id, name, ip, probe) = (
            cri.clone(),
            container_id.to_owned(),
            container.to_owned(),
            pod_ip.to_owned(),
            probe.clone(),
        );
        let task = tokio::spawn(async move {
            // Readiness starts false, liveness and startup start passing.
            let initial = match kind {
                Kind::Readiness => Some(false),
                Kind::Liveness | Kind::Startup => None,
            };
            let mut tracker = Tracker::new(timing.clone(), initial);
            tokio::time::sleep(timing.initial_delay).await;
            // Runs every period on a ticker; a trigger runs it in between
            // without moving the ticks (`manualTriggerCh` of the kubelet's
            // prober worker).
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + timing.period,
                timing.period,
            );
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Liveness and readiness wait for the startup probe.
                let gated = kind != Kind::Startup && {
                    let r = results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    r.started.get(&id) == Some(&false)
                };
                if !gated {
                    let outcome = run_once(&cri, &id, &ip, &probe, timing.timeout).await;
                    if let Outcome::Failure(message) = &outcome {
                        let _ = failures.send(Failure {
                            container: name.clone(),
                            kind,
                            message: message.clone(),
                        });
                    }
                    if let Some(result) = tracker.observe(&outcome) {
                        let mut r = results
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        match kind {
                            Kind::Readiness => {
                                r.ready.insert(id.clone(), result);
                            }
                            Kind::Startup => {
                                r.started.insert(id.clone(), result);
                                if !result {
                                    r.failed.insert(id.clone());
                                }
                            }
                            Kind::Liveness => {
                                if !result {
                                    r.failed.insert(id.clone());
                                }
                            }
                        }
                        drop(r);
                        notify.notify_one();
                        // A startup probe stops once it has succeeded.
                        if kind == Kind::Startup && result {
                            return;
                        }
                    }
                }
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = triggered.notified() => {}
                }
            }
        });
        tasks.insert(
            key,
            Task {
                handle: task,
                trigger,
            },
        );
        if kind == Kind::Startup {
            self.results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .started
                .entry(container_id.to_owned())
                .or_insert(false);
        }
        true
    }

    /// Runs the probe `kind` of a container now (if it has one running),
    /// without waiting for its period; a run already asked for and not yet
    /// begun is not doubled.
    pub fn trigger(&self, container_id: &str, kind: Kind) {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(task) = tasks.get(&(container_id.to_owned(), kind)) {
            task.trigger.notify_one();
        }
    }

    /// Stops every probe of containers not in `keep` and forgets their
    /// results.
    pub fn retain(&self, keep: &HashSet<String>, of: &HashSet<String>) {
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.retain(|(id, _), task| {
            if of.contains(id) && !keep.contains(id) {
                task.handle.abort();
                false
            } else {
                true
            }
        });
        let mut r = self
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in of.difference(keep) {
            r.ready.remove(id);
            r.started.remove(id);
            r.failed.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_probe_ports_resolve_to_the_container_port_of_that_name() {
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "web",
            "ports": [{"name": "metrics", "containerPort": 9090}, {"name": "http", "containerPort": 8080}],
        }))
        .unwrap();
        let probe: Probe = serde_json::from_value(serde_json::json!({
            "httpGet": {"path": "/healthz", "port": "http"},
        }))
        .unwrap();
        let resolved = with_named_ports(&probe, &container);
        assert_eq!(resolved.http_get.unwrap().port, IntOrString::Int(8080));
        let tcp: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": "metrics"}})).unwrap();
        let resolved = with_named_ports(&tcp, &container);
        assert_eq!(resolved.tcp_socket.unwrap().port, IntOrString::Int(9090));
        // Numbers stay; an unknown name is left for the run to report.
        let other: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": "grpc"}})).unwrap();
        let resolved = with_named_ports(&other, &container);
        assert_eq!(
            resolved.tcp_socket.unwrap().port,
            IntOrString::String("grpc".into())
        );
    }

    fn timing(success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let t = Timing::of(&Probe::default());
        assert_eq!(
            t,
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
    }

    #[test]
    fn results_flip_only_after_their_thresholds() {
        let fail = Outcome::Failure("x".into());
        let mut t = Tracker::new(timing(2, 3), Some(false));
        assert_eq!(t.observe(&Outcome::Success), None);
        assert_eq!(t.observe(&Outcome::Success), Some(true));
        assert_eq!(t.observe(&fail), None);
        assert_eq!(t.observe(&fail), None);
        // A success in between resets the failure count.
        assert_eq!(t.observe(&Outcome::Success), None);
        assert_eq!(t.observe(&fail), None);
        assert_eq!(t.observe(&fail), None);
        assert_eq!(t.observe(&fail), Some(false));
        assert_eq!(t.observe(&fail), None);
    }

    #[tokio::test]
    async fn tcp_and_http_probes_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                n += 1;
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let status = if n % 2 == 1 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let http: Probe = serde_json::from_value(
            serde_json::json!({"httpGet": {"path": "/healthz", "port": port}}),
        )
        .unwrap();
        let action = http.http_get.as_ref().unwrap();
        assert_eq!(http_get(action, "127.0.0.1").await, Outcome::Success);
        assert!(
            matches!(http_get(action, "127.0.0.1").await, Outcome::Failure(m) if m.contains("503"))
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let tcp: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": closed_port}}))
                .unwrap();
        let cri_less = tcp.tcp_socket.as_ref().unwrap();
        let outcome = tokio::time::timeout(
            Duration::from_secs(2),
            TcpStream::connect(("127.0.0.1", port_of(&cri_less.port).unwrap())),
        )
        .await;
        assert!(matches!(outcome, Ok(Err(_))));
    }
}
