//! An in-memory stand-in for the load-balancing maps ([`LbMapOps`]), so the
//! load balancer's state machine is tested without root.
//!
//! It answers as the kernel's maps do wherever the load balancer can tell
//! the difference: a hash map refuses a new key once it holds
//! `max_entries` (`E2BIG`, which [`MapAccessError::of`] reports as
//! [`MapAccessError::Full`]), an array refuses an index past its end, and
//! a delete of an absent key is not an error. Sizes are those the loader
//! gives the kernel's maps ([`Capacities::map_sizes`]); a test can make a
//! map smaller than the load balancer was told, as a map pinned by another
//! configuration would be.
//!
//! Array entries never written read as zeros, as in the kernel, so
//! [`Contents`] holds only their non-zero entries and two snapshots are
//! equal exactly when a datapath would read the same.
//!
//! A clone is another handle on the same maps, as two opens of one pinned
//! map are: a test keeps one to look at what the datapath would read while
//! a [`super::services::LoadBalancer`] owns the other, and restores a new load
//! balancer from the same maps to mimic a restart.
//!
//! Failures are injected per write: [`MemoryLbMaps::fail_write`] fails the
//! n-th write from now, [`MemoryLbMaps::fail_next_update`] the next update
//! of one map. An injected failure changes nothing and reports `EIO` from
//! the syscall, as any other refusal of the kernel would.

use std::{cell::RefCell, collections::BTreeMap, io, rc::Rc};

use aya::{maps::MapError, sys::SyscallError};
use baton_abi::lb::{
    BACKEND_CONNS_MAP_NAME, BACKENDS_MAP_NAME, Backend, BackendConns, MAGLEV_MAP_NAME,
    MEMBERS_MAP_NAME, MaglevEntry, MemberKey, MemberValue, SERVICE_STATS_MAP_NAME,
    SERVICES_MAP_NAME, SLOTS_MAP_NAME, ServiceKey, ServiceStats, ServiceValue, SlotKey, SlotValue,
};

use super::map_ops::LbMapOps;
use crate::dataplane::{capacity::Capacities, maps::MapAccessError};

/// What the load-balancing maps hold: what a datapath would read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Contents {
    pub services: BTreeMap<ServiceKey, ServiceValue>,
    pub slots: BTreeMap<SlotKey, SlotValue>,
    pub members: BTreeMap<MemberKey, MemberValue>,
    pub backends: BTreeMap<u32, Backend>,
    /// Non-zero entries of the flat Maglev array.
    pub maglev: BTreeMap<u32, MaglevEntry>,
    /// Non-zero entries of the connection-count array.
    pub conns: BTreeMap<u32, BackendConns>,
    /// Per-service counters, summed over the CPUs.
    pub stats: BTreeMap<u32, ServiceStats>,
}

/// The kind of a write, for the syscall it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Update,
    Delete,
}

