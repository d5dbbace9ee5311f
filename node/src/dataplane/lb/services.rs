//! Programming services into the maps: [`LoadBalancer`], the typed API the
//! proxy calls with desired state.
//!
//! # Updates
//!
//! [`LoadBalancer::upsert_service`] compares the desired layout with what it
//! wrote last and writes nothing when they match. Otherwise it writes the
//! new backend list into the service's other bank of slots (and new Maglev
//! tables), then rewrites each frontend entry to point at it, and only then
//! deletes the old bank, memberships that ended and backends no longer used
//! by any service (the protocol is described in `baton_abi::lb`). Capacity
//! is checked before the first write, so a map-full error leaves the
//! datapath exactly as it was; should the kernel still refuse a write, what
//! was written for the new state is removed again.
//!
//! # Restart
//!
//! [`LoadBalancer::restore`] rebuilds the state from pinned maps: services
//! (by id, without names — names live only in the proxy), their bank, views,
//! memberships, backends with reference counts, Maglev tables and ids in
//! use. Entries a crash left half-done (the unused bank, memberships of
//! unknown services, unreferenced backends) are removed. The proxy's first
//! upserts then find their services by frontend, adopt the ids, and write
//! nothing where nothing changed — so established connections, affinity
//! and connection counts survive a restart of baton-node.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    net::Ipv4Addr,
};

use baton_abi::lb::{
    Algorithm, BACKENDS_MAP_NAME, MAGLEV_MAP_NAME, MEMBERS_MAP_NAME, MaglevEntry, MemberKey,
    MemberValue, SERVICE_F_AFFINITY, SERVICE_F_LOCAL_ONLY, SERVICE_F_TERMINATING_FALLBACK,
    SERVICE_F_TWO_SCOPES, SERVICE_STATS_MAP_NAME, SERVICES_MAP_NAME, SLOTS_MAP_NAME, ServiceKey,
    ServiceValue, SlotKey, SlotValue,
};
use tracing::{debug, info, warn};

use super::{
    backends::{BackendKey, BackendTable},
    ids::IdAllocator,
    maglev::{self, MaglevBackend},
    map_ops::LbMapOps,
    spec::{BackendSpec, FrontendEntry, Protocol, ServiceSpec, View},
};
use crate::dataplane::{
    capacity::Capacities,
    maps::{LbMaps, MapAccessError},
};

/// Programming a service failed.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// The spec is not something the dataplane can program.
    #[error("service {service}: invalid spec: {reason}")]
    InvalidSpec { service: String, reason: String },
    /// A frontend is already programmed for another service.
    #[error("service {service}: frontend {frontend} belongs to service {owner}")]
    FrontendConflict {
        service: String,
        frontend: String,
        owner: String,
    },
    /// A map (or the ids it is indexed by) has no room for the service.
    /// Nothing of the new state was left in the maps.
    #[error("service {service}: map {map} is full ({capacity} entries)")]
    MapFull {
        service: String,
        map: &'static str,
        capacity: u32,
    },
    /// A map operation failed.
    #[error("service {service}: {source}")]
    Map {
        service: String,
        #[source]
        source: MapAccessError,
    },
    /// No service has this name.
    #[error("service {service} is not programmed")]
    NotFound { service: String },
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new service was written.
    Created,
    /// The service's maps were switched to a new state.
    Updated,
    /// The maps already held this state; nothing was written.
    Unchanged,
}

/// Outcome of a full [`LoadBalancer::reconcile`].
#[derive(Debug, Default)]
pub struct ReconcileReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    /// Services that could not be programmed; the others were.
    pub errors: Vec<LbError>,
}

/// One view as written: its slots in one bank.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InstalledView {
    offset: u16,
    /// Backend ids in slot order (a backend appears `weight` times).
    slots: Vec<u32>,
    fallback: bool,
    local: bool,
    maglev_table: Option<u32>,
}

/// A service as written to the maps.
#[derive(Debug, Clone)]
struct Installed {
    /// `None` for a service restored from pinned maps and not yet claimed
    /// by an upsert.
    name: Option<String>,
    bank: u8,
    frontends: BTreeMap<ServiceKey, ServiceValue>,
    views: Vec<InstalledView>,
    /// Backend id → weight.
    members: BTreeMap<u32, u32>,
}

