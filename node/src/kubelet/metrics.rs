//! The kubelet's own Prometheus metrics, served at `/metrics` on its HTTPS
//! port (and through the API server as `nodes/{name}/proxy/metrics`).
//! Names, labels and buckets are the kubelet's (`pkg/kubelet/metrics`):
//!
//! - `kubelet_node_name{node}`: 1;
//! - `kubelet_running_pods`, `kubelet_running_containers{container_state}`:
//!   read from the latest relist at each scrape;
//! - `kubelet_started_pods_total`, `kubelet_started_containers_total
//!   {container_type}`: sandboxes and containers this kubelet started;
//! - `kubelet_pod_start_duration_seconds`: from the kubelet first seeing a
//!   pod to the sync that finds it Running;
//! - `kubelet_pod_start_sli_duration_seconds` and
//!   `kubelet_pod_start_total_duration_seconds`: from the pod's creation to
//!   the kubelet seeing, on its watch, every container running — the pod
//!   startup SLI (without, and with, the time spent pulling images);
//! - `storage_operation_duration_seconds{volume_plugin, operation_name,
//!   status, migrated}`: each volume's set-up (`volume_mount`), including
//!   what it waits for (its ConfigMap or Secret, its token);
//! - `kubelet_runtime_operations_*`: the CRI calls ([`crate::cri::metrics`]).

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        MetricType, counter::Counter, family::Family, gauge::ConstGauge, histogram::Histogram,
    },
    registry::Registry,
};

use super::pod_spec::Role;
use super::runtime_view::relist::Snapshot;
use crate::cri::{RuntimeMetrics, api as cri};

type Labels = Vec<(String, String)>;

/// The volume manager's buckets for storage operations, in seconds.
const STORAGE_BUCKETS: [f64; 13] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 25.0, 50.0, 120.0, 300.0, 600.0,
];

/// The kubelet's `podStartupDurationBuckets`, in seconds.
const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// The kubelet's metrics that accumulate (the gauges are read at scrape).
#[derive(Debug)]
pub struct KubeletMetrics {
    node_name: String,
    started_pods: Counter,
    started_containers: Family<Labels, Counter>,
    pod_start: Histogram,
    pod_start_sli: Histogram,
    pod_start_total: Histogram,
}

impl KubeletMetrics {
    #[must_use]
    pub fn new(node_name: &str) -> Self {
        let buckets = || Histogram::new(POD_START_BUCKETS);
        Self {
            node_name: node_name.to_owned(),
            started_pods: Counter::default(),
            started_containers: Family::default(),
            pod_start: buckets(),
            pod_start_sli: buckets(),
            pod_start_total: buckets(),
        }
    }

    /// A pod sandbox was started.
    pub fn pod_started(&self) {
        self.started_pods.inc();
    }

    /// A container was started, counted by its kind.
    pub fn container_started(&self, role: &Role) {
        let kind = match role {
            Role::Init | Role::Sidecar => "init_container",
            Role::App => "container",
            Role::Ephemeral { .. } => "ephemeral_container",
        };
        self.started_containers
            .get_or_create(&vec![("container_type".to_owned(), kind.to_owned())])
            .inc();
    }

    /// A pod first seen `seen_for` ago was found Running.
    pub fn pod_running(&self, seen_for: Duration) {
        self.pod_start.observe(seen_for.as_secs_f64());
    }

    /// The kubelet's watch showed every container of a pod created at
    /// `created` running at `now`, after `pulling` spent pulling images.
    pub fn pod_observed_started(&self, created: Timestamp, now: Timestamp, pulling: Duration) {
        let total = now.duration_since(created).as_secs_f64().max(0.0);
        self.pod_start_total.observe(total);
        self.pod_start_sli
            .observe((total - pulling.as_secs_f64()).max(0.0));
    }