impl Write {
    fn syscall(self) -> &'static str {
        match self {
            Self::Update => "bpf_map_update_elem",
            Self::Delete => "bpf_map_delete_elem",
        }
    }

    fn op(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

#[derive(Debug)]
struct State {
    contents: Contents,
    /// `max_entries` by map name.
    sizes: BTreeMap<&'static str, u32>,
    /// Writes attempted so far.
    writes: usize,
    /// The write (counted as in `writes`) that fails.
    failing_write: Option<usize>,
    /// The map whose next update fails.
    failing_update: Option<&'static str>,
}

type Field<K, V> = fn(&mut Contents) -> &mut BTreeMap<K, V>;

impl State {
    fn size(&self, name: &'static str) -> u32 {
        self.sizes.get(name).copied().unwrap_or(u32::MAX)
    }

    /// Counts a write and fails it if a fault is due.
    fn attempt(&mut self, name: &'static str, write: Write) -> Result<(), MapAccessError> {
        self.writes += 1;
        if self.failing_write == Some(self.writes) {
            self.failing_write = None;
            return Err(refused(name, write, libc::EIO));
        }
        if write == Write::Update && self.failing_update == Some(name) {
            self.failing_update = None;
            return Err(refused(name, write, libc::EIO));
        }
        Ok(())
    }

    fn update<K: Ord, V>(
        &mut self,
        name: &'static str,
        field: Field<K, V>,
        key: K,
        value: V,
    ) -> Result<(), MapAccessError> {
        self.attempt(name, Write::Update)?;
        let size = self.size(name);
        let map = field(&mut self.contents);
        if !map.contains_key(&key) && map.len() >= size as usize {
            return Err(refused(name, Write::Update, libc::E2BIG));
        }
        map.insert(key, value);
        Ok(())
    }

    fn delete<K: Ord, V>(
        &mut self,
        name: &'static str,
        field: Field<K, V>,
        key: &K,
    ) -> Result<(), MapAccessError> {
        self.attempt(name, Write::Delete)?;
        field(&mut self.contents).remove(key);
        Ok(())
    }

    fn set<V: Default + PartialEq>(
        &mut self,
        name: &'static str,
        field: Field<u32, V>,
        index: u32,
        value: V,
    ) -> Result<(), MapAccessError> {
        self.attempt(name, Write::Update)?;
        let max_entries = self.size(name);
        if index >= max_entries {
            let error = MapError::OutOfBounds { index, max_entries };
            return Err(MapAccessError::of(name, Write::Update.op(), error));
        }
        let map = field(&mut self.contents);
        if value == V::default() {
            map.remove(&index);
        } else {
            map.insert(index, value);
        }
        Ok(())
    }
}

/// The error of a write the kernel refused with `errno`.
fn refused(name: &'static str, write: Write, errno: i32) -> MapAccessError {
    let error = MapError::SyscallError(SyscallError {
        call: write.syscall(),
        io_error: io::Error::from_raw_os_error(errno),
    });
    MapAccessError::of(name, write.op(), error)
}

/// A handle on in-memory load-balancing maps.
#[derive(Debug, Clone)]
pub(crate) struct MemoryLbMaps(Rc<RefCell<State>>);

impl MemoryLbMaps {
    /// Empty maps sized as the loader sizes the kernel's for `capacities`.
    pub fn new(capacities: &Capacities) -> Self {
        Self(Rc::new(RefCell::new(State {
            contents: Contents::default(),
            sizes: capacities.map_sizes().into_iter().collect(),
            writes: 0,
            failing_write: None,
            failing_update: None,
        })))
    }

    /// Gives map `name` room for `max_entries` only.
    pub fn resize(&self, name: &'static str, max_entries: u32) {
        self.0.borrow_mut().sizes.insert(name, max_entries);
    }

    /// A snapshot of every map.
    pub fn contents(&self) -> Contents {
        self.0.borrow().contents.clone()
    }

    /// Changes the maps behind the load balancer's back (as a datapath or
    /// a crash would leave them); not counted as writes.
    pub fn edit(&self, change: impl FnOnce(&mut Contents)) {
        change(&mut self.0.borrow_mut().contents);
    }

    /// Writes (updates and deletes) attempted so far.
    pub fn writes(&self) -> usize {
        self.0.borrow().writes
    }

    /// Makes the `n`-th write from now (1 is the next) fail.
    pub fn fail_write(&self, n: usize) {
        let mut state = self.0.borrow_mut();
        state.failing_write = Some(state.writes + n);
    }

    /// Makes the next update of map `name` fail.
    pub fn fail_next_update(&self, name: &'static str) {
        self.0.borrow_mut().failing_update = Some(name);
    }
}

fn entries<K: Copy, V: Copy>(map: &BTreeMap<K, V>) -> Vec<(K, V)> {
    map.iter().map(|(key, value)| (*key, *value)).collect()
}

impl LbMapOps for MemoryLbMaps {
    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, MapAccessError> {
        Ok(entries(&self.0.borrow().contents.services))
    }

    fn put_service(
        &mut self,
        key: &ServiceKey,
        value: &ServiceValue,
    ) -> Result<(), MapAccessError> {
        self.0
            .borrow_mut()
            .update(SERVICES_MAP_NAME, |c| &mut c.services, *key, *value)
    }

    fn delete_service(&mut self, key: &ServiceKey) -> Result<(), MapAccessError> {
        self.0
            .borrow_mut()
            .delete(SERVICES_MAP_NAME, |c| &mut c.services, key)
    }

    fn slots(&self) -> Result<Vec<(SlotKey, SlotValue)>, MapAccessError> {
        Ok(entries(&self.0.borrow().contents.slots))
    }

    fn put_slot(&mut self, key: &SlotKey, value: &SlotValue) -> Result<(), MapAccessError> {
        self.0
            .borrow_mut()
            .update(SLOTS_MAP_NAME, |c| &mut c.slots, *key, *value)
    }

    fn delete_slot(&mut self, key: &SlotKey) -> Result<(), MapAccessError> {
        self.0
            .borrow_mut()
            .delete(SLOTS_MAP_NAME, |c| &mut c.slots, key)
    }

    fn members(&self) -> Result<Vec<(MemberKey, MemberValue)>, MapAccessError> {
        Ok(entries(&self.0.borrow().contents.members))
    }

    fn put_member(&mut self, key: &MemberKey, value: &MemberValue) -> Result<(), MapAccessError> {
        self.0
            .borrow_mut()
            .update(MEMBERS_MAP_NAME, |c| &mut c.members, *key, *value)
    }

    fn delete_member(&mut self, key: &MemberKey) -> Result<(), MapAccessError> {
        self.0
            .borrow_mut()
            .delete(MEMBERS_MAP_NAME, |c| &mut c.members, key)
    }

    fn backends(&self) -> Result<Vec<(u32, Backend)>, MapAccessError> {
        Ok(entries(&self.0.borrow().contents.backends))
    }

    fn put_backend(&mut self, id: u32, value: &Backend) -> Result<(), MapAccessError> {
        self.0
            .borrow_mut()
            .update(BACKENDS_MAP_NAME, |c| &mut c.backends, id, *value)
    }

    fn delete_backend(&mut self, id: u32) -> Result<(), MapAccessError> {
        self.0
            .borrow_mut()
            .delete(BACKENDS_MAP_NAME, |c| &mut c.backends, &id)
    }

    fn reset_conns(&mut self, id: u32) -> Result<(), MapAccessError> {
        self.0.borrow_mut().set(
            BACKEND_CONNS_MAP_NAME,
            |c| &mut c.conns,
            id,
            BackendConns::default(),
        )
    }

    fn set_maglev(&mut self, index: u32, entry: MaglevEntry) -> Result<(), MapAccessError> {
        self.0
            .borrow_mut()
            .set(MAGLEV_MAP_NAME, |c| &mut c.maglev, index, entry)
    }

    fn clear_service_stats(&mut self, id: u32) -> Result<(), MapAccessError> {
        self.0
            .borrow_mut()
            .delete(SERVICE_STATS_MAP_NAME, |c| &mut c.stats, &id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            addr: [10, 96, 0, 1],
            port,
            proto: 6,
            scope: 0,
        }
    }

    fn small() -> MemoryLbMaps {
        MemoryLbMaps::new(&Capacities {
            frontends: 2,
            maglev_tables: 1,
            maglev_table_size: 3,
            ..Capacities::default()
        })
    }

    #[test]
    fn a_full_hash_map_refuses_new_keys_but_takes_updates() {
        let mut maps = small();
        let value = ServiceValue::default();
        maps.put_service(&key(1), &value).unwrap();
        maps.put_service(&key(2), &value).unwrap();
        let error = maps.put_service(&key(3), &value).unwrap_err();
        assert!(
            matches!(
                error,
                MapAccessError::Full {
                    name: SERVICES_MAP_NAME
                }
            ),
            "{error}"
        );
        maps.put_service(&key(2), &value).unwrap();
        maps.delete_service(&key(9)).unwrap();
        assert_eq!(maps.services().unwrap().len(), 2);
    }

    #[test]
    fn an_array_refuses_an_index_past_its_end_and_keeps_only_non_zero_entries() {
        let mut maps = small();
        maps.set_maglev(2, MaglevEntry { backend_id: 7 }).unwrap();
        assert!(maps.set_maglev(3, MaglevEntry { backend_id: 7 }).is_err());
        maps.set_maglev(2, MaglevEntry::default()).unwrap();
        maps.reset_conns(4).unwrap();
        assert_eq!(maps.contents(), Contents::default());
    }

    #[test]
    fn injected_failures_fire_once_and_change_nothing() {
        let mut maps = small();
        let handle = maps.clone();
        handle.fail_write(2);
        maps.put_service(&key(1), &ServiceValue::default()).unwrap();
        let error = maps.delete_service(&key(1)).unwrap_err();
        assert!(
            matches!(error, MapAccessError::Op { op: "delete", .. }),
            "{error}"
        );
        assert_eq!(
            handle.contents().services.len(),
            1,
            "the delete did nothing"
        );

        let slot = SlotKey {
            service_id: 1,
            slot: 1,
            bank: 0,
            _pad: 0,
        };
        handle.fail_next_update(SLOTS_MAP_NAME);
        maps.delete_slot(&slot).unwrap();
        assert!(maps.put_slot(&slot, &SlotValue::default()).is_err());
        maps.put_slot(&slot, &SlotValue::default()).unwrap();
        assert_eq!(handle.writes(), 5);
        assert_eq!(handle.contents().slots.len(), 1);
    }
}