impl Installed {
    fn label(&self, id: u32) -> String {
        self.name.clone().unwrap_or_else(|| format!("#{id}"))
    }

    fn view_at(&self, offset: u16) -> Option<&InstalledView> {
        self.views.iter().find(|view| view.offset == offset)
    }
}

/// What a frontend entry means, independent of bank, offsets and table
/// indices: two states with equal shapes behave the same.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    kind: u8,
    flags: u16,
    algorithm: u8,
    affinity_timeout_s: u32,
    slots: Vec<u32>,
}

/// A view planned from a spec.
#[derive(Debug, Clone)]
struct PlannedView {
    view: View,
    backends: Vec<BackendSpec>,
    fallback: bool,
}

impl PlannedView {
    fn slots(&self, ids: &HashMap<BackendKey, u32>, protocol: Protocol) -> Vec<u32> {
        let mut slots = Vec::new();
        for backend in &self.backends {
            let id = ids
                .get(&BackendKey::of(backend, protocol))
                .copied()
                .unwrap_or(0);
            slots.extend(std::iter::repeat_n(id, usize::from(backend.weight)));
        }
        slots
    }

    fn flags(&self) -> u16 {
        let mut flags = 0;
        if self.view == View::Local {
            flags |= SERVICE_F_LOCAL_ONLY;
        }
        if self.fallback {
            flags |= SERVICE_F_TERMINATING_FALLBACK;
        }
        flags
    }
}

/// Services, backends and Maglev tables in the maps, and the mirror of
/// what was written. The maps are the kernel's ([`LbMaps`]) or, in unit
/// tests, an in-memory stand-in.
#[derive(Debug)]
pub struct LoadBalancer<M = LbMaps> {
    maps: M,
    capacities: Capacities,
    services: HashMap<u32, Installed>,
    names: HashMap<String, u32>,
    owners: HashMap<ServiceKey, u32>,
    service_ids: IdAllocator,
    backends: BackendTable,
    maglev_tables: IdAllocator,
    slot_entries: usize,
    member_entries: usize,
}

