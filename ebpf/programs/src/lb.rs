//! Service lookup and backend selection, shared by the socket hooks and the
//! packet path. Every decision is O(1): a bounded number of map lookups
//! whatever the number of services or backends (least-connections compares
//! a constant [`LEAST_CONN_CANDIDATES`] slots).
//!
//! The map layout and the update protocol that keeps a service whole while
//! baton-node changes it are described in `baton_abi::lb`.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::bpf_get_prandom_u32,
    macros::map,
    maps::{Array, HashMap, LruHashMap},
};
use baton_abi::{
    Direction, DropReason,
    lb::{
        AFFINITY_MAX_ENTRIES, AffinityKey, AffinityValue, Algorithm, BACKEND_CONNS_MAX_ENTRIES,
        BACKEND_F_LOCAL, BACKEND_STATE_TERMINATING, BACKENDS_MAX_ENTRIES, Backend, BackendConns,
        FrontendKind, LEAST_CONN_CANDIDATES, MAGLEV_MAX_ENTRIES, MAGLEV_TABLE_SIZE,
        MEMBERS_MAX_ENTRIES, MaglevEntry, MemberKey, MemberValue, RR_MAX_ENTRIES, RrState,
        SCOPE_DEFAULT, SCOPE_INTERNAL, SERVICE_F_AFFINITY, SERVICE_F_LOCAL_ONLY,
        SERVICE_F_TERMINATING_FALLBACK, SERVICE_F_TWO_SCOPES, SERVICES_MAX_ENTRIES,
        SLOTS_MAX_ENTRIES, ServiceKey, ServiceValue, SlotKey, SlotValue,
    },
    metrics::Event,
};

use crate::{atomic, metrics, route};

#[map(name = "baton_lb_fe")]
static SERVICES: HashMap<ServiceKey, ServiceValue> =
    HashMap::with_max_entries(SERVICES_MAX_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "baton_lb_slots")]
static SLOTS: HashMap<SlotKey, SlotValue> =
    HashMap::with_max_entries(SLOTS_MAX_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "baton_lb_be")]
static BACKENDS: HashMap<u32, Backend> =
    HashMap::with_max_entries(BACKENDS_MAX_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "baton_lb_member")]
static MEMBERS: HashMap<MemberKey, MemberValue> =
    HashMap::with_max_entries(MEMBERS_MAX_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "baton_lb_maglev")]
static MAGLEV: Array<MaglevEntry> = Array::with_max_entries(MAGLEV_MAX_ENTRIES, 0);

#[map(name = "baton_lb_aff")]
static AFFINITY: LruHashMap<AffinityKey, AffinityValue> =
    LruHashMap::with_max_entries(AFFINITY_MAX_ENTRIES, 0);

#[map(name = "baton_lb_conns")]
static CONNS: Array<BackendConns> = Array::with_max_entries(BACKEND_CONNS_MAX_ENTRIES, 0);

#[map(name = "baton_lb_rr")]
static RR: Array<RrState> = Array::with_max_entries(RR_MAX_ENTRIES, 0);

/// Entries per Maglev table, set by baton-node at load time
/// (`baton_abi::globals::MAGLEV_TABLE_SIZE`). Read-only data: the verifier
/// knows its value.
#[unsafe(no_mangle)]
static BATON_MAGLEV_TABLE_SIZE: u32 = MAGLEV_TABLE_SIZE;

/// Who is asking: traffic from inside the cluster (socket hooks, pods) may
/// use ClusterIPs and sees a frontend's internal view; traffic from outside
/// (the uplink) only external frontends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Inside,
    Outside,
}

/// Finds the frontend `addr:port/proto`, including NodePorts on any local
/// address, in the view `origin` uses.
#[inline(always)]
pub fn lookup(addr: [u8; 4], port: u16, proto: u8, origin: Origin) -> Option<ServiceValue> {
    let mut key = ServiceKey {
        addr,
        port,
        proto,
        scope: SCOPE_DEFAULT,
    };
    let service = match get_service(&key) {
        Some(service) => service,
        None => {
            if !route::is_local_addr(addr) {
                return None;
            }
            key.addr = [0; 4];
            get_service(&key)?
        }
    };
    match origin {
        Origin::Outside => {
            if service.kind == FrontendKind::ClusterIp as u8 {
                None
            } else {
                Some(service)
            }
        }
        Origin::Inside => {
            if service.flags & SERVICE_F_TWO_SCOPES != 0 {
                key.scope = SCOPE_INTERNAL;
                Some(get_service(&key).unwrap_or(service))
            } else {
                Some(service)
            }
        }
    }
}

