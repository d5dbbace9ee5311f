//! The operations the load balancer performs on its maps ([`LbMapOps`])
//! and their implementation on the kernel's maps ([`LbMaps`]); the unit
//! tests implement them in memory (`memory_maps`).

use baton_abi::lb::{
    BACKEND_CONNS_MAP_NAME, BACKENDS_MAP_NAME, Backend, BackendConns, MAGLEV_MAP_NAME,
    MEMBERS_MAP_NAME, MaglevEntry, MemberKey, MemberValue, SERVICE_STATS_MAP_NAME,
    SERVICES_MAP_NAME, SLOTS_MAP_NAME, ServiceKey, ServiceValue, SlotKey, SlotValue,
};

use crate::dataplane::maps::{LbMaps, MapAccessError, delete, delete_percpu, entries, put};

/// The operations the load balancer (the `LoadBalancer` of `services` and
/// its `BackendTable`) performs on the load-balancing maps:
/// reading every entry back at restore, writing and deleting entries,
/// resetting a backend's connection counts, filling Maglev tables and
/// clearing a service's counters.
///
/// [`LbMaps`] does them on the kernel's maps; the unit tests use an
/// in-memory stand-in. Both report a full map as [`MapAccessError::Full`],
/// and a delete of an absent key is not an error.
pub trait LbMapOps {
    /// Every frontend.
    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, MapAccessError>;
    /// Writes a frontend.
    fn put_service(&mut self, key: &ServiceKey, value: &ServiceValue)
    -> Result<(), MapAccessError>;
    /// Deletes a frontend.
    fn delete_service(&mut self, key: &ServiceKey) -> Result<(), MapAccessError>;

    /// Every backend slot (both banks).
    fn slots(&self) -> Result<Vec<(SlotKey, SlotValue)>, MapAccessError>;
    /// Writes a slot.
    fn put_slot(&mut self, key: &SlotKey, value: &SlotValue) -> Result<(), MapAccessError>;
    /// Deletes a slot.
    fn delete_slot(&mut self, key: &SlotKey) -> Result<(), MapAccessError>;

    /// Every service membership.
    fn members(&self) -> Result<Vec<(MemberKey, MemberValue)>, MapAccessError>;
    /// Writes a membership.
    fn put_member(&mut self, key: &MemberKey, value: &MemberValue) -> Result<(), MapAccessError>;
    /// Deletes a membership.
    fn delete_member(&mut self, key: &MemberKey) -> Result<(), MapAccessError>;

    /// Every backend by id.
    fn backends(&self) -> Result<Vec<(u32, Backend)>, MapAccessError>;
    /// Writes backend `id`.
    fn put_backend(&mut self, id: u32, value: &Backend) -> Result<(), MapAccessError>;
    /// Deletes backend `id`.
    fn delete_backend(&mut self, id: u32) -> Result<(), MapAccessError>;

    /// Zeroes the connection counts of backend `id`.
    fn reset_conns(&mut self, id: u32) -> Result<(), MapAccessError>;
    /// Writes entry `index` of the flat Maglev array.
    fn set_maglev(&mut self, index: u32, entry: MaglevEntry) -> Result<(), MapAccessError>;
    /// Deletes the counters of service `id`.
    fn clear_service_stats(&mut self, id: u32) -> Result<(), MapAccessError>;
}

impl LbMapOps for LbMaps {
    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, MapAccessError> {
        entries(&self.services, SERVICES_MAP_NAME)
    }

    fn put_service(
        &mut self,
        key: &ServiceKey,
        value: &ServiceValue,
    ) -> Result<(), MapAccessError> {
        put(&mut self.services, SERVICES_MAP_NAME, key, value)
    }

    fn delete_service(&mut self, key: &ServiceKey) -> Result<(), MapAccessError> {
        delete(&mut self.services, SERVICES_MAP_NAME, key)
    }

    fn slots(&self) -> Result<Vec<(SlotKey, SlotValue)>, MapAccessError> {
        entries(&self.slots, SLOTS_MAP_NAME)
    }

    fn put_slot(&mut self, key: &SlotKey, value: &SlotValue) -> Result<(), MapAccessError> {
        put(&mut self.slots, SLOTS_MAP_NAME, key, value)
    }

    fn delete_slot(&mut self, key: &SlotKey) -> Result<(), MapAccessError> {
        delete(&mut self.slots, SLOTS_MAP_NAME, key)
    }

    fn members(&self) -> Result<Vec<(MemberKey, MemberValue)>, MapAccessError> {
        entries(&self.members, MEMBERS_MAP_NAME)
    }

    fn put_member(&mut self, key: &MemberKey, value: &MemberValue) -> Result<(), MapAccessError> {
        put(&mut self.members, MEMBERS_MAP_NAME, key, value)
    }

    fn delete_member(&mut self, key: &MemberKey) -> Result<(), MapAccessError> {
        delete(&mut self.members, MEMBERS_MAP_NAME, key)
    }

    fn backends(&self) -> Result<Vec<(u32, Backend)>, MapAccessError> {
        entries(&self.backends, BACKENDS_MAP_NAME)
    }

    fn put_backend(&mut self, id: u32, value: &Backend) -> Result<(), MapAccessError> {
        put(&mut self.backends, BACKENDS_MAP_NAME, &id, value)
    }

    fn delete_backend(&mut self, id: u32) -> Result<(), MapAccessError> {
        delete(&mut self.backends, BACKENDS_MAP_NAME, &id)
    }

    fn reset_conns(&mut self, id: u32) -> Result<(), MapAccessError> {
        self.conns
            .set(id, BackendConns::default(), 0)
            .map_err(|error| MapAccessError::of(BACKEND_CONNS_MAP_NAME, "reset", error))
    }

    fn set_maglev(&mut self, index: u32, entry: MaglevEntry) -> Result<(), MapAccessError> {
        self.maglev
            .set(index, entry, 0)
            .map_err(|error| MapAccessError::of(MAGLEV_MAP_NAME, "update", error))
    }

    fn clear_service_stats(&mut self, id: u32) -> Result<(), MapAccessError> {
        delete_percpu(&mut self.stats, SERVICE_STATS_MAP_NAME, &id)
    }
}
