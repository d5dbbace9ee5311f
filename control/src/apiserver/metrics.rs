//! Prometheus metrics with kube-apiserver's names: request counts and
//! latencies by verb/resource/code, long-running requests and watch counts,
//! etcd request latencies (the storage layer's histogram). Encoded with the `prometheus-client` crate (the
//! Prometheus project's own Rust client) in the OpenMetrics text format.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: String,
    pub component: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: String,
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LongRunningLabels {
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: String,
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabels {
    group: String,
    version: String,
    kind: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
        10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    ])
}

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<LatencyLabels>,
    long_running: Family<LongRunningLabels, Gauge>,
    watches: Family<WatchLabels, Gauge>,
    watch_events: Family<WatchLabels, Counter>,
    objects: Family<WatchLabels, Gauge>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let requests = Family::<RequestLabels, Counter>::default();
    registry.register(
        "apiserver_request",
        "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
        requests.clone(),
    );
    let latency: HistogramFamily<LatencyLabels> = Family::new_with_constructor(request_buckets);
    registry.register(
        "apiserver_request_duration_seconds",
        "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
        latency.clone(),
    );
    let long_running = Family::<LongRunningLabels, Gauge>::default();
    registry.register(
        "apiserver_longrunning_requests",
        "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.",
        long_running.clone(),
    );
    let watches = Family::<WatchLabels, Gauge>::default();
    registry.register(
        "apiserver_registered_watchers",
        "Number of currently registered watchers for a given resources",
        watches.clone(),
    );
    let watch_events = Family::<WatchLabels, Counter>::default();
    registry.register(
        "apiserver_watch_events",
        "Number of events sent in watch clients",
        watch_events.clone(),
    );
    registry.register(
        "etcd_request_duration_seconds",
        "Etcd request latency in seconds for each operation and object type.",
        crate::storage::metrics::etcd_latency(),
    );
    let objects = Family::<WatchLabels, Gauge>::default();
    registry.register(
        "apiserver_storage_objects",
        "Number of stored objects at the time of last check split by kind.",
        objects.clone(),
    );
    Metrics {
        registry,
        requests,
        latency,
        long_running,
        watches,
        watch_events,
        objects,
    }
});

/// What a request was, for labelling.
#[derive(Debug, Clone, Default)]
pub struct RequestKind {
    pub verb: &'static str,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: &'static str,
}

/// Records one finished request.
pub fn observe_request(k: &RequestKind, code: u16, elapsed: Duration) {
    let m = &*METRICS;
    m.requests
        .get_or_create(&RequestLabels {
            verb: k.verb.to_string(),
            group: k.group.clone(),
            version: k.version.clone(),
            resource: k.resource.clone(),
            subresource: k.subresource.clone(),
            scope: k.scope.to_string(),
            component: "apiserver".into(),
            code: code.to_string(),
        })
        .inc();
    if k.verb != "WATCH" {
        m.latency
            .get_or_create(&LatencyLabels {
                verb: k.verb.to_string(),
                group: k.group.clone(),
                version: k.version.clone(),
                resource: k.resource.clone(),
                subresource: k.subresource.clone(),
                scope: k.scope.to_string(),
                component: "apiserver".into(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// Counts a long-running request (watch) for as long as the guard lives.
pub struct LongRunning {
    labels: LongRunningLabels,
    watch: WatchLabels,
}

impl LongRunning {
    pub fn start(k: &RequestKind, kind: &str) -> Self {
        let labels = LongRunningLabels {
            verb: k.verb.to_string(),
            group: k.group.clone(),
            version: k.version.clone(),
            resource: k.resource.clone(),
            subresource: k.subresource.clone(),
            scope: k.scope.to_string(),
            component: "apiserver".into(),
        };
        let watch = WatchLabels {
            group: k.group.clone(),
            version: k.version.clone(),
            kind: kind.to_string(),
        };
        METRICS.long_running.get_or_create(&labels).inc();
        METRICS.watches.get_or_create(&watch).inc();
        LongRunning { labels, watch }
    }

    pub fn event_sent(&self) {
        METRICS.watch_events.get_or_create(&self.watch).inc();
    }
}

impl Drop for LongRunning {
    fn drop(&mut self) {
        METRICS.long_running.get_or_create(&self.labels).dec();
        METRICS.watches.get_or_create(&self.watch).dec();
    }
}

/// Sets the stored-object count of a kind.
pub fn set_objects(group: &str, version: &str, kind: &str, n: usize) {
    METRICS
        .objects
        .get_or_create(&WatchLabels {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        })
        .set(n as i64);
}

/// The text exposition.
pub fn render() -> String {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_counter_has_kube_name_and_labels() {
        let k = RequestKind {
            verb: "GET",
            resource: "pods".into(),
            version: "v1".into(),
            scope: "resource",
            ..Default::default()
        };
        observe_request(&k, 200, Duration::from_millis(3));
        crate::storage::metrics::observe_etcd("get", Duration::from_millis(1));
        let text = render();
        assert!(
            text.contains("apiserver_request_total{verb=\"GET\""),
            "{text}"
        );
        assert!(text.contains("code=\"200\""));
        assert!(text.contains("apiserver_request_duration_seconds_bucket"));
        assert!(
            text.contains("etcd_request_duration_seconds_bucket")
                && text.contains("operation=\"get\""),
            "{text}"
        );
    }
}