    /// The metrics in the Prometheus text format: the gauges from `relist`,
    /// the volumes' operations from `storage` and the CRI calls from
    /// `runtime`.
    #[must_use]
    pub fn render(
        &self,
        relist: &Snapshot,
        storage: &StorageMetrics,
        runtime: &RuntimeMetrics,
    ) -> String {
        let mut registry = Registry::default();
        storage.register(&mut registry);
        runtime.register(&mut registry);
        registry.register(
            "kubelet_started_pods",
            "Cumulative number of pods started",
            self.started_pods.clone(),
        );
        registry.register(
            "kubelet_started_containers",
            "Cumulative number of containers started",
            self.started_containers.clone(),
        );
        registry.register(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
            self.pod_start.clone(),
        );
        registry.register(
            "kubelet_pod_start_sli_duration_seconds",
            "Duration in seconds to start a pod, excluding time to pull images and run init containers, measured from pod creation timestamp to when all its containers are reported as started and observed via watch",
            self.pod_start_sli.clone(),
        );
        registry.register(
            "kubelet_pod_start_total_duration_seconds",
            "Duration in seconds to start a pod since creation, including time to pull images and run init containers, measured from pod creation timestamp to when all its containers are reported as started and observed via watch",
            self.pod_start_total.clone(),
        );
        registry.register_collector(Box::new(RuntimeGauges::of(&self.node_name, relist)));
        crate::metrics::render(&registry)
    }
}

/// How long volume operations took (`storage_operation_duration_seconds`);
/// clones share the histograms.
#[derive(Debug, Clone)]
pub struct StorageMetrics {
    durations: Family<StorageLabels, Histogram, fn() -> Histogram>,
}

/// `volume_plugin`, `operation_name`, `status`, `migrated`.
type StorageLabels = [(&'static str, &'static str); 4];

impl Default for StorageMetrics {
    fn default() -> Self {
        Self {
            durations: Family::new_with_constructor(|| Histogram::new(STORAGE_BUCKETS)),
        }
    }
}

impl StorageMetrics {
    /// A volume of `plugin` (`kubernetes.io/configmap`, …) was set up in
    /// `took`, or failed to be.
    pub fn mounted(&self, plugin: &'static str, took: Duration, ok: bool) {
        let labels = [
            ("volume_plugin", plugin),
            ("operation_name", "volume_mount"),
            ("status", if ok { "success" } else { "fail-unknown" }),
            ("migrated", "false"),
        ];
        self.durations
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "storage_operation_duration_seconds",
            "Storage operation duration",
            self.durations.clone(),
        );
    }
}

/// The gauges read from one relist.
#[derive(Debug)]
struct RuntimeGauges {
    node_name: String,
    running_pods: i64,
    /// Containers by `container_state` label.
    containers: Vec<(&'static str, i64)>,
}

impl RuntimeGauges {
    fn of(node_name: &str, relist: &Snapshot) -> Self {
        let mut running_pods = 0;
        let mut containers = [
            ("created", 0),
            ("running", 0),
            ("exited", 0),
            ("unknown", 0),
        ];
        for fingerprint in relist.pods.values() {
            let mut running = false;
            for (key, state) in fingerprint {
                if key.starts_with("sandbox/") {
                    running |= *state == cri::PodSandboxState::SandboxReady as i32;
                } else {
                    let slot = match cri::ContainerState::try_from(*state) {
                        Ok(cri::ContainerState::ContainerCreated) => 0,
                        Ok(cri::ContainerState::ContainerRunning) => 1,
                        Ok(cri::ContainerState::ContainerExited) => 2,
                        _ => 3,
                    };
                    containers[slot].1 += 1;
                }
            }
            running_pods += i64::from(running);
        }
        Self {
            node_name: node_name.to_owned(),
            running_pods,
            containers: containers.to_vec(),
        }
    }
}

impl Collector for RuntimeGauges {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let one = |value: i64| ConstGauge::new(value);
        let mut metric = encoder.encode_descriptor(
            "kubelet_node_name",
            "The node's name. The count is always 1.",
            None,
            MetricType::Gauge,
        )?;
        one(1).encode(metric.encode_family(&vec![("node", self.node_name.as_str())])?)?;
        let metric = encoder.encode_descriptor(
            "kubelet_running_pods",
            "Number of pods that have a running pod sandbox",
            None,
            MetricType::Gauge,
        )?;
        one(self.running_pods).encode(metric)?;
        let mut metric = encoder.encode_descriptor(
            "kubelet_running_containers",
            "Number of containers currently running",
            None,
            MetricType::Gauge,
        )?;
        for (state, count) in &self.containers {
            one(*count).encode(metric.encode_family(&vec![("container_state", *state)])?)?;
        }
        Ok(())
    }
}

