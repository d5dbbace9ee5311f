//! The node's Prometheus metrics: the proxy's own (sync timing, changes,
//! failures, what is programmed, map fill) and, read from the maps at each
//! scrape, the datapath's counters (per-service traffic, forwarded and
//! dropped packets by reason, conntrack). Names follow kube-proxy's
//! (`kubeproxy_sync_proxy_rules_*`, `kubeproxy_network_programming_*`) and
//! Cilium's (`*_drop_count_total`, `*_forward_count_total`) with a `baton_`
//! prefix; the full list is in docs/datapath.md.

use std::sync::{Arc, Mutex, atomic::AtomicU64};

use baton_abi::{
    Direction,
    metrics::{DropReason, REASON_FORWARDED, reason_name},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use super::{sync::Usage, translate::parse_spec_name};
use crate::dataplane::{Capacities, SharedDataplane};

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// The proxy's metrics, updated by the sync loop.
#[derive(Debug)]
pub struct ProxyMetrics {
    pub sync_duration: Histogram,
    pub last_sync: Gauge<f64, AtomicU64>,
    pub last_queued: Gauge<f64, AtomicU64>,
    pub network_programming: Histogram,
    pub service_changes: Counter,
    pub endpoint_changes: Counter,
    pub syncs: Family<Labels, Counter>,
    pub sync_errors: Family<Labels, Counter>,
    pub map_full_errors: Family<Labels, Counter>,
    pub services_failing: Gauge,
    pub services_programmed: Gauge,
    pub frontends_programmed: Gauge,
    pub backends_programmed: Gauge,
    pub map_entries: Family<Labels, Gauge>,
    pub map_capacity: Family<Labels, Gauge>,
    pub conntrack_entries: Gauge,
    pub conntrack_gc_removed: Counter,
    pub conntrack_gc_duration: Histogram,
    pub health_check_local_endpoints: Family<Labels, Gauge>,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self {
            // 100 µs to ~26 s.
            sync_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 19)),
            last_sync: Gauge::default(),
            last_queued: Gauge::default(),
            // 1 ms to ~65 s.
            network_programming: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            service_changes: Counter::default(),
            endpoint_changes: Counter::default(),
            syncs: Family::default(),
            sync_errors: Family::default(),
            map_full_errors: Family::default(),
            services_failing: Gauge::default(),
            services_programmed: Gauge::default(),
            frontends_programmed: Gauge::default(),
            backends_programmed: Gauge::default(),
            map_entries: Family::default(),
            map_capacity: Family::default(),
            conntrack_entries: Gauge::default(),
            conntrack_gc_removed: Counter::default(),
            conntrack_gc_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 19)),
            health_check_local_endpoints: Family::default(),
        }
    }
}

