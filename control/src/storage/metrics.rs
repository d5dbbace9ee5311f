//! The storage layer's metric: etcd request latencies by operation, as
//! kube-apiserver's `etcd_request_duration_seconds`. The API server's
//! metrics registry exposes it.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EtcdLabels {
    operation: String,
    r#type: String,
}

/// etcd latencies by operation.
pub type EtcdLatency = Family<EtcdLabels, Histogram, fn() -> Histogram>;

fn etcd_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
        10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    ])
}

static ETCD_LATENCY: LazyLock<EtcdLatency> =
    LazyLock::new(|| Family::new_with_constructor(etcd_buckets));

/// The histogram family, for registering with a metrics registry.
pub fn etcd_latency() -> EtcdLatency {
    ETCD_LATENCY.clone()
}

/// Records one etcd call.
pub fn observe_etcd(operation: &str, elapsed: Duration) {
    ETCD_LATENCY
        .get_or_create(&EtcdLabels {
            operation: operation.to_string(),
            r#type: String::new(),
        })
        .observe(elapsed.as_secs_f64());
}
