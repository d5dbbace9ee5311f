//! The backends map: one id per distinct (address, port, protocol),
//! shared by every service that uses that endpoint, with a reference count
//! of the services using it.
//!
//! A backend entry is written before any slot names it and deleted after
//! the last service stops using it. When an id is handed out, its
//! connection counts are reset: whatever an earlier holder of the id left
//! there is not this backend's load (and the programs refuse to uncount a
//! connection whose recorded address does not match the entry).

use std::{collections::HashMap, net::Ipv4Addr};

use baton_abi::lb::{
    BACKEND_F_LOCAL, BACKEND_STATE_ACTIVE, BACKEND_STATE_TERMINATING, BACKENDS_MAP_NAME, Backend,
};

use super::{
    ids::IdAllocator,
    map_ops::LbMapOps,
    spec::{BackendSpec, BackendState, Protocol},
};
use crate::dataplane::maps::MapAccessError;

/// Identity of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
}

impl BackendKey {
    /// The key of `spec` under `protocol`.
    #[must_use]
    pub fn of(spec: &BackendSpec, protocol: Protocol) -> Self {
        Self {
            addr: spec.addr,
            port: spec.port,
            protocol,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    id: u32,
    refs: u32,
    value: Backend,
}

/// Backend ids and their map entries.
#[derive(Debug)]
pub struct BackendTable {
    by_key: HashMap<BackendKey, Entry>,
    by_id: HashMap<u32, BackendKey>,
    ids: IdAllocator,
}

/// The map value for `spec`.
#[must_use]
pub fn value_of(spec: &BackendSpec, protocol: Protocol) -> Backend {
    Backend {
        addr: spec.addr.octets(),
        port: spec.port,
        proto: protocol.number(),
        state: match spec.state {
            BackendState::Ready => BACKEND_STATE_ACTIVE,
            BackendState::Terminating => BACKEND_STATE_TERMINATING,
        },
        flags: if spec.node_local { BACKEND_F_LOCAL } else { 0 },
        _pad: [0; 3],
    }
}

impl BackendTable {
    /// An empty table with ids `1..capacity`.
    #[must_use]
    pub fn new(capacity: u32) -> Self {
        Self {
            by_key: HashMap::new(),
            by_id: HashMap::new(),
            ids: IdAllocator::new(1, capacity),
        }
    }

    /// Rebuilds the table from the backends map and the number of services
    /// using each id (ids nobody uses are left out; the caller deletes
    /// them).
    #[must_use]
    pub fn restored(capacity: u32, found: &[(u32, Backend)], refs: &HashMap<u32, u32>) -> Self {
        let mut table = Self {
            by_key: HashMap::new(),
            by_id: HashMap::new(),
            ids: IdAllocator::restored(1, capacity, found.iter().map(|(id, _)| *id)),
        };
        for (id, value) in found {
            let refs = refs.get(id).copied().unwrap_or(0);
            let Some(protocol) = Protocol::from_number(value.proto) else {
                continue;
            };
            let key = BackendKey {
                addr: Ipv4Addr::from(value.addr),
                port: value.port,
                protocol,
            };
            table.by_key.insert(
                key,
                Entry {
                    id: *id,
                    refs,
                    value: *value,
                },
            );
            table.by_id.insert(*id, key);
        }
        table
    }

    /// The id of `key`, if it has one.
    #[must_use]
    pub fn id(&self, key: &BackendKey) -> Option<u32> {
        self.by_key.get(key).map(|entry| entry.id)
    }

    /// The map value of backend `id`.
    #[must_use]
    pub fn value(&self, id: u32) -> Option<Backend> {
        let key = self.by_id.get(&id)?;
        self.by_key.get(key).map(|entry| entry.value)
    }

    /// Ids free for new backends.
    #[must_use]
    pub fn available(&self) -> usize {
        self.ids.available()
    }

    /// Distinct backends.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Takes a reference on the backend `spec` for one more service:
    /// allocates its id and writes its entry if it is new, rewrites the
    /// entry if its state or locality changed. Returns the id.
    pub fn acquire(
        &mut self,
        maps: &mut impl LbMapOps,
        spec: &BackendSpec,
        protocol: Protocol,
    ) -> Result<u32, MapAccessError> {
        let key = BackendKey::of(spec, protocol);
        let value = value_of(spec, protocol);
        if let Some(entry) = self.by_key.get_mut(&key) {
            if entry.value != value {
                maps.put_backend(entry.id, &value)?;
                entry.value = value;
            }
            entry.refs += 1;
            return Ok(entry.id);
        }
        let id = self.ids.allocate().ok_or(MapAccessError::Full {
            name: BACKENDS_MAP_NAME,
        })?;
        let written = maps
            .reset_conns(id)
            .and_then(|()| maps.put_backend(id, &value));
        if let Err(error) = written {
            self.ids.release(id);
            return Err(error);
        }
        self.by_key.insert(key, Entry { id, refs: 1, value });
        self.by_id.insert(id, key);
        Ok(id)
    }

    /// Drops one service's reference on backend `id`; the last one deletes
    /// the entry and frees the id.
    pub fn release(&mut self, maps: &mut impl LbMapOps, id: u32) -> Result<(), MapAccessError> {
        let Some(key) = self.by_id.get(&id).copied() else {
            return Ok(());
        };
        let Some(entry) = self.by_key.get_mut(&key) else {
            return Ok(());
        };
        entry.refs = entry.refs.saturating_sub(1);
        if entry.refs > 0 {
            return Ok(());
        }
        maps.delete_backend(id)?;
        self.by_key.remove(&key);
        self.by_id.remove(&id);
        self.ids.release(id);
        Ok(())
    }

    /// Every backend with its id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, BackendKey, Backend)> + '_ {
        self.by_key
            .iter()
            .map(|(key, entry)| (entry.id, *key, entry.value))
    }
}
