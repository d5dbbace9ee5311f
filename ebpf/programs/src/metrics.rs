//! Per-CPU packet and byte counters by (reason, direction): the
//! `baton_metrics` map of the ABI crate.

use aya_ebpf::{bindings::BPF_NOEXIST, macros::map, maps::PerCpuHashMap};
use baton_abi::{METRICS_MAP_MAX_ENTRIES, MetricsKey, MetricsValue};

// The name must equal `baton_abi::METRICS_MAP_NAME` (the attribute takes a
// literal); baton-node's tests check the embedded object against the ABI.
#[map(name = "baton_metrics")]
static METRICS: PerCpuHashMap<MetricsKey, MetricsValue> =
    PerCpuHashMap::with_max_entries(METRICS_MAP_MAX_ENTRIES, 0);

/// Counts one packet of `bytes` bytes under `key`.
///
/// The value is this CPU's slot of a per-CPU map and tc programs run with
/// bottom halves disabled, so nothing else updates the slot meanwhile and plain
/// adds are enough (as in Cilium's `update_metrics`). If the map is full the
/// sample is lost; counting never changes what happens to the packet.
#[inline(always)]
pub fn count(key: MetricsKey, bytes: u32) {
    if add(&key, bytes) {
        return;
    }
    let first = MetricsValue {
        packets: 1,
        bytes: u64::from(bytes),
    };
    // Another CPU may create the entry between the lookup and the insert; the
    // insert then fails with EEXIST and the entry can be updated in place.
    if METRICS.insert(key, first, u64::from(BPF_NOEXIST)).is_err() {
        add(&key, bytes);
    }
}

#[inline(always)]
fn add(key: &MetricsKey, bytes: u32) -> bool {
    match METRICS.get_ptr_mut(key) {
        Some(value) => {
            // SAFETY: the pointer comes from a successful lookup in a per-CPU
            // hash map, so it points at this CPU's properly aligned
            // `MetricsValue`, valid for the rest of the program run; no other
            // context writes this CPU's slot concurrently (see `count`).
            unsafe {
                (*value).packets += 1;
                (*value).bytes += u64::from(bytes);
            }
            true
        }
        None => false,
    }
}
