//! The node-wide settings baton-node writes into the one-entry config map.

use aya_ebpf::{macros::map, maps::Array};
use baton_abi::config::{CONFIG_MAX_ENTRIES, Config};

#[map(name = "baton_config")]
static CONFIG: Array<Config> = Array::with_max_entries(CONFIG_MAX_ENTRIES, 0);

/// The current settings. An array entry always exists; until baton-node
/// writes it, it is all zero: no SNAT address, no pod routing.
#[inline(always)]
pub fn get() -> Config {
    match CONFIG.get_ptr(0) {
        // SAFETY: a successful array lookup points at a live, aligned
        // `Config`; it is copied out at once.
        Some(config) => unsafe { *config },
        None => Config {
            snat_addr: [0; 4],
            hairpin_addr: [0; 4],
            snat_port_min: 0,
            snat_port_max: 0,
            flags: 0,
            cluster_cidr_addr: [0; 4],
            cluster_cidr_mask: [0; 4],
        },
    }
}