#[inline(always)]
fn get_service(key: &ServiceKey) -> Option<ServiceValue> {
    // SAFETY: a successful lookup points at a live, aligned value; it is
    // copied out at once. The map has no preallocation, so an element
    // replaced concurrently stays intact until an RCU grace period passes.
    SERVICES.get_ptr(key).map(|value| unsafe { *value })
}

/// The backend with id `id`.
#[inline(always)]
pub fn backend(id: u32) -> Option<Backend> {
    // SAFETY: as in `get_service`.
    BACKENDS.get_ptr(id).map(|value| unsafe { *value })
}

/// The client of a new connection, for affinity and hashing.
pub struct Client {
    /// Affinity identity: netns cookie or IPv4 address.
    pub id: u64,
    /// `AFFINITY_CLIENT_*`.
    pub kind: u8,
    /// Flow hash for Maglev.
    pub hash: u32,
}

/// A chosen backend.
pub struct Chosen {
    pub id: u32,
    pub backend: Backend,
}

/// Picks the backend of a new connection to `service`.
#[inline(always)]
pub fn select(
    service: &ServiceValue,
    client: &Client,
    now_ns: u64,
    direction: Direction,
) -> Result<Chosen, DropReason> {
    if service.count == 0 {
        return Err(DropReason::NoServiceBackends);
    }
    let affinity = service.flags & SERVICE_F_AFFINITY != 0;
    let affinity_key = AffinityKey {
        client: client.id,
        service_id: service.service_id,
        client_kind: client.kind,
        _pad: [0; 3],
    };
    if affinity && let Some(chosen) = remembered(service, &affinity_key, now_ns) {
        return Ok(chosen);
    }

    let id = match Algorithm::from_u8(service.algorithm) {
        Some(Algorithm::Maglev) => maglev(service, client.hash)?,
        Some(Algorithm::RoundRobin) => slot_backend(service, round_robin_slot(service))?,
        Some(Algorithm::LeastConnections) => least_connections(service)?,
        Some(Algorithm::Random) | None => slot_backend(service, random_slot(service))?,
    };
    let backend = backend(id).ok_or(DropReason::BackendMissing)?;

    if affinity {
        let value = AffinityValue {
            backend_id: id,
            _pad: 0,
            last_used_ns: now_ns,
        };
        if AFFINITY.insert(affinity_key, value, 0).is_err() {
            metrics::event(Event::AffinityMapFull, direction, 0);
        }
    }
    Ok(Chosen { id, backend })
}

/// The backend the client used within the affinity timeout, if it may
/// still be used: still a member of the service, still in the frontend's
/// view (node-local for a Local policy), and not terminating while ready
/// backends exist. Using it renews the timeout.
#[inline(always)]
fn remembered(service: &ServiceValue, key: &AffinityKey, now_ns: u64) -> Option<Chosen> {
    let entry = AFFINITY.get_ptr_mut(key)?;
    // SAFETY: a successful lookup points at a live, aligned value for the
    // rest of this run.
    let (id, last_used_ns) = unsafe { ((*entry).backend_id, (*entry).last_used_ns) };
    let timeout_ns = u64::from(service.affinity_timeout_s) * 1_000_000_000;
    if now_ns.saturating_sub(last_used_ns) > timeout_ns {
        return None;
    }
    let backend = still_usable(service, id)?;
    // SAFETY: as above; a racing writer can only store another timestamp.
    unsafe { (*entry).last_used_ns = now_ns };
    Some(Chosen { id, backend })
}

/// The backend `id` if `service` may still send new connections to it: a
/// member of the service, in the frontend's view (node-local for a Local
/// policy), and not terminating while ready backends exist.
#[inline(always)]
pub fn still_usable(service: &ServiceValue, id: u32) -> Option<Backend> {
    let member = MemberKey {
        service_id: service.service_id,
        backend_id: id,
    };
    MEMBERS.get_ptr(member)?;
    let backend = backend(id)?;
    if service.flags & SERVICE_F_LOCAL_ONLY != 0 && backend.flags & BACKEND_F_LOCAL == 0 {
        return None;
    }
    if backend.state == BACKEND_STATE_TERMINATING
        && service.flags & SERVICE_F_TERMINATING_FALLBACK == 0
    {
        return None;
    }
    Some(backend)
}

/// `a % b`, 0 when `b` is 0 (never the case where it is used, but the
/// verifier cannot see that and a division by zero must not panic).
#[inline(always)]
fn rem(a: u32, b: u32) -> u32 {
    a.checked_rem(b).unwrap_or(0)
}

#[inline(always)]
fn random_slot(service: &ServiceValue) -> u16 {
    // SAFETY: a helper without arguments.
    let random = unsafe { bpf_get_prandom_u32() };
    rem(random, u32::from(service.count)) as u16 + 1
}

