//! Reading the metrics map: per-CPU counters summed into one snapshot.

use std::{collections::BTreeMap, fmt};

use aya::{
    Ebpf,
    maps::{MapData, MapError, PerCpuHashMap},
};
use baton_abi::{
    Direction, METRICS_MAP_NAME, MetricsKey, MetricsValue,
    lb::{SERVICE_STATS_MAP_NAME, ServiceStats},
    metrics::reason_name,
};

use crate::dataplane::maps::{MapAccessError, is_not_found};

/// Reading the metrics map failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The object has no metrics map: the build is broken.
    #[error("the eBPF object has no map {METRICS_MAP_NAME}")]
    MissingMap,
    /// aya refused the map (wrong key/value size) or a lookup failed.
    #[error("read map {METRICS_MAP_NAME}: {0}")]
    Map(#[source] Box<MapError>),
}

/// Packets and bytes per (reason, direction), summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    entries: BTreeMap<MetricsKey, MetricsValue>,
}

impl MetricsSnapshot {
    /// Counters for `key`; zero if nothing was counted under it.
    #[must_use]
    pub fn get(&self, key: MetricsKey) -> MetricsValue {
        self.entries.get(&key).copied().unwrap_or_default()
    }

    /// Every key with its counters, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (MetricsKey, MetricsValue)> + '_ {
        self.entries.iter().map(|(key, value)| (*key, *value))
    }

    /// Counters gained since `earlier`, per key (keys with no gain left out).
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        let entries = self
            .iter()
            .filter_map(|(key, now)| {
                let before = earlier.get(key);
                let gained = MetricsValue {
                    packets: now.packets.saturating_sub(before.packets),
                    bytes: now.bytes.saturating_sub(before.bytes),
                };
                (gained != MetricsValue::default()).then_some((key, gained))
            })
            .collect();
        Self { entries }
    }
}

/// One line per key: `reason direction packets bytes`, like `cilium bpf
/// metrics list`.
impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<24} {:<9} {:>12} {:>14}",
            "REASON", "DIRECTION", "PACKETS", "BYTES"
        )?;
        for (key, value) in self.iter() {
            let direction = Direction::from_u8(key.direction).map_or("unknown", Direction::name);
            writeln!(
                f,
                "{:<24} {:<9} {:>12} {:>14}",
                reason_name(key.reason),
                direction,
                value.packets,
                value.bytes
            )?;
        }
        Ok(())
    }
}

impl FromIterator<(MetricsKey, MetricsValue)> for MetricsSnapshot {
    fn from_iter<I: IntoIterator<Item = (MetricsKey, MetricsValue)>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().collect(),
        }
    }
}

/// Per-service counters, summed over CPUs, by service id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceStatsSnapshot {
    entries: BTreeMap<u32, ServiceStats>,
}

impl ServiceStatsSnapshot {
    /// Counters of service `id`; zero if it saw nothing.
    #[must_use]
    pub fn get(&self, id: u32) -> ServiceStats {
        self.entries.get(&id).copied().unwrap_or_default()
    }

    /// Every service with counters, by id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, ServiceStats)> + '_ {
        self.entries.iter().map(|(id, stats)| (*id, *stats))
    }
}

/// Reads the per-service counters.
pub fn read_services(
    map: &PerCpuHashMap<MapData, u32, ServiceStats>,
) -> Result<ServiceStatsSnapshot, MapAccessError> {
    let mut entries = BTreeMap::new();
    for entry in map.iter() {
        let (id, per_cpu) = match entry {
            Ok(entry) => entry,
            Err(error) if is_not_found(&error) => continue,
            Err(error) => {
                return Err(MapAccessError::of(SERVICE_STATS_MAP_NAME, "iterate", error));
            }
        };
        let total = per_cpu
            .iter()
            .fold(ServiceStats::default(), |sum, cpu| ServiceStats {
                new_flows: sum.new_flows + cpu.new_flows,
                refused: sum.refused + cpu.refused,
                packets: sum.packets + cpu.packets,
                bytes: sum.bytes + cpu.bytes,
            });
        entries.insert(id, total);
    }
    Ok(ServiceStatsSnapshot { entries })
}

/// Reads the metrics map of `ebpf`.
pub fn read(ebpf: &Ebpf) -> Result<MetricsSnapshot, MetricsError> {
    let map = ebpf.map(METRICS_MAP_NAME).ok_or(MetricsError::MissingMap)?;
    let map: PerCpuHashMap<_, MetricsKey, MetricsValue> =
        PerCpuHashMap::try_from(map).map_err(|error| MetricsError::Map(Box::new(error)))?;
    read_map(&map)
}

/// Reads a metrics map, summing the CPUs.
pub fn read_map<T: std::borrow::Borrow<MapData>>(
    map: &PerCpuHashMap<T, MetricsKey, MetricsValue>,
) -> Result<MetricsSnapshot, MetricsError> {
    map.iter()
        .map(|entry| {
            let (key, per_cpu) = entry.map_err(|error| MetricsError::Map(Box::new(error)))?;
            let total = per_cpu
                .iter()
                .fold(MetricsValue::default(), |sum, cpu| MetricsValue {
                    packets: sum.packets + cpu.packets,
                    bytes: sum.bytes + cpu.bytes,
                });
            Ok((key, total))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use baton_abi::DropReason;

    use super::*;

    fn value(packets: u64, bytes: u64) -> MetricsValue {
        MetricsValue { packets, bytes }
    }

    #[test]
    fn since_keeps_only_what_changed() {
        let fwd = MetricsKey::forwarded(Direction::Ingress);
        let cut = MetricsKey::dropped(DropReason::Truncated, Direction::Ingress);
        let before: MetricsSnapshot = [(fwd, value(3, 300)), (cut, value(1, 20))]
            .into_iter()
            .collect();
        let after: MetricsSnapshot = [(fwd, value(5, 420)), (cut, value(1, 20))]
            .into_iter()
            .collect();
        let gained = after.since(&before);
        assert_eq!(gained.get(fwd), value(2, 120));
        assert_eq!(gained.iter().count(), 1);
    }

    #[test]
    fn dump_names_reasons_and_directions() {
        let snapshot: MetricsSnapshot = [(
            MetricsKey::dropped(DropReason::InvalidIpv4Header, Direction::Egress),
            value(2, 68),
        )]
        .into_iter()
        .collect();
        let dump = snapshot.to_string();
        assert!(dump.contains("invalid_ipv4_header"), "{dump}");
        assert!(dump.contains("egress"), "{dump}");
    }
}