impl<M: LbMapOps> LoadBalancer<M> {
    /// Takes over the maps and rebuilds the state they hold (empty maps
    /// give an empty state).
    pub fn restore(mut maps: M, capacities: Capacities) -> Result<Self, MapAccessError> {
        let frontends = maps.services()?;
        let slots = maps.slots()?;
        let members = maps.members()?;
        let backends = maps.backends()?;

        let mut services: HashMap<u32, Installed> = HashMap::new();
        for (key, value) in &frontends {
            let service = services.entry(value.service_id).or_insert(Installed {
                name: None,
                bank: value.bank,
                frontends: BTreeMap::new(),
                views: Vec::new(),
                members: BTreeMap::new(),
            });
            if value.bank != service.bank {
                // A crash between switching some frontends and the others:
                // both banks are complete, but the service can only keep
                // one. The other frontends are dropped until the proxy's
                // reconcile writes them again.
                warn!(
                    service_id = value.service_id,
                    ?key,
                    "frontend on the other bank dropped"
                );
                maps.delete_service(key)?;
                continue;
            }
            service.frontends.insert(*key, *value);
        }

        let mut slot_map: HashMap<(u32, u8), BTreeMap<u16, u32>> = HashMap::new();
        for (key, value) in &slots {
            slot_map
                .entry((key.service_id, key.bank))
                .or_default()
                .insert(key.slot, value.backend_id);
        }
        let mut maglev_in_use = Vec::new();
        for (id, service) in &mut services {
            let bank_slots = slot_map.get(&(*id, service.bank));
            let mut views: BTreeMap<u16, InstalledView> = BTreeMap::new();
            for value in service.frontends.values() {
                let slots = (1..=value.count)
                    .map(|slot| {
                        bank_slots
                            .and_then(|slots| slots.get(&(value.slot_offset + slot)))
                            .copied()
                            .unwrap_or(0)
                    })
                    .collect();
                let maglev_table =
                    (value.algorithm == Algorithm::Maglev as u8).then_some(value.maglev_table);
                maglev_in_use.extend(maglev_table);
                views.entry(value.slot_offset).or_insert(InstalledView {
                    offset: value.slot_offset,
                    slots,
                    fallback: value.flags & SERVICE_F_TERMINATING_FALLBACK != 0,
                    local: value.flags & SERVICE_F_LOCAL_ONLY != 0,
                    maglev_table,
                });
            }
            service.views = views.into_values().collect();
        }

        // Slots that no view of a live service covers are leftovers.
        let mut slot_entries = 0;
        for (key, _) in &slots {
            let live = services.get(&key.service_id).is_some_and(|service| {
                service.bank == key.bank
                    && service.views.iter().any(|view| {
                        key.slot > view.offset
                            && usize::from(key.slot - view.offset) <= view.slots.len()
                    })
            });
            if live {
                slot_entries += 1;
            } else {
                maps.delete_slot(key)?;
            }
        }
        let mut member_entries = 0;
        let mut refs: HashMap<u32, u32> = HashMap::new();
        for (key, value) in &members {
            match services.get_mut(&key.service_id) {
                Some(service) => {
                    service.members.insert(key.backend_id, value.weight);
                    *refs.entry(key.backend_id).or_default() += 1;
                    member_entries += 1;
                }
                None => maps.delete_member(key)?,
            }
        }
        let mut kept_backends = Vec::new();
        for (id, value) in &backends {
            if refs.contains_key(id) {
                kept_backends.push((*id, *value));
            } else {
                maps.delete_backend(*id)?;
            }
        }

        let mut owners = HashMap::new();
        for (id, service) in &services {
            for key in service.frontends.keys() {
                owners.insert(*key, *id);
            }
        }
        let restored = services.len();
        let balancer = Self {
            service_ids: IdAllocator::restored(1, capacities.service_ids, services.keys().copied()),
            backends: BackendTable::restored(capacities.backends, &kept_backends, &refs),
            maglev_tables: IdAllocator::restored(0, capacities.maglev_tables, maglev_in_use),
            maps,
            capacities,
            services,
            names: HashMap::new(),
            owners,
            slot_entries,
            member_entries,
        };
        if restored > 0 {
            info!(
                services = restored,
                backends = balancer.backends.len(),
                "load-balancer state restored from pinned maps"
            );
        }
        Ok(balancer)
    }

    /// Programs `spec` (creating or updating the service named
    /// `spec.name`), writing only what differs from what is in the maps.
    pub fn upsert_service(&mut self, spec: &ServiceSpec) -> Result<Applied, LbError> {
        let name = spec.name.clone();
        spec.validate().map_err(|reason| LbError::InvalidSpec {
            service: name.clone(),
            reason,
        })?;
        let entries = spec.frontend_entries();
        let existing = self.claim(&name, &entries)?;

        // Views in use, with their backends, and the members (union).
        let mut wanted_views: Vec<View> = entries.iter().map(|entry| entry.view).collect();
        wanted_views.sort();
        wanted_views.dedup();
        let planned: Vec<PlannedView> = wanted_views
            .iter()
            .map(|view| {
                let (backends, fallback) = spec.view_backends(*view);
                PlannedView {
                    view: *view,
                    backends,
                    fallback,
                }
            })
            .collect();
        let mut member_specs: BTreeMap<BackendKey, BackendSpec> = BTreeMap::new();
        for view in &planned {
            for backend in &view.backends {
                member_specs.insert(BackendKey::of(backend, spec.protocol), *backend);
            }
        }

        // Nothing to write if the maps already hold this state.
        if let Some(id) = existing
            && self.unchanged(id, spec, &entries, &planned, &member_specs)
        {
            self.refresh_backend_values(&name, spec.protocol, &member_specs)?;
            return Ok(Applied::Unchanged);
        }

        self.check_capacity(
            &name,
            spec.algorithm,
            existing,
            &entries,
            &planned,
            &member_specs,
        )?;
        let result = self.switch(spec, existing, &entries, &planned, &member_specs);
        match &result {
            Ok(applied) => debug!(service = %name, ?applied, "service programmed"),
            Err(error) => warn!(service = %name, %error, "service not programmed"),
        }
        result
    }