/// What the startup metrics need to remember of one pod.
#[derive(Debug)]
pub struct PodStartup {
    /// When the kubelet first saw the pod.
    first_seen: Instant,
    /// Whether the pod had started no container yet when first seen
    /// (a pod found running after a restart of the kubelet is not timed).
    timed: bool,
    /// The first image pull's start and the last one's end.
    pulling: Option<(Instant, Instant)>,
    running_recorded: bool,
    started_recorded: bool,
}

impl PodStartup {
    #[must_use]
    pub fn new(pod: &Pod) -> Self {
        let started_any = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.container_id.is_some()));
        Self {
            first_seen: Instant::now(),
            timed: !started_any,
            pulling: None,
            running_recorded: false,
            started_recorded: false,
        }
    }

    /// An image pull that ran from `start` to `end`.
    pub fn pulled(&mut self, start: Instant, end: Instant) {
        self.pulling = Some(self.pulling.map_or((start, end), |(first, last)| {
            (first.min(start), last.max(end))
        }));
    }

    /// The sync found the pod's phase going from Pending to Running.
    pub fn running(&mut self, metrics: &KubeletMetrics) {
        if self.timed && !self.running_recorded {
            self.running_recorded = true;
            metrics.pod_running(self.first_seen.elapsed());
        }
    }

    /// The pod as the watch shows it: once every container runs, the SLI.
    pub fn observed(&mut self, metrics: &KubeletMetrics, pod: &Pod) {
        if !self.timed || self.started_recorded || !every_container_running(pod) {
            return;
        }
        let Some(created) = pod.metadata.creation_timestamp.as_ref() else {
            return;
        };
        self.started_recorded = true;
        let pulling = self
            .pulling
            .map_or(Duration::ZERO, |(first, last)| last - first);
        metrics.pod_observed_started(created.0, Timestamp::now(), pulling);
    }
}

