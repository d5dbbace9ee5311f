//! Reading and garbage-collecting the conntrack map.
//!
//! The programs never delete entries: a flow past its expiry is treated as
//! gone, and an entry is overwritten by the next flow with its key. Expired
//! entries are removed here, periodically, so they do not fill the LRU map
//! and push out live flows; the removal of an original-direction entry still
//! counted in its backend's active flows also uncounts it (the programs
//! uncount at FIN/RST, but a flow that just stops — UDP, a vanished client —
//! only ends by timeout).

use std::{net::Ipv4Addr, time::Duration};

use baton_abi::{
    conntrack::{CT_DIR_ORIGINAL, CT_F_COUNTED, CT_MAP_NAME, CtEntry, CtKey, CtState},
    lb::BACKEND_CONNS_MAP_NAME,
};
use nix::time::{ClockId, clock_gettime};

use crate::dataplane::maps::{self, CtMaps, LbMaps, MapAccessError};

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of `bpf_ktime_get_ns`.
#[must_use]
pub fn monotonic_now_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|now| now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64)
        .unwrap_or(0)
}

/// One conntrack entry, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtFlow {
    pub key: CtKey,
    pub entry: CtEntry,
}

impl CtFlow {
    /// Whether this is the original-direction entry of its flow.
    #[must_use]
    pub fn is_original(&self) -> bool {
        self.key.dir == CT_DIR_ORIGINAL
    }

    /// Decoded state.
    #[must_use]
    pub fn state(&self) -> Option<CtState> {
        CtState::from_u8(self.entry.state)
    }

    /// Time left before expiry at `now_ns` (zero if expired).
    #[must_use]
    pub fn remaining(&self, now_ns: u64) -> Duration {
        Duration::from_nanos(self.entry.expires_ns.saturating_sub(now_ns))
    }

    /// `src:port -> dst:port` of the key.
    #[must_use]
    pub fn tuple(&self) -> String {
        format!(
            "{}:{} -> {}:{}",
            Ipv4Addr::from(self.key.saddr),
            self.key.sport,
            Ipv4Addr::from(self.key.daddr),
            self.key.dport
        )
    }

    /// `src:port -> dst:port` the packet is rewritten to.
    #[must_use]
    pub fn rewritten(&self) -> String {
        format!(
            "{}:{} -> {}:{}",
            Ipv4Addr::from(self.entry.to_saddr),
            self.entry.to_sport,
            Ipv4Addr::from(self.entry.to_daddr),
            self.entry.to_dport
        )
    }
}

/// Every conntrack entry.
pub fn dump(maps: &CtMaps) -> Result<Vec<CtFlow>, MapAccessError> {
    let mut flows: Vec<CtFlow> = maps::entries(&maps.ct, CT_MAP_NAME)?
        .into_iter()
        .map(|(key, entry)| CtFlow { key, entry })
        .collect();
    flows.sort_by_key(|flow| flow.key);
    Ok(flows)
}

/// What a GC pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Entries looked at.
    pub scanned: usize,
    /// Expired entries removed.
    pub removed: usize,
    /// Of those, flows uncounted from their backend's active flows.
    pub uncounted: usize,
}

/// Removes entries that expired before `now_ns`.
pub fn gc(ct: &mut CtMaps, lb: &mut LbMaps, now_ns: u64) -> Result<GcReport, MapAccessError> {
    let mut report = GcReport::default();
    for flow in dump(ct)? {
        report.scanned += 1;
        if flow.entry.expires_ns > now_ns {
            continue;
        }
        maps::delete(&mut ct.ct, CT_MAP_NAME, &flow.key)?;
        report.removed += 1;
        if flow.is_original() && flow.entry.flags & CT_F_COUNTED != 0 {
            uncount(lb, &flow)?;
            report.uncounted += 1;
        }
    }
    Ok(report)
}

/// Lowers the active-flow count of the flow's backend, if the id still
/// names the backend the flow went to.
fn uncount(lb: &mut LbMaps, flow: &CtFlow) -> Result<(), MapAccessError> {
    let id = flow.entry.backend_id;
    let Ok(backend) = lb.backends.get(&id, 0) else {
        return Ok(());
    };
    if backend.addr != flow.entry.to_daddr || backend.port != flow.entry.to_dport {
        return Ok(());
    }
    let mut conns = lb
        .conns
        .get(&id, 0)
        .map_err(|error| MapAccessError::of(BACKEND_CONNS_MAP_NAME, "lookup", error))?;
    // A program may add to the count between this read and the write; the
    // race loses at most that one increment, which the next GC pass cannot
    // see either. Counts are a load signal, not an invariant.
    conns.flows = conns.flows.saturating_sub(1);
    lb.conns
        .set(id, conns, 0)
        .map_err(|error| MapAccessError::of(BACKEND_CONNS_MAP_NAME, "update", error))
}
