//! Conntrack of translated flows: lookups, TCP state tracking and expiry.
//! The entry layout (two entries per flow, keyed by the tuples as they
//! arrive) is described in `baton_abi::conntrack`.
//!
//! State is per flow, but each entry carries a copy so that either
//! direction finds it with one lookup; a transition (reply seen, FIN/RST)
//! and the periodic refresh of the expiry update both entries.

use aya_ebpf::{macros::map, maps::LruHashMap};
use baton_abi::{
    IPPROTO_TCP,
    conntrack::{
        CT_DIR_ORIGINAL, CT_DIR_REPLY, CT_F_COUNTED, CT_F_SEEN_REPLY, CT_MAX_ENTRIES,
        CT_REFRESH_GRANULARITY_NS, CT_TIMEOUT_TCP_CLOSING_S, CT_TIMEOUT_TCP_ESTABLISHED_S,
        CT_TIMEOUT_TCP_SYN_S, CT_TIMEOUT_UDP_S, CtEntry, CtKey, CtState,
    },
};

use crate::{
    lb,
    parse::{Ipv4, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

#[map(name = "baton_ct")]
pub static CT: LruHashMap<CtKey, CtEntry> = LruHashMap::with_max_entries(CT_MAX_ENTRIES, 0);

const NS: u64 = 1_000_000_000;

/// Lifetime of an entry in `state` for `proto`, in nanoseconds.
#[inline(always)]
pub fn timeout_ns(proto: u8, state: u8) -> u64 {
    if proto != IPPROTO_TCP {
        return u64::from(CT_TIMEOUT_UDP_S) * NS;
    }
    let seconds = if state == CtState::Established as u8 {
        CT_TIMEOUT_TCP_ESTABLISHED_S
    } else if state == CtState::Closing as u8 {
        CT_TIMEOUT_TCP_CLOSING_S
    } else {
        CT_TIMEOUT_TCP_SYN_S
    };
    u64::from(seconds) * NS
}

/// Whether the TCP flags open a new connection (SYN without ACK).
#[inline(always)]
pub fn is_syn(proto: u8, tcp_flags: u8) -> bool {
    proto == IPPROTO_TCP && tcp_flags & TCP_SYN != 0 && tcp_flags & TCP_ACK == 0
}

/// The live entry for `key` at `now_ns`, if there is one.
#[inline(always)]
pub fn lookup(key: &CtKey, now_ns: u64) -> Option<*mut CtEntry> {
    let entry = CT.get_ptr_mut(key)?;
    // SAFETY: a successful lookup points at a live, aligned entry for the
    // rest of this run.
    if unsafe { (*entry).expires_ns } <= now_ns {
        return None;
    }
    Some(entry)
}

/// The key of the entry for the other direction of the flow whose entry
/// `entry` is: the rewritten tuple, reversed.
#[inline(always)]
pub fn peer_key(entry: &CtEntry, proto: u8, dir: u8) -> CtKey {
    CtKey {
        saddr: entry.to_daddr,
        daddr: entry.to_saddr,
        sport: entry.to_dport,
        dport: entry.to_sport,
        proto,
        dir: if dir == CT_DIR_ORIGINAL {
            CT_DIR_REPLY
        } else {
            CT_DIR_ORIGINAL
        },
        _pad: 0,
    }
}

/// Accounts a packet of the flow whose entry for this direction is `entry`
/// (found under `key`): advances the TCP state, pushes the expiry forward,
/// and on the flow's first FIN/RST uncounts it from its backend's active
/// flows.
#[inline(always)]
pub fn on_packet(entry: *mut CtEntry, key: &CtKey, tcp_flags: u8, now_ns: u64) {
    // SAFETY: `entry` comes from `lookup` in this run.
    let current = unsafe { *entry };
    let mut state = current.state;
    let mut flags = current.flags;
    if key.proto == IPPROTO_TCP {
        if tcp_flags & (TCP_FIN | TCP_RST) != 0 {
            state = CtState::Closing as u8;
        } else if key.dir == CT_DIR_REPLY && state == CtState::New as u8 {
            state = CtState::Established as u8;
        }
    } else if key.dir == CT_DIR_REPLY {
        state = CtState::Established as u8;
    }
    if key.dir == CT_DIR_REPLY {
        flags |= CT_F_SEEN_REPLY;
    }
    let expires_ns = now_ns + timeout_ns(key.proto, state);
    let changed = state != current.state || flags != current.flags;
    if !changed && expires_ns < current.expires_ns + CT_REFRESH_GRANULARITY_NS {
        return;
    }
    // SAFETY: as above; racing CPUs write the same kind of values.
    unsafe {
        (*entry).state = state;
        (*entry).flags = flags;
        (*entry).expires_ns = expires_ns;
    }
    let peer = peer_key(&current, key.proto, key.dir);
    if let Some(other) = CT.get_ptr_mut(peer) {
        // SAFETY: a successful lookup points at a live entry.
        unsafe {
            (*other).state = state;
            (*other).flags |= flags & CT_F_SEEN_REPLY;
            (*other).expires_ns = expires_ns;
        }
        if state == CtState::Closing as u8 && current.state != state {
            // The original entry holds the count.
            let original = if key.dir == CT_DIR_ORIGINAL {
                entry
            } else {
                other
            };
            uncount(original);
        }
    } else if state == CtState::Closing as u8 && key.dir == CT_DIR_ORIGINAL {
        uncount(entry);
    }
}

/// Uncounts the flow of the original-direction entry `entry` if it is
/// still counted, once.
#[inline(always)]
pub fn uncount(entry: *mut CtEntry) {
    // SAFETY: `entry` points at a live entry found in this run.
    let current = unsafe { *entry };
    if current.flags & CT_F_COUNTED == 0 {
        return;
    }
    // SAFETY: as above.
    unsafe { (*entry).flags = current.flags & !CT_F_COUNTED };
    lb::uncount_connection(
        current.backend_id,
        current.to_daddr,
        current.to_dport,
        false,
    );
}

/// A TCP connection opened untranslated (to a pod's own address) on a
/// tuple that a closed translated flow used: the backend sees the same
/// addresses and ports for both, so the old flow's reply entry would turn
/// this connection's answers into the service's, and its SYN-ACK would
/// reach the client from the wrong address. A closing or expired flow is
/// over (its client socket is gone; the backend takes a new SYN on the
/// tuple), so both of its entries go. A flow still established keeps its
/// entries: the backend answers a SYN on its tuple with a challenge ACK,
/// and that flow goes on.
#[inline(always)]
pub fn forget_reused_tuple(ip: &Ipv4, now_ns: u64) {
    let Some((src_port, dst_port)) = ip.l4.ports() else {
        return;
    };
    if !is_syn(ip.protocol, ip.l4.tcp_flags()) {
        return;
    }
    let reply_key = CtKey {
        saddr: ip.dst,
        daddr: ip.src,
        sport: dst_port,
        dport: src_port,
        proto: ip.protocol,
        dir: CT_DIR_REPLY,
        _pad: 0,
    };
    let Some(entry) = CT.get_ptr_mut(reply_key) else {
        return;
    };
    // SAFETY: a successful lookup points at a live entry for this run.
    let reply = unsafe { *entry };
    if reply.state != CtState::Closing as u8 && reply.expires_ns > now_ns {
        return;
    }
    let original_key = peer_key(&reply, ip.protocol, CT_DIR_REPLY);
    if let Some(original) = CT.get_ptr_mut(original_key) {
        uncount(original);
        let _ = CT.remove(original_key);
    }
    let _ = CT.remove(reply_key);
}