/// The kubelet's `hasPodStartedSLO`: every container is running.
fn every_container_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            !cs.is_empty()
                && cs.iter().all(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.running.as_ref())
                        .is_some_and(|r| r.started_at.is_some())
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a pod")
    }

    fn relist(pods: &[(&str, &[(&str, i32)])]) -> Snapshot {
        Snapshot {
            started: Some(Instant::now()),
            pods: pods
                .iter()
                .map(|(uid, entries)| {
                    let fingerprint = entries.iter().map(|(k, s)| ((*k).to_owned(), *s)).collect();
                    ((*uid).to_owned(), fingerprint)
                })
                .collect(),
        }
    }

    #[test]
    fn running_pods_and_containers_come_from_the_relist() {
        let ready = cri::PodSandboxState::SandboxReady as i32;
        let not_ready = cri::PodSandboxState::SandboxNotready as i32;
        let running = cri::ContainerState::ContainerRunning as i32;
        let exited = cri::ContainerState::ContainerExited as i32;
        let snapshot = relist(&[
            ("a", &[("sandbox/1", ready), ("container/1", running)]),
            (
                "b",
                &[
                    ("sandbox/2", not_ready),
                    ("sandbox/3", ready),
                    ("container/2", exited),
                    ("container/3", running),
                ],
            ),
            ("c", &[("sandbox/4", not_ready), ("container/4", exited)]),
        ]);
        let text = KubeletMetrics::new("node-1").render(
            &snapshot,
            &StorageMetrics::default(),
            &RuntimeMetrics::default(),
        );
        assert!(
            text.contains("kubelet_node_name{node=\"node-1\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("kubelet_running_pods 2\n"), "{text}");
        assert!(
            text.contains("kubelet_running_containers{container_state=\"running\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kubelet_running_containers{container_state=\"exited\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kubelet_running_containers{container_state=\"created\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn the_sli_leaves_out_image_pulls_and_is_recorded_once() {
        let metrics = KubeletMetrics::new("n");
        let created = Timestamp::now() - jiff::SignedDuration::from_secs(10);
        let pending = pod(serde_json::json!({
            "metadata": {"name": "p", "creationTimestamp": created.to_string()},
            "status": {"phase": "Pending"},
        }));
        let mut startup = PodStartup::new(&pending);
        let t0 = Instant::now();
        startup.pulled(t0, t0 + Duration::from_secs(4));
        startup.pulled(t0 + Duration::from_secs(1), t0 + Duration::from_secs(6));
        startup.observed(&metrics, &pending);
        let running = pod(serde_json::json!({
            "metadata": {"name": "p", "creationTimestamp": created.to_string()},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "containerID": "containerd://x",
                "state": {"running": {"startedAt": created.to_string()}},
            }]},
        }));
        startup.observed(&metrics, &running);
        startup.observed(&metrics, &running);
        let text = metrics.render(
            &Snapshot::default(),
            &StorageMetrics::default(),
            &RuntimeMetrics::default(),
        );
        // 10 s from creation, 6 s of it pulling.
        assert!(
            text.contains("kubelet_pod_start_sli_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("kubelet_pod_start_sli_duration_seconds_bucket{le=\"4.0\"} 0\n")
                && text.contains("kubelet_pod_start_sli_duration_seconds_bucket{le=\"5.0\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("kubelet_pod_start_total_duration_seconds_bucket{le=\"10.0\"} 0\n")
                && text
                    .contains("kubelet_pod_start_total_duration_seconds_bucket{le=\"20.0\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_pod_found_running_after_a_restart_is_not_timed() {
        let metrics = KubeletMetrics::new("n");
        let running = pod(serde_json::json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                "containerID": "containerd://x",
                "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}},
            }]},
        }));
        let mut startup = PodStartup::new(&running);
        startup.running(&metrics);
        startup.observed(&metrics, &running);
        let text = metrics.render(
            &Snapshot::default(),
            &StorageMetrics::default(),
            &RuntimeMetrics::default(),
        );
        assert!(
            text.contains("kubelet_pod_start_sli_duration_seconds_count 0\n"),
            "{text}"
        );
        assert!(
            text.contains("kubelet_pod_start_duration_seconds_count 0\n"),
            "{text}"
        );
    }

    #[test]
    fn volume_set_ups_are_timed_by_plugin_and_outcome() {
        let storage = StorageMetrics::default();
        storage.mounted("kubernetes.io/projected", Duration::from_millis(30), true);
        storage.mounted("kubernetes.io/projected", Duration::from_millis(700), true);
        storage.mounted("kubernetes.io/secret", Duration::from_millis(5), false);
        let text = KubeletMetrics::new("n").render(
            &Snapshot::default(),
            &storage,
            &RuntimeMetrics::default(),
        );
        let projected = "volume_plugin=\"kubernetes.io/projected\",operation_name=\"volume_mount\",status=\"success\",migrated=\"false\"";
        for line in [
            format!("storage_operation_duration_seconds_count{{{projected}}} 2\n"),
            format!("storage_operation_duration_seconds_bucket{{le=\"0.1\",{projected}}} 1\n"),
            format!("storage_operation_duration_seconds_bucket{{le=\"1.0\",{projected}}} 2\n"),
            "storage_operation_duration_seconds_count{volume_plugin=\"kubernetes.io/secret\",operation_name=\"volume_mount\",status=\"fail-unknown\",migrated=\"false\"} 1\n".to_owned(),
        ] {
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn started_containers_are_counted_by_type() {
        let metrics = KubeletMetrics::new("n");
        metrics.pod_started();
        metrics.container_started(&Role::Init);
        metrics.container_started(&Role::App);
        metrics.container_started(&Role::App);
        metrics.container_started(&Role::Ephemeral { target: None });
        let text = metrics.render(
            &Snapshot::default(),
            &StorageMetrics::default(),
            &RuntimeMetrics::default(),
        );
        assert!(text.contains("kubelet_started_pods_total 1\n"), "{text}");
        assert!(
            text.contains("kubelet_started_containers_total{container_type=\"container\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "kubelet_started_containers_total{container_type=\"ephemeral_container\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kubelet_started_containers_total{container_type=\"init_container\"} 1\n"
            ),
            "{text}"
        );
    }
}
