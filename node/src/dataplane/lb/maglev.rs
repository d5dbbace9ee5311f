//! Maglev lookup tables (Eisenbud et al., "Maglev: A Fast and Reliable
//! Software Network Load Balancer", NSDI 2016, section 3.4), computed here
//! and written to the flat table array the programs index with a flow hash.
//!
//! Each backend gets a permutation of the `M` positions from two hashes of
//! its identity (`offset`, `skip`); backends then take turns claiming their
//! next preferred free position until the table is full. Removing a backend
//! only moves the positions it held (plus a small fraction of others), so
//! flows to the other backends keep their backend.
//!
//! Weights follow the paper's suggestion: a backend takes a turn in a round
//! in proportion to its weight (it accumulates credit `weight` per round and
//! spends `max weight` per turn), so shares are proportional to weights.
//!
//! The identity hashed is the backend's address and port, never its local
//! id, and the order of turns is the sorted order of identities: every node
//! computes the same table for the same backends, so a flow keeps its
//! backend when the network moves it from one node to another.

use std::net::Ipv4Addr;

/// One backend as Maglev sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevBackend {
    /// Identity: address.
    pub addr: Ipv4Addr,
    /// Identity: port.
    pub port: u16,
    /// Relative share, at least 1.
    pub weight: u16,
    /// What the table stores for it (the backend id).
    pub id: u32,
}

/// Seeds of the two permutation hashes. Fixed and documented so tables are
/// identical across nodes and releases.
const SEED_OFFSET: u64 = 0x6261_746f_6e2d_6f66; // "baton-of"
const SEED_SKIP: u64 = 0x6261_746f_6e2d_736b; // "baton-sk"

/// FNV-1a (64 bit) of `bytes` started from `seed`, then a SplitMix64
/// finaliser so nearby identities spread over the whole range. Hand-written
/// because the result must never change: a hash from a crate or from `std`
/// may change between versions, which would move every flow.
fn hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in bytes {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn identity(backend: &MaglevBackend) -> [u8; 6] {
    let mut bytes = [0u8; 6];
    bytes[..4].copy_from_slice(&backend.addr.octets());
    bytes[4..].copy_from_slice(&backend.port.to_be_bytes());
    bytes
}

/// The lookup table of size `m` (a prime) for `backends`: entry `i` is the
/// id of the backend that flows hashing to `i` go to. Empty input gives an
/// all-zero table (no backend).
#[must_use]
pub fn table(backends: &[MaglevBackend], m: u32) -> Vec<u32> {
    let m = m as usize;
    let mut table = vec![0u32; m];
    let mut backends: Vec<MaglevBackend> = backends
        .iter()
        .copied()
        .filter(|backend| backend.weight > 0)
        .collect();
    if backends.is_empty() || m < 2 {
        return table;
    }
    backends.sort_by_key(identity);
    backends.dedup_by_key(|backend| identity(backend));

    let permutation: Vec<(usize, usize)> = backends
        .iter()
        .map(|backend| {
            let key = identity(backend);
            let offset = (hash(SEED_OFFSET, &key) % m as u64) as usize;
            let skip = (hash(SEED_SKIP, &key) % (m as u64 - 1) + 1) as usize;
            (offset, skip)
        })
        .collect();
    let max_weight = backends
        .iter()
        .map(|backend| u32::from(backend.weight))
        .max()
        .unwrap_or(1);
    let mut next = vec![0usize; backends.len()];
    let mut credit = vec![0u32; backends.len()];
    let mut filled = vec![false; m];
    let mut remaining = m;
    while remaining > 0 {
        for (i, backend) in backends.iter().enumerate() {
            credit[i] += u32::from(backend.weight);
            if credit[i] < max_weight {
                continue;
            }
            credit[i] -= max_weight;
            let (offset, skip) = permutation[i];
            // The permutation visits every position once in `m` steps (m is
            // prime and 0 < skip < m), and fewer than `m` are filled, so a
            // free one is found.
            let position = loop {
                let candidate = (offset + next[i] * skip) % m;
                next[i] += 1;
                if !filled[candidate] {
                    break candidate;
                }
            };
            filled[position] = true;
            table[position] = backend.id;
            remaining -= 1;
            if remaining == 0 {
                break;
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const M: u32 = 1021;

    fn backend(i: u8, weight: u16) -> MaglevBackend {
        MaglevBackend {
            addr: Ipv4Addr::new(10, 0, 0, i),
            port: 8080,
            weight,
            id: u32::from(i),
        }
    }

    fn shares(table: &[u32]) -> HashMap<u32, usize> {
        let mut shares = HashMap::new();
        for id in table {
            *shares.entry(*id).or_default() += 1;
        }
        shares
    }

    #[test]
    fn every_position_is_filled_and_shares_are_even() {
        let backends: Vec<_> = (1..=5).map(|i| backend(i, 1)).collect();
        let table = table(&backends, M);
        assert!(table.iter().all(|id| *id != 0));
        for (id, share) in shares(&table) {
            // M / N = 204.2; Maglev keeps shares within a few entries.
            assert!((200..=209).contains(&share), "backend {id}: {share}");
        }
    }

    #[test]
    fn removing_a_backend_moves_little_else() {
        let before: Vec<_> = (1..=10).map(|i| backend(i, 1)).collect();
        let after: Vec<_> = before.iter().copied().filter(|b| b.id != 4).collect();
        let old = table(&before, M);
        let new = table(&after, M);
        let moved = old
            .iter()
            .zip(&new)
            .filter(|(old, new)| **old != 4 && old != new)
            .count();
        // Positions of the removed backend must move; of the others, the
        // paper's measurements show only a few percent.
        assert!(
            moved * 100 / (M as usize) < 5,
            "{moved} of {M} positions of remaining backends moved"
        );
        assert!(new.iter().all(|id| *id != 4));
    }

    #[test]
    fn the_table_depends_on_identities_not_on_input_order() {
        let mut backends: Vec<_> = (1..=6).map(|i| backend(i, 1)).collect();
        let first = table(&backends, M);
        backends.reverse();
        assert_eq!(first, table(&backends, M));
    }

    #[test]
    fn weights_set_proportional_shares() {
        let backends = [backend(1, 1), backend(2, 3)];
        let shares = shares(&table(&backends, M));
        let light = shares[&1] as f64;
        let heavy = shares[&2] as f64;
        assert!((heavy / light - 3.0).abs() < 0.1, "{light} vs {heavy}");
    }

    #[test]
    fn no_backend_gives_an_empty_table() {
        assert!(table(&[], M).iter().all(|id| *id == 0));
        assert!(table(&[backend(1, 0)], M).iter().all(|id| *id == 0));
    }
}