impl ProxyMetrics {
    /// Registers every metric in `registry`.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let m = self;
        registry.register(
            "baton_proxy_sync_proxy_rules_duration_seconds",
            "Time one sync of services and endpoints into the BPF maps took",
            m.sync_duration.clone(),
        );
        registry.register(
            "baton_proxy_sync_proxy_rules_last_timestamp_seconds",
            "When the last sync finished (Unix time)",
            m.last_sync.clone(),
        );
        registry.register(
            "baton_proxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "When the last change was queued for a sync (Unix time)",
            m.last_queued.clone(),
        );
        registry.register(
            "baton_proxy_network_programming_duration_seconds",
            "Time from an EndpointSlice's last-change-trigger-time to its service being programmed",
            m.network_programming.clone(),
        );
        registry.register(
            "baton_proxy_sync_proxy_rules_service_changes",
            "Service changes seen",
            m.service_changes.clone(),
        );
        registry.register(
            "baton_proxy_sync_proxy_rules_endpoint_changes",
            "EndpointSlice changes seen",
            m.endpoint_changes.clone(),
        );
        registry.register(
            "baton_proxy_syncs",
            "Syncs by kind (initial, incremental, retry, periodic)",
            m.syncs.clone(),
        );
        registry.register(
            "baton_proxy_sync_errors",
            "Service ports that could not be programmed, by error kind",
            m.sync_errors.clone(),
        );
        registry.register(
            "baton_proxy_map_full_errors",
            "Service ports refused because a BPF map was full, by map",
            m.map_full_errors.clone(),
        );
        registry.register(
            "baton_proxy_services_failing",
            "Service ports currently not programmed as desired (retried)",
            m.services_failing.clone(),
        );
        registry.register(
            "baton_proxy_services_programmed",
            "Service ports programmed into the maps",
            m.services_programmed.clone(),
        );
        registry.register(
            "baton_proxy_frontends_programmed",
            "Frontends (services-map entries) programmed",
            m.frontends_programmed.clone(),
        );
        registry.register(
            "baton_proxy_backends_programmed",
            "Distinct backends programmed",
            m.backends_programmed.clone(),
        );
        registry.register(
            "baton_dataplane_map_entries",
            "Entries in use per BPF map",
            m.map_entries.clone(),
        );
        registry.register(
            "baton_dataplane_map_capacity",
            "Configured capacity per BPF map",
            m.map_capacity.clone(),
        );
        registry.register(
            "baton_conntrack_entries",
            "Conntrack entries at the last garbage collection (two per flow)",
            m.conntrack_entries.clone(),
        );
        registry.register(
            "baton_conntrack_gc_removed_entries",
            "Expired conntrack entries removed",
            m.conntrack_gc_removed.clone(),
        );
        registry.register(
            "baton_conntrack_gc_duration_seconds",
            "Time one conntrack garbage collection took",
            m.conntrack_gc_duration.clone(),
        );
        registry.register(
            "baton_proxy_healthcheck_local_endpoints",
            "Local ready endpoints reported by a service's healthCheckNodePort",
            m.health_check_local_endpoints.clone(),
        );
    }

    /// Sets the programmed counts and the fill of the maps the proxy
    /// writes.
    pub fn set_usage(&self, usage: &Usage, slot_entries: usize, capacities: &Capacities) {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.services_programmed.set(as_i64(usage.services));
        self.frontends_programmed.set(as_i64(usage.frontends));
        self.backends_programmed.set(as_i64(usage.backends));
        for (map, entries, capacity) in [
            (
                baton_abi::lb::SERVICES_MAP_NAME,
                usage.frontends,
                capacities.frontends,
            ),
            (
                baton_abi::lb::SLOTS_MAP_NAME,
                slot_entries,
                capacities.slots,
            ),
            (
                baton_abi::lb::BACKENDS_MAP_NAME,
                usage.backends,
                capacities.backends,
            ),
            (
                baton_abi::lb::MEMBERS_MAP_NAME,
                usage.members,
                capacities.slots,
            ),
            (
                baton_abi::lb::MAGLEV_MAP_NAME,
                usage.maglev_tables,
                capacities.maglev_tables,
            ),
        ] {
            self.set_fill(map, entries, capacity);
        }
    }

    /// Sets one map's fill.
    pub fn set_fill(&self, map: &str, entries: usize, capacity: u32) {
        let key = labels(&[("map", map)]);
        self.map_entries
            .get_or_create(&key)
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.map_capacity
            .get_or_create(&key)
            .set(i64::from(capacity));
    }
}

/// Labels of a per-reason counter.
fn reason_labels(reason: u8, direction: u8) -> Labels {
    let direction = Direction::from_u8(direction).map_or("unknown", Direction::name);
    labels(&[("reason", reason_name(reason)), ("direction", direction)])
}

/// Reads the datapath's counters at each scrape.
#[derive(Debug)]
pub struct DataplaneCollector {
    dataplane: SharedDataplane,
    /// Names of services by id, as of the last sync (the dataplane keeps
    /// them too, but reading them there would hold its lock longer).
    pub names: Arc<Mutex<std::collections::HashMap<u32, String>>>,
}

impl DataplaneCollector {
    #[must_use]
    pub fn new(dataplane: SharedDataplane) -> Self {
        Self {
            dataplane,
            names: Arc::default(),
        }
    }
}

fn counter_family(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in values {
        let family = metric.encode_family(labels)?;
        ConstCounter::new(*value).encode(family)?;
    }
    Ok(())
}