    /// Removes the service `name` from the maps: frontends first, so no new
    /// connection can pick it, then its slots, memberships, Maglev tables
    /// and backends no other service uses.
    pub fn delete_service(&mut self, name: &str) -> Result<(), LbError> {
        let id = *self.names.get(name).ok_or_else(|| LbError::NotFound {
            service: name.to_owned(),
        })?;
        self.remove(id).map_err(|source| LbError::Map {
            service: name.to_owned(),
            source,
        })
    }

    /// Makes the maps hold exactly `specs`: upserts each and deletes every
    /// other service (also those restored from pins and not claimed). Errors
    /// of single services are collected; the others are still programmed.
    pub fn reconcile<'a>(
        &mut self,
        specs: impl IntoIterator<Item = &'a ServiceSpec>,
    ) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        let mut keep = BTreeSet::new();
        for spec in specs {
            keep.insert(spec.name.clone());
            match self.upsert_service(spec) {
                Ok(Applied::Created) => report.created += 1,
                Ok(Applied::Updated) => report.updated += 1,
                Ok(Applied::Unchanged) => report.unchanged += 1,
                Err(error) => report.errors.push(error),
            }
        }
        let stale: Vec<u32> = self
            .services
            .iter()
            .filter(|(_, service)| {
                service
                    .name
                    .as_ref()
                    .is_none_or(|name| !keep.contains(name))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            let label = self.services[&id].label(id);
            match self.remove(id) {
                Ok(()) => report.deleted += 1,
                Err(source) => report.errors.push(LbError::Map {
                    service: label,
                    source,
                }),
            }
        }
        report
    }

    /// The id of the service `name`.
    #[must_use]
    pub fn service_id(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    /// The id of backend `addr:port/protocol`, if some service uses it.
    #[must_use]
    pub fn backend_id(&self, addr: Ipv4Addr, port: u16, protocol: Protocol) -> Option<u32> {
        self.backends.id(&BackendKey {
            addr,
            port,
            protocol,
        })
    }

    /// Number of programmed services (restored unclaimed ones included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether no service is programmed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Name of the service with id `id`, if it was named by an upsert.
    #[must_use]
    pub fn service_name(&self, id: u32) -> Option<&str> {
        self.services.get(&id)?.name.as_deref()
    }

    /// The maps, for dumps.
    pub(crate) fn maps(&self) -> &M {
        &self.maps
    }

    /// The maps, for the conntrack GC's connection uncounting.
    pub(crate) fn maps_mut(&mut self) -> &mut M {
        &mut self.maps
    }

    /// Finds the id of the service `name`, or of a restored unnamed service
    /// that owns one of its frontends (adopting it). Fails if a frontend
    /// belongs to another named service.
    fn claim(&mut self, name: &str, entries: &[FrontendEntry]) -> Result<Option<u32>, LbError> {
        let mut existing = self.names.get(name).copied();
        for entry in entries {
            let Some(owner) = self.owners.get(&entry.key).copied() else {
                continue;
            };
            if Some(owner) == existing {
                continue;
            }
            let service = &self.services[&owner];
            match (&service.name, existing) {
                (None, None) => {
                    existing = Some(owner);
                }
                _ => {
                    return Err(LbError::FrontendConflict {
                        service: name.to_owned(),
                        frontend: describe_key(&entry.key),
                        owner: service.label(owner),
                    });
                }
            }
        }
        if let Some(id) = existing
            && self.services[&id].name.is_none()
        {
            debug!(service = name, id, "restored service claimed");
            if let Some(service) = self.services.get_mut(&id) {
                service.name = Some(name.to_owned());
            }
            self.names.insert(name.to_owned(), id);
        }
        Ok(existing)
    }

    fn unchanged(
        &self,
        id: u32,
        spec: &ServiceSpec,
        entries: &[FrontendEntry],
        planned: &[PlannedView],
        members: &BTreeMap<BackendKey, BackendSpec>,
    ) -> bool {
        let service = &self.services[&id];
        let mut ids = HashMap::new();
        for key in members.keys() {
            match self.backends.id(key) {
                Some(id) => {
                    ids.insert(*key, id);
                }
                None => return false,
            }
        }
        let wanted_members: BTreeMap<u32, u32> = members
            .iter()
            .map(|(key, backend)| (ids[key], u32::from(backend.weight)))
            .collect();
        if wanted_members != service.members || entries.len() != service.frontends.len() {
            return false;
        }
        entries.iter().all(|entry| {
            let Some(value) = service.frontends.get(&entry.key) else {
                return false;
            };
            let Some(view) = planned.iter().find(|view| view.view == entry.view) else {
                return false;
            };
            let installed_slots = service
                .view_at(value.slot_offset)
                .map(|view| view.slots.clone())
                .unwrap_or_default();
            let installed = Shape {
                kind: value.kind,
                flags: value.flags,
                algorithm: value.algorithm,
                affinity_timeout_s: value.affinity_timeout_s,
                slots: installed_slots,
            };
            let wanted = Shape {
                kind: entry.kind as u8,
                flags: frontend_flags(spec, entry, view),
                algorithm: spec.algorithm as u8,
                affinity_timeout_s: affinity_seconds(spec),
                slots: view.slots(&ids, spec.protocol),
            };
            installed == wanted && (value.count as usize) == wanted.slots.len()
        })
    }

    /// Backend entries whose state or locality changed are rewritten even
    /// when the service's slots stay the same.
    fn refresh_backend_values(
        &mut self,
        name: &str,
        protocol: Protocol,
        members: &BTreeMap<BackendKey, BackendSpec>,
    ) -> Result<(), LbError> {
        for backend in members.values() {
            let key = BackendKey::of(backend, protocol);
            let Some(id) = self.backends.id(&key) else {
                continue;
            };
            if self.backends.value(id) != Some(super::backends::value_of(backend, protocol)) {
                // acquire rewrites the value; release gives the extra
                // reference back.
                self.backends
                    .acquire(&mut self.maps, backend, protocol)
                    .and_then(|id| self.backends.release(&mut self.maps, id))
                    .map_err(|source| LbError::Map {
                        service: name.to_owned(),
                        source,
                    })?;
            }
        }
        Ok(())
    }

    fn check_capacity(
        &self,
        name: &str,
        algorithm: Algorithm,
        existing: Option<u32>,
        entries: &[FrontendEntry],
        planned: &[PlannedView],
        members: &BTreeMap<BackendKey, BackendSpec>,
    ) -> Result<(), LbError> {
        let full = |map: &'static str, capacity: u32| LbError::MapFull {
            service: name.to_owned(),
            map,
            capacity,
        };
        if existing.is_none() && self.service_ids.available() == 0 {
            return Err(full(SERVICE_STATS_MAP_NAME, self.capacities.service_ids));
        }
        let new_frontends = entries
            .iter()
            .filter(|entry| !self.owners.contains_key(&entry.key))
            .count();
        if self.owners.len() + new_frontends > self.capacities.frontends as usize {
            return Err(full(SERVICES_MAP_NAME, self.capacities.frontends));
        }
        // The new bank is written while the old one is still there.
        let new_slots: usize = planned
            .iter()
            .map(|view| {
                view.backends
                    .iter()
                    .map(|backend| usize::from(backend.weight))
                    .sum::<usize>()
            })
            .sum();
        if self.slot_entries + new_slots > self.capacities.slots as usize {
            return Err(full(SLOTS_MAP_NAME, self.capacities.slots));
        }
        let current_members = existing.map(|id| &self.services[&id].members);
        let new_members = members
            .keys()
            .filter(|key| {
                let id = self.backends.id(key);
                !matches!((id, current_members), (Some(id), Some(current)) if current.contains_key(&id))
            })
            .count();
        if self.member_entries + new_members > self.capacities.slots as usize {
            return Err(full(MEMBERS_MAP_NAME, self.capacities.slots));
        }
        let new_backends = members
            .keys()
            .filter(|key| self.backends.id(key).is_none())
            .count();
        if new_backends > self.backends.available() {
            return Err(full(BACKENDS_MAP_NAME, self.capacities.backends));
        }
        // The new tables are filled while the old ones still serve.
        if algorithm == Algorithm::Maglev && planned.len() > self.maglev_tables.available() {
            return Err(full(MAGLEV_MAP_NAME, self.capacities.maglev_tables));
        }
        Ok(())
    }

    /// Writes the new state next to the old one, switches the frontends,
    /// then removes the old state.
    fn switch(
        &mut self,
        spec: &ServiceSpec,
        existing: Option<u32>,
        entries: &[FrontendEntry],
        planned: &[PlannedView],
        members: &BTreeMap<BackendKey, BackendSpec>,
    ) -> Result<Applied, LbError> {
        let name = spec.name.clone();
        let capacities = self.capacities;
        let map_error = |source: MapAccessError| match source {
            MapAccessError::Full { name: map } => LbError::MapFull {
                service: spec.name.clone(),
                map,
                capacity: capacity_of(&capacities, map),
            },
            source => LbError::Map {
                service: spec.name.clone(),
                source,
            },
        };

        let id = match existing {
            Some(id) => id,
            None => {
                let id = self.service_ids.allocate().ok_or(LbError::MapFull {
                    service: name.clone(),
                    map: SERVICE_STATS_MAP_NAME,
                    capacity: self.capacities.service_ids,
                })?;
                // A recycled id starts with fresh counters.
                let _ = self.maps.clear_service_stats(id);
                id
            }
        };
        let bank = existing.map_or(0, |id| 1 - self.services[&id].bank);
        let mut staged = Staged::new(id, bank);

        let result = self.stage(spec, planned, members, &mut staged);
        if let Err(error) = result {
            self.unstage(&staged);
            if existing.is_none() {
                self.service_ids.release(id);
            }
            return Err(map_error(error));
        }

        // Switch every frontend to the new bank.
        let old = existing.and_then(|id| self.services.get(&id).cloned());
        let mut written: Vec<ServiceKey> = Vec::new();
        let mut new_frontends = BTreeMap::new();
        for entry in entries {
            let view = staged
                .views
                .iter()
                .zip(planned)
                .find(|(_, plan)| plan.view == entry.view)
                .map(|(view, plan)| (view.clone(), plan));
            let Some((view, plan)) = view else { continue };
            let value = ServiceValue {
                service_id: id,
                count: view.slots.len() as u16,
                flags: frontend_flags(spec, entry, plan),
                algorithm: spec.algorithm as u8,
                kind: entry.kind as u8,
                bank,
                _pad0: 0,
                affinity_timeout_s: affinity_seconds(spec),
                maglev_table: view.maglev_table.unwrap_or(0),
                slot_offset: view.offset,
                _pad1: 0,
            };
            if let Err(error) = self.maps.put_service(&entry.key, &value) {
                // Put back what was switched, then drop the new state.
                for key in &written {
                    match old.as_ref().and_then(|old| old.frontends.get(key)) {
                        Some(previous) => {
                            let _ = self.maps.put_service(key, previous);
                        }
                        None => {
                            let _ = self.maps.delete_service(key);
                        }
                    }
                }
                self.unstage(&staged);
                if existing.is_none() {
                    self.service_ids.release(id);
                }
                return Err(map_error(error));
            }
            written.push(entry.key);
            new_frontends.insert(entry.key, value);
        }

        // The new state is live: remove what only the old one used.
        let applied = if let Some(old) = old {
            for key in old.frontends.keys() {
                if !new_frontends.contains_key(key) {
                    self.maps.delete_service(key).map_err(map_error)?;
                    self.owners.remove(key);
                }
            }
            self.drop_bank(id, &old).map_err(map_error)?;
            for backend_id in old.members.keys() {
                if !staged.members.contains_key(backend_id) {
                    self.maps
                        .delete_member(&MemberKey {
                            service_id: id,
                            backend_id: *backend_id,
                        })
                        .map_err(map_error)?;
                    self.member_entries -= 1;
                }
            }
            // The old state's references on backends end here (the new
            // state took its own in `stage`).
            for backend_id in old.members.keys() {
                self.backends
                    .release(&mut self.maps, *backend_id)
                    .map_err(map_error)?;
            }
            Applied::Updated
        } else {
            Applied::Created
        };

        for key in new_frontends.keys() {
            self.owners.insert(*key, id);
        }
        self.names.insert(name.clone(), id);
        self.services.insert(
            id,
            Installed {
                name: Some(name),
                bank,
                frontends: new_frontends,
                views: staged.views,
                members: staged.members,
            },
        );
        Ok(applied)
    }

    /// Writes the new bank: backend entries, slots, memberships, Maglev
    /// tables. Everything written is recorded in `staged` so it can be
    /// taken back.
    fn stage(
        &mut self,
        spec: &ServiceSpec,
        planned: &[PlannedView],
        members: &BTreeMap<BackendKey, BackendSpec>,
        staged: &mut Staged,
    ) -> Result<(), MapAccessError> {
        let mut ids = HashMap::new();
        for (key, backend) in members {
            let id = self
                .backends
                .acquire(&mut self.maps, backend, spec.protocol)?;
            staged.acquired.push(id);
            ids.insert(*key, id);
        }

        let mut offset: u16 = 0;
        for plan in planned {
            let slots = plan.slots(&ids, spec.protocol);
            for (index, backend_id) in slots.iter().enumerate() {
                let key = SlotKey {
                    service_id: staged.id,
                    slot: offset + index as u16 + 1,
                    bank: staged.bank,
                    _pad: 0,
                };
                self.maps.put_slot(
                    &key,
                    &SlotValue {
                        backend_id: *backend_id,
                    },
                )?;
                staged.slots.push(key);
                self.slot_entries += 1;
            }
            let maglev_table = if spec.algorithm == Algorithm::Maglev {
                let table = self.maglev_tables.allocate().ok_or(MapAccessError::Full {
                    name: MAGLEV_MAP_NAME,
                })?;
                staged.tables.push(table);
                let backends: Vec<MaglevBackend> = plan
                    .backends
                    .iter()
                    .map(|backend| MaglevBackend {
                        addr: backend.addr,
                        port: backend.port,
                        weight: backend.weight,
                        id: ids[&BackendKey::of(backend, spec.protocol)],
                    })
                    .collect();
                self.write_maglev(table, &backends)?;
                Some(table)
            } else {
                None
            };
            staged.views.push(InstalledView {
                offset,
                slots: slots.clone(),
                fallback: plan.fallback,
                local: plan.view == View::Local,
                maglev_table,
            });
            offset += slots.len() as u16;
        }

        let previous = self
            .services
            .get(&staged.id)
            .map(|service| service.members.clone())
            .unwrap_or_default();
        for (key, backend) in members {
            let backend_id = ids[key];
            let weight = u32::from(backend.weight);
            staged.members.insert(backend_id, weight);
            if previous.get(&backend_id) == Some(&weight) {
                continue;
            }
            self.maps.put_member(
                &MemberKey {
                    service_id: staged.id,
                    backend_id,
                },
                &MemberValue { weight },
            )?;
            if !previous.contains_key(&backend_id) {
                staged.new_members.push(backend_id);
                self.member_entries += 1;
            }
        }
        Ok(())
    }

    fn write_maglev(
        &mut self,
        table: u32,
        backends: &[MaglevBackend],
    ) -> Result<(), MapAccessError> {
        let m = self.capacities.maglev_table_size;
        let entries = maglev::table(backends, m);
        let base = table * m;
        for (position, backend_id) in entries.into_iter().enumerate() {
            self.maps
                .set_maglev(base + position as u32, MaglevEntry { backend_id })?;
        }
        Ok(())
    }

    /// Takes back what `stage` wrote (best effort: the error that led here
    /// is the one reported).
    fn unstage(&mut self, staged: &Staged) {
        for key in &staged.slots {
            if self.maps.delete_slot(key).is_ok() {
                self.slot_entries -= 1;
            }
        }
        for backend_id in &staged.new_members {
            let key = MemberKey {
                service_id: staged.id,
                backend_id: *backend_id,
            };
            if self.maps.delete_member(&key).is_ok() {
                self.member_entries -= 1;
            }
        }
        for table in &staged.tables {
            self.maglev_tables.release(*table);
        }
        for id in &staged.acquired {
            let _ = self.backends.release(&mut self.maps, *id);
        }
    }

    /// Deletes the slots of `old`'s bank and frees its Maglev tables.
    fn drop_bank(&mut self, id: u32, old: &Installed) -> Result<(), MapAccessError> {
        for view in &old.views {
            for index in 0..view.slots.len() {
                let key = SlotKey {
                    service_id: id,
                    slot: view.offset + index as u16 + 1,
                    bank: old.bank,
                    _pad: 0,
                };
                self.maps.delete_slot(&key)?;
                self.slot_entries -= 1;
            }
            if let Some(table) = view.maglev_table {
                self.maglev_tables.release(table);
            }
        }
        Ok(())
    }

    fn remove(&mut self, id: u32) -> Result<(), MapAccessError> {
        let Some(service) = self.services.get(&id).cloned() else {
            return Ok(());
        };
        for key in service.frontends.keys() {
            self.maps.delete_service(key)?;
            self.owners.remove(key);
        }
        self.drop_bank(id, &service)?;
        for backend_id in service.members.keys() {
            self.maps.delete_member(&MemberKey {
                service_id: id,
                backend_id: *backend_id,
            })?;
            self.member_entries -= 1;
            self.backends.release(&mut self.maps, *backend_id)?;
        }
        let _ = self.maps.clear_service_stats(id);
        if let Some(name) = &service.name {
            self.names.remove(name);
        }
        self.services.remove(&id);
        self.service_ids.release(id);
        debug!(service = %service.label(id), "service deleted");
        Ok(())
    }

    /// Slots currently written (both banks while switching).
    #[must_use]
    pub fn slot_entries(&self) -> usize {
        self.slot_entries
    }

    /// Ids and labels of every programmed service, for dumps.
    pub(crate) fn labels(&self) -> HashMap<u32, String> {
        self.services
            .iter()
            .map(|(id, service)| (*id, service.label(*id)))
            .collect()
    }
}

