//! How the runtime answers: the kubelet's instrumented runtime service
//! (`pkg/kubelet/kuberuntime/instrumented_services.go`). Every CRI call is
//! counted and timed by operation type, and failed calls are counted too:
//!
//! - `kubelet_runtime_operations_total{operation_type}`;
//! - `kubelet_runtime_operations_duration_seconds{operation_type}`, with
//!   the kubelet's buckets (5 ms × 2.5ⁿ, 14 of them);
//! - `kubelet_runtime_operations_errors_total{operation_type}`.

use std::time::Duration;

use prometheus_client::{
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

type Labels = [(&'static str, &'static str); 1];

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.5, 14))
}

/// The runtime operations' counters and durations.
#[derive(Debug)]
pub struct RuntimeMetrics {
    total: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    durations: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for RuntimeMetrics {
    fn default() -> Self {
        Self {
            total: Family::default(),
            errors: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
        }
    }
}

impl RuntimeMetrics {
    /// A call of `operation_type` that took `took`.
    pub fn observe(&self, operation_type: &'static str, took: Duration, ok: bool) {
        let labels = [("operation_type", operation_type)];
        self.total.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if !ok {
            self.errors.get_or_create(&labels).inc();
        }
    }

    /// Adds the metrics to `registry` (they stay shared with the client).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kubelet_runtime_operations",
            "Cumulative number of runtime operations by operation type.",
            self.total.clone(),
        );
        registry.register(
            "kubelet_runtime_operations_duration_seconds",
            "Duration in seconds of runtime operations. Broken down by operation type.",
            self.durations.clone(),
        );
        registry.register(
            "kubelet_runtime_operations_errors",
            "Cumulative number of runtime operation errors by operation type.",
            self.errors.clone(),
        );
    }

    /// The metrics in the Prometheus text format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        crate::metrics::render(&registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_timed_and_their_failures_counted_by_operation_type() {
        let metrics = RuntimeMetrics::default();
        metrics.observe("run_podsandbox", Duration::from_millis(300), true);
        metrics.observe("run_podsandbox", Duration::from_millis(100), false);
        metrics.observe("start_container", Duration::from_millis(2), true);
        let text = metrics.render();
        for line in [
            "kubelet_runtime_operations_total{operation_type=\"run_podsandbox\"} 2",
            "kubelet_runtime_operations_total{operation_type=\"start_container\"} 1",
            "kubelet_runtime_operations_errors_total{operation_type=\"run_podsandbox\"} 1",
            "kubelet_runtime_operations_duration_seconds_sum{operation_type=\"run_podsandbox\"} 0.4",
            "kubelet_runtime_operations_duration_seconds_count{operation_type=\"run_podsandbox\"} 2",
            "kubelet_runtime_operations_duration_seconds_bucket{le=\"0.005\",operation_type=\"start_container\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(
            !text.contains("errors_total{operation_type=\"start_container\"}"),
            "a call that succeeded is no error:\n{text}"
        );
    }
}