#[inline(always)]
fn round_robin_slot(service: &ServiceValue) -> u16 {
    let turn = match RR.get_ptr_mut(service.service_id) {
        // SAFETY: an array lookup that succeeded points at a live, aligned
        // `RrState` whose only field is the `u32` counter.
        Some(state) => unsafe { atomic::fetch_add(&raw mut (*state).next, 1) },
        None => 0,
    };
    rem(turn, u32::from(service.count)) as u16 + 1
}

/// Least active connections among up to [`LEAST_CONN_CANDIDATES`]
/// consecutive slots from a random start. With that many backends or fewer
/// every backend is compared; ties go to the first candidate, so they are
/// broken at random.
#[inline(always)]
fn least_connections(service: &ServiceValue) -> Result<u32, DropReason> {
    let count = u32::from(service.count);
    // SAFETY: a helper without arguments.
    let start = rem(unsafe { bpf_get_prandom_u32() }, count);
    let mut best = 0u32;
    let mut best_load = u32::MAX;
    for i in 0..u32::from(LEAST_CONN_CANDIDATES) {
        if i >= count {
            break;
        }
        let slot = rem(start + i, count) as u16 + 1;
        let Ok(id) = slot_backend(service, slot) else {
            continue;
        };
        let load = match CONNS.get_ptr(id) {
            // SAFETY: an array lookup that succeeded points at a live,
            // aligned value; racing updates only make the reading stale.
            Some(conns) => unsafe { (*conns).sockets.saturating_add((*conns).flows) },
            None => 0,
        };
        if load < best_load {
            best = id;
            best_load = load;
        }
    }
    if best == 0 {
        Err(DropReason::BackendMissing)
    } else {
        Ok(best)
    }
}

#[inline(always)]
fn maglev(service: &ServiceValue, hash: u32) -> Result<u32, DropReason> {
    // SAFETY: reads a read-only global of this object.
    let m = unsafe { core::ptr::read_volatile(&raw const BATON_MAGLEV_TABLE_SIZE) };
    let index = service
        .maglev_table
        .wrapping_mul(m)
        .wrapping_add(rem(hash, m));
    match MAGLEV.get_ptr(index) {
        // SAFETY: an array lookup that succeeded points at a live value.
        Some(entry) if unsafe { (*entry).backend_id } != 0 => Ok(unsafe { (*entry).backend_id }),
        _ => Err(DropReason::BackendMissing),
    }
}

#[inline(always)]
fn slot_backend(service: &ServiceValue, slot: u16) -> Result<u32, DropReason> {
    let key = SlotKey {
        service_id: service.service_id,
        slot: service.slot_offset.wrapping_add(slot),
        bank: service.bank,
        _pad: 0,
    };
    match SLOTS.get_ptr(key) {
        // SAFETY: as in `get_service`.
        Some(value) => Ok(unsafe { (*value).backend_id }),
        None => Err(DropReason::BackendMissing),
    }
}

/// Counts a new socket (`sockets`) or flow (`flows`) against `id`.
#[inline(always)]
pub fn count_connection(id: u32, socket: bool) {
    if let Some(conns) = CONNS.get_ptr_mut(id) {
        // SAFETY: an array lookup that succeeded points at a live, aligned
        // `BackendConns`; both fields are `u32`.
        unsafe {
            let field = if socket {
                &raw mut (*conns).sockets
            } else {
                &raw mut (*conns).flows
            };
            atomic::fetch_add(field, 1);
        }
    }
}

/// Uncounts a socket or flow counted against `id`, if `id` still names the
/// backend `addr:port` (a recycled id is never uncounted by an old
/// connection; its count was reset when it was handed out again).
#[inline(always)]
pub fn uncount_connection(id: u32, addr: [u8; 4], port: u16, socket: bool) {
    match backend(id) {
        Some(backend) if backend.addr == addr && backend.port == port => {}
        _ => return,
    }
    if let Some(conns) = CONNS.get_ptr_mut(id) {
        // SAFETY: as in `count_connection`.
        unsafe {
            let field = if socket {
                &raw mut (*conns).sockets
            } else {
                &raw mut (*conns).flows
            };
            atomic::decrement(field);
        }
    }
}

/// A 32-bit hash of four words (the finaliser of MurmurHash3 over a simple
/// combination): spreads flows over Maglev positions. It need not match
/// anything in userspace, which only fills the table.
#[inline(always)]
pub fn hash(words: [u32; 4]) -> u32 {
    let mut h: u32 = 0x9e37_79b9;
    for word in words {
        h ^= word
            .wrapping_mul(0xcc9e_2d51)
            .rotate_left(15)
            .wrapping_mul(0x1b87_3593);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}