/// What `stage` wrote for the new state.
#[derive(Debug)]
struct Staged {
    id: u32,
    bank: u8,
    slots: Vec<SlotKey>,
    new_members: Vec<u32>,
    members: BTreeMap<u32, u32>,
    tables: Vec<u32>,
    acquired: Vec<u32>,
    views: Vec<InstalledView>,
}

impl Staged {
    fn new(id: u32, bank: u8) -> Self {
        Self {
            id,
            bank,
            slots: Vec::new(),
            new_members: Vec::new(),
            members: BTreeMap::new(),
            tables: Vec::new(),
            acquired: Vec::new(),
            views: Vec::new(),
        }
    }
}

fn frontend_flags(spec: &ServiceSpec, entry: &FrontendEntry, view: &PlannedView) -> u16 {
    let mut flags = view.flags();
    if spec.session_affinity.is_some() {
        flags |= SERVICE_F_AFFINITY;
    }
    if entry.two_scopes {
        flags |= SERVICE_F_TWO_SCOPES;
    }
    flags
}

fn affinity_seconds(spec: &ServiceSpec) -> u32 {
    spec.session_affinity.map_or(0, |timeout| {
        timeout.as_secs().try_into().unwrap_or(u32::MAX)
    })
}

/// Configured capacity of map `name` (0 if it is not configurable).
fn capacity_of(capacities: &Capacities, name: &str) -> u32 {
    if name == MAGLEV_MAP_NAME {
        return capacities.maglev_tables;
    }
    capacities
        .map_sizes()
        .into_iter()
        .find(|(map, _)| *map == name)
        .map_or(0, |(_, size)| size)
}

/// `ClusterIP 10.96.0.10:80/TCP`-style text for a services-map key.
#[must_use]
pub fn describe_key(key: &ServiceKey) -> String {
    let protocol = Protocol::from_number(key.proto).map_or_else(
        || format!("proto {}", key.proto),
        |protocol| protocol.to_string(),
    );
    let scope = if key.scope == baton_abi::lb::SCOPE_INTERNAL {
        " (internal)"
    } else {
        ""
    };
    let addr = Ipv4Addr::from(key.addr);
    if addr.is_unspecified() {
        format!("*:{}/{protocol}{scope}", key.port)
    } else {
        format!("{addr}:{}/{protocol}{scope}", key.port)
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        })
    }
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