impl Collector for DataplaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (metrics, stats, endpoints) = {
            let Ok(mut dataplane) = self.dataplane.lock() else {
                return Ok(());
            };
            (
                dataplane.metrics().unwrap_or_default(),
                dataplane.service_stats().unwrap_or_default(),
                dataplane
                    .node()
                    .endpoints()
                    .map_or(0, |endpoints| endpoints.len()),
            )
        };

        let mut forward = Vec::new();
        let mut forward_bytes = Vec::new();
        let mut drops = Vec::new();
        let mut drop_bytes = Vec::new();
        let mut events = Vec::new();
        for (key, value) in metrics.iter() {
            if key.reason == REASON_FORWARDED {
                let direction =
                    Direction::from_u8(key.direction).map_or("unknown", Direction::name);
                forward.push((labels(&[("direction", direction)]), value.packets));
                forward_bytes.push((labels(&[("direction", direction)]), value.bytes));
            } else if DropReason::from_u8(key.reason).is_some() || key.reason >= 128 {
                drops.push((reason_labels(key.reason, key.direction), value.packets));
                drop_bytes.push((reason_labels(key.reason, key.direction), value.bytes));
            } else {
                events.push((reason_labels(key.reason, key.direction), value.packets));
            }
        }
        counter_family(
            &mut encoder,
            "baton_forward_count",
            "Packets passed on by the programs, by direction",
            &forward,
        )?;
        counter_family(
            &mut encoder,
            "baton_forward_bytes",
            "Bytes passed on by the programs, by direction",
            &forward_bytes,
        )?;
        counter_family(
            &mut encoder,
            "baton_drop_count",
            "Packets dropped or refused by the programs, by reason and direction",
            &drops,
        )?;
        counter_family(
            &mut encoder,
            "baton_drop_bytes",
            "Bytes dropped or refused by the programs, by reason and direction",
            &drop_bytes,
        )?;
        counter_family(
            &mut encoder,
            "baton_datapath_events",
            "Datapath events that drop nothing (translations, redirects, rejects sent, bookkeeping map-full), by reason and direction",
            &events,
        )?;

        let names = self
            .names
            .lock()
            .map(|names| names.clone())
            .unwrap_or_default();
        let mut packets = Vec::new();
        let mut bytes = Vec::new();
        let mut flows = Vec::new();
        let mut refused = Vec::new();
        for (id, value) in stats.iter() {
            let name = names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
            let (namespace, service, port) = parse_spec_name(&name).unwrap_or(("", &name, ""));
            let key = labels(&[
                ("namespace", namespace),
                ("service", service),
                ("port", port),
            ]);
            packets.push((key.clone(), value.packets));
            bytes.push((key.clone(), value.bytes));
            flows.push((key.clone(), value.new_flows));
            refused.push((key, value.refused));
        }
        counter_family(
            &mut encoder,
            "baton_service_packets",
            "Packets translated for a service port (packet path)",
            &packets,
        )?;
        counter_family(
            &mut encoder,
            "baton_service_bytes",
            "Bytes translated for a service port (packet path)",
            &bytes,
        )?;
        counter_family(
            &mut encoder,
            "baton_service_new_flows",
            "New connections and flows balanced for a service port (socket and packet path)",
            &flows,
        )?;
        counter_family(
            &mut encoder,
            "baton_service_refused",
            "Connections refused for a service port without endpoints",
            &refused,
        )?;

        let gauge = ConstGauge::new(i64::try_from(endpoints).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "baton_pod_endpoints",
            "Pod endpoints registered on this node",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::render;

    #[test]
    fn proxy_metrics_render_with_their_names() {
        let metrics = Arc::new(ProxyMetrics::default());
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.sync_duration.observe(0.002);
        metrics
            .map_full_errors
            .get_or_create(&labels(&[("map", "baton_lb_be")]))
            .inc();
        metrics.set_usage(
            &Usage {
                services: 3,
                frontends: 4,
                backends: 5,
                members: 6,
                slots: 6,
                maglev_tables: 0,
            },
            6,
            &Capacities::default(),
        );
        let text = render(&registry);
        for needle in [
            "baton_proxy_sync_proxy_rules_duration_seconds_bucket",
            "baton_proxy_map_full_errors_total{map=\"baton_lb_be\"} 1",
            "baton_proxy_services_programmed 3",
            "baton_dataplane_map_entries{map=\"baton_lb_fe\"} 4",
            "baton_dataplane_map_capacity{map=\"baton_lb_be\"} 65536",
        ] {
            assert!(text.contains(needle), "no {needle} in\n{text}");
        }
    }
}
