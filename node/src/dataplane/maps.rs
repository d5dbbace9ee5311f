//! Typed handles on the dataplane's maps, taken out of the loaded object
//! or opened from pins, the error every map operation reports, and the
//! typed put/delete/iterate helpers every part of the dataplane uses.
//!
//! aya's typed wrappers check key and value sizes against the kernel's map
//! when they are created, so a layout mismatch is caught once, here, and
//! every later access is typed.

use std::path::Path;

use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuHashMap},
};
use baton_abi::{
    METRICS_MAP_NAME, MetricsKey, MetricsValue,
    config::{CONFIG_MAP_NAME, Config},
    conntrack::{CT_MAP_NAME, CtEntry, CtKey},
    lb::{
        AFFINITY_MAP_NAME, AffinityKey, AffinityValue, BACKEND_CONNS_MAP_NAME, BACKENDS_MAP_NAME,
        Backend, BackendConns, MAGLEV_MAP_NAME, MEMBERS_MAP_NAME, MaglevEntry, MemberKey,
        MemberValue, RR_MAP_NAME, RrState, SERVICE_STATS_MAP_NAME, SERVICES_MAP_NAME,
        SLOTS_MAP_NAME, ServiceKey, ServiceStats, ServiceValue, SlotKey, SlotValue,
    },
    route::{
        ENDPOINTS_MAP_NAME, Endpoint, Ipv4Key, LOCAL_ADDRS_MAP_NAME, LocalAddr, NODE_ADDRS_MAP_NAME,
    },
    sock::{REVSK_MAP_NAME, RevSkKey, RevSkValue},
};

