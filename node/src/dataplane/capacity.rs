//! Map capacities chosen at load time.
//!
//! Every map has a default size in the ABI crate (documented there with its
//! memory cost and what happens when it is full); a node can change the
//! sizes that depend on the cluster's scale. The values are applied with
//! aya's `EbpfLoader::map_max_entries` and are also what the pin checks
//! compare an existing pin against, so a node restarted with other
//! capacities refuses its old pins instead of reusing maps of another size.

use baton_abi::{config, conntrack, lb, route, sock};

/// Sizes of the resizable maps. `Default` is the ABI's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Capacities {
    /// Frontends (services map entries).
    pub frontends: u32,
    /// Backend slots (both banks) and service memberships.
    pub slots: u32,
    /// Distinct backends; also the size of the connection-count array.
    pub backends: u32,
    /// Service ids (round-robin array, per-service counters).
    pub service_ids: u32,
    /// Maglev tables.
    pub maglev_tables: u32,
    /// Entries per Maglev table (`M`, a prime).
    pub maglev_table_size: u32,
    /// Session-affinity entries (LRU).
    pub affinity: u32,
    /// Conntrack entries, two per flow (LRU).
    pub conntrack: u32,
    /// Socket reverse-translation entries (LRU).
    pub revsk: u32,
    /// Pod endpoints on this node.
    pub endpoints: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Self {
            frontends: lb::SERVICES_MAX_ENTRIES,
            slots: lb::SLOTS_MAX_ENTRIES,
            backends: lb::BACKENDS_MAX_ENTRIES,
            service_ids: lb::RR_MAX_ENTRIES,
            maglev_tables: lb::MAGLEV_TABLES,
            maglev_table_size: lb::MAGLEV_TABLE_SIZE,
            affinity: lb::AFFINITY_MAX_ENTRIES,
            conntrack: conntrack::CT_MAX_ENTRIES,
            revsk: sock::REVSK_MAX_ENTRIES,
            endpoints: route::ENDPOINTS_MAX_ENTRIES,
        }
    }
}

/// A capacity that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    /// A map cannot have zero entries.
    #[error("capacity of {what} must be at least 1")]
    Zero { what: &'static str },
    /// Maglev needs a prime table size, or some entries are never filled.
    #[error("Maglev table size {size} is not a prime")]
    NotPrime { size: u32 },
    /// Maglev table positions are computed in 32 bits and slots are `u16`.
    #[error("Maglev table size {size} is outside 3..=65521")]
    MaglevSize { size: u32 },
    /// The Maglev array would exceed 2^32 entries.
    #[error("{tables} Maglev tables of {size} entries do not fit one BPF array")]
    MaglevTooLarge { tables: u32, size: u32 },
}

impl Capacities {
    /// Checks the values can be loaded.
    pub fn validate(&self) -> Result<(), CapacityError> {
        for (what, value) in [
            ("frontends", self.frontends),
            ("slots", self.slots),
            ("backends", self.backends),
            ("service ids", self.service_ids),
            ("maglev tables", self.maglev_tables),
            ("affinity", self.affinity),
            ("conntrack", self.conntrack),
            ("revsk", self.revsk),
            ("endpoints", self.endpoints),
        ] {
            if value == 0 {
                return Err(CapacityError::Zero { what });
            }
        }
        let size = self.maglev_table_size;
        if !(3..=65_521).contains(&size) {
            return Err(CapacityError::MaglevSize { size });
        }
        if !is_prime(size) {
            return Err(CapacityError::NotPrime { size });
        }
        if self.maglev_entries().is_none() {
            return Err(CapacityError::MaglevTooLarge {
                tables: self.maglev_tables,
                size,
            });
        }
        Ok(())
    }

    /// Entries of the flat Maglev array.
    #[must_use]
    pub fn maglev_entries(&self) -> Option<u32> {
        self.maglev_tables.checked_mul(self.maglev_table_size)
    }

    /// `(map name, max_entries)` for every map whose size is configured
    /// here. Maps absent from the list keep the object's size.
    #[must_use]
    pub fn map_sizes(&self) -> Vec<(&'static str, u32)> {
        vec![
            (lb::SERVICES_MAP_NAME, self.frontends),
            (lb::SLOTS_MAP_NAME, self.slots),
            (lb::MEMBERS_MAP_NAME, self.slots),
            (lb::BACKENDS_MAP_NAME, self.backends),
            (lb::BACKEND_CONNS_MAP_NAME, self.backends),
            (lb::RR_MAP_NAME, self.service_ids),
            (lb::SERVICE_STATS_MAP_NAME, self.service_ids),
            (
                lb::MAGLEV_MAP_NAME,
                self.maglev_entries().unwrap_or(u32::MAX),
            ),
            (lb::AFFINITY_MAP_NAME, self.affinity),
            (conntrack::CT_MAP_NAME, self.conntrack),
            (sock::REVSK_MAP_NAME, self.revsk),
            (route::ENDPOINTS_MAP_NAME, self.endpoints),
            (config::CONFIG_MAP_NAME, config::CONFIG_MAX_ENTRIES),
        ]
    }
}

/// Trial division: table sizes are at most 65,521.
#[must_use]
pub fn is_prime(n: u32) -> bool {
    n >= 2
        && (2..n)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Capacities::default().validate().unwrap();
    }

    #[test]
    fn a_composite_maglev_size_is_refused() {
        let capacities = Capacities {
            maglev_table_size: 1024,
            ..Capacities::default()
        };
        assert_eq!(
            capacities.validate(),
            Err(CapacityError::NotPrime { size: 1024 })
        );
    }

    #[test]
    fn zero_sizes_are_refused() {
        let capacities = Capacities {
            conntrack: 0,
            ..Capacities::default()
        };
        assert!(matches!(
            capacities.validate(),
            Err(CapacityError::Zero { what: "conntrack" })
        ));
    }

    #[test]
    fn primes_are_found() {
        let primes: Vec<u32> = (0..30).filter(|n| is_prime(*n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65_521));
        assert!(is_prime(16_381));
    }
}