/// A map could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum MapAccessError {
    /// The object lacks the map: the build is broken.
    #[error("the eBPF object has no map {name}")]
    Missing { name: &'static str },
    /// aya refused the map (type, key or value size).
    #[error("open map {name}: {source}")]
    Open {
        name: &'static str,
        #[source]
        source: Box<MapError>,
    },
    /// The map is full: the kernel refused a new entry (`E2BIG`).
    #[error("map {name} is full")]
    Full { name: &'static str },
    /// Another failure of a map operation.
    #[error("{op} on map {name}: {source}")]
    Op {
        name: &'static str,
        op: &'static str,
        #[source]
        source: Box<MapError>,
    },
}

impl MapAccessError {
    /// Classifies the error of `op` on `name`: a full hash map answers
    /// `E2BIG` to an insert.
    pub(crate) fn of(name: &'static str, op: &'static str, error: MapError) -> Self {
        if errno(&error) == Some(libc::E2BIG) {
            return Self::Full { name };
        }
        Self::Op {
            name,
            op,
            source: Box::new(error),
        }
    }
}

/// The errno behind a map error, if it came from the kernel.
pub(crate) fn errno(error: &MapError) -> Option<i32> {
    match error {
        MapError::SyscallError(syscall) => syscall.io_error.raw_os_error(),
        MapError::IoError(io) => io.raw_os_error(),
        _ => None,
    }
}

/// Whether `error` says the key was not there (a delete of something
/// already gone, a lookup of nothing).
pub(crate) fn is_not_found(error: &MapError) -> bool {
    matches!(error, MapError::KeyNotFound | MapError::ElementNotFound)
        || errno(error) == Some(libc::ENOENT)
}

/// Where maps come from: the object just loaded, or pins left in a
/// directory (for tools that read a running node's maps).
pub(crate) enum Source<'a> {
    Object(&'a mut Ebpf),
    Pins(&'a Path),
}

impl Source<'_> {
    fn open<T>(&mut self, name: &'static str) -> Result<T, MapAccessError>
    where
        T: TryFrom<Map, Error = MapError>,
    {
        match self {
            Self::Object(ebpf) => take(ebpf, name),
            Self::Pins(dir) => {
                let open = |source| MapAccessError::Open {
                    name,
                    source: Box::new(source),
                };
                let data = MapData::from_pin(dir.join(name)).map_err(open)?;
                let map = Map::from_map_data(data).map_err(open)?;
                T::try_from(map).map_err(open)
            }
        }
    }
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, MapAccessError>
where
    T: TryFrom<Map, Error = MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(MapAccessError::Missing { name })?;
    T::try_from(map).map_err(|source| MapAccessError::Open {
        name,
        source: Box::new(source),
    })
}

/// The load-balancing maps.
pub struct LbMaps {
    pub services: HashMap<MapData, ServiceKey, ServiceValue>,
    pub slots: HashMap<MapData, SlotKey, SlotValue>,
    pub backends: HashMap<MapData, u32, Backend>,
    pub members: HashMap<MapData, MemberKey, MemberValue>,
    pub maglev: Array<MapData, MaglevEntry>,
    pub affinity: HashMap<MapData, AffinityKey, AffinityValue>,
    pub conns: Array<MapData, BackendConns>,
    pub rr: Array<MapData, RrState>,
    pub stats: PerCpuHashMap<MapData, u32, ServiceStats>,
    pub revsk: HashMap<MapData, RevSkKey, RevSkValue>,
}

impl LbMaps {
    pub(crate) fn open(mut from: Source<'_>) -> Result<Self, MapAccessError> {
        Ok(Self {
            services: from.open(SERVICES_MAP_NAME)?,
            slots: from.open(SLOTS_MAP_NAME)?,
            backends: from.open(BACKENDS_MAP_NAME)?,
            members: from.open(MEMBERS_MAP_NAME)?,
            maglev: from.open(MAGLEV_MAP_NAME)?,
            affinity: from.open(AFFINITY_MAP_NAME)?,
            conns: from.open(BACKEND_CONNS_MAP_NAME)?,
            rr: from.open(RR_MAP_NAME)?,
            stats: from.open(SERVICE_STATS_MAP_NAME)?,
            revsk: from.open(REVSK_MAP_NAME)?,
        })
    }
}

/// The pod-routing and node maps.
pub struct NodeMaps {
    pub endpoints: HashMap<MapData, Ipv4Key, Endpoint>,
    pub local_addrs: HashMap<MapData, Ipv4Key, LocalAddr>,
    pub node_addrs: HashMap<MapData, Ipv4Key, LocalAddr>,
    pub config: Array<MapData, Config>,
}

impl NodeMaps {
    pub(crate) fn open(mut from: Source<'_>) -> Result<Self, MapAccessError> {
        Ok(Self {
            endpoints: from.open(ENDPOINTS_MAP_NAME)?,
            local_addrs: from.open(LOCAL_ADDRS_MAP_NAME)?,
            node_addrs: from.open(NODE_ADDRS_MAP_NAME)?,
            config: from.open(CONFIG_MAP_NAME)?,
        })
    }
}

/// The conntrack map.
pub struct CtMaps {
    pub ct: HashMap<MapData, CtKey, CtEntry>,
}

impl CtMaps {
    pub(crate) fn open(mut from: Source<'_>) -> Result<Self, MapAccessError> {
        Ok(Self {
            ct: from.open(CT_MAP_NAME)?,
        })
    }
}

/// The pinned metrics map of a node (the loaded dataplane reads its own
/// through the object).
pub(crate) fn pinned_metrics(
    dir: &Path,
) -> Result<PerCpuHashMap<MapData, MetricsKey, MetricsValue>, MapAccessError> {
    Source::Pins(dir).open(METRICS_MAP_NAME)
}

// aya's array and per-CPU map handles do not implement `Debug`; the map
// names say all a debug print needs.
impl std::fmt::Debug for LbMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LbMaps").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NodeMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMaps").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CtMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtMaps").finish_non_exhaustive()
    }
}

/// Inserts or replaces `key` in a hash map.
pub(crate) fn put<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<MapData, K, V>,
    name: &'static str,
    key: &K,
    value: &V,
) -> Result<(), MapAccessError> {
    map.insert(key, value, 0)
        .map_err(|error| MapAccessError::of(name, "update", error))
}

/// Deletes `key` from a hash map; an absent key is not an error.
pub(crate) fn delete<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<MapData, K, V>,
    name: &'static str,
    key: &K,
) -> Result<(), MapAccessError> {
    match map.remove(key) {
        Ok(()) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(MapAccessError::of(name, "delete", error)),
    }
}

/// Deletes `key` from a per-CPU hash map; an absent key is not an error.
pub(crate) fn delete_percpu<K: aya::Pod, V: aya::Pod>(
    map: &mut PerCpuHashMap<MapData, K, V>,
    name: &'static str,
    key: &K,
) -> Result<(), MapAccessError> {
    match map.remove(key) {
        Ok(()) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(MapAccessError::of(name, "delete", error)),
    }
}

/// Every `(key, value)` of a hash map.
pub(crate) fn entries<K: aya::Pod, V: aya::Pod>(
    map: &HashMap<MapData, K, V>,
    name: &'static str,
) -> Result<Vec<(K, V)>, MapAccessError> {
    map.iter()
        .filter(|entry| !matches!(entry, Err(error) if is_not_found(error)))
        .map(|entry| entry.map_err(|error| MapAccessError::of(name, "iterate", error)))
        .collect()
}
