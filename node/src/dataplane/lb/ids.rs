//! Allocation of small integer ids (service ids, backend ids, Maglev table
//! indices) that key or index BPF maps.
//!
//! Ids are handed out first from those never used, then from released ones
//! in the order they were released (first in, first out). An id is thus
//! reused as late as possible, which leaves programs that read an old map
//! value just before it changed (they hold it for one run, microseconds)
//! and entries that still name the id (affinity, conntrack, sockets) the
//! longest time to go away; such leftovers are also checked against the
//! backend's address before they are acted on.

use std::collections::{BTreeSet, HashSet, VecDeque};

/// Ids in `first..end`.
#[derive(Debug, Clone)]
pub struct IdAllocator {
    end: u32,
    /// The lowest id never handed out.
    fresh: u32,
    released: VecDeque<u32>,
    in_use: HashSet<u32>,
}

impl IdAllocator {
    /// Ids `first..end` (`end` exclusive).
    #[must_use]
    pub fn new(first: u32, end: u32) -> Self {
        Self {
            end,
            fresh: first,
            released: VecDeque::new(),
            in_use: HashSet::new(),
        }
    }

    /// Rebuilds the allocator from ids found in use (after a restart):
    /// those are taken, lower ones are free (oldest first), higher ones
    /// fresh.
    #[must_use]
    pub fn restored(first: u32, end: u32, in_use: impl IntoIterator<Item = u32>) -> Self {
        let in_use: BTreeSet<u32> = in_use
            .into_iter()
            .filter(|id| (first..end).contains(id))
            .collect();
        let fresh = in_use.last().map_or(first, |last| last + 1);
        let released = (first..fresh).filter(|id| !in_use.contains(id)).collect();
        Self {
            end,
            fresh,
            released,
            in_use: in_use.into_iter().collect(),
        }
    }

    /// A free id, or `None` when all are in use.
    pub fn allocate(&mut self) -> Option<u32> {
        let id = if self.fresh < self.end {
            self.fresh += 1;
            self.fresh - 1
        } else {
            self.released.pop_front()?
        };
        self.in_use.insert(id);
        Some(id)
    }

    /// Gives `id` back.
    pub fn release(&mut self, id: u32) {
        if self.in_use.remove(&id) {
            self.released.push_back(id);
        }
    }

    /// Ids in use.
    #[must_use]
    pub fn used(&self) -> usize {
        self.in_use.len()
    }

    /// Ids still available.
    #[must_use]
    pub fn available(&self) -> usize {
        (self.end - self.fresh) as usize + self.released.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_ids_are_reused_last_and_in_release_order() {
        let mut ids = IdAllocator::new(1, 5);
        let a = ids.allocate().unwrap();
        let b = ids.allocate().unwrap();
        ids.release(b);
        ids.release(a);
        // Never-used ids first.
        assert_eq!(ids.allocate(), Some(3));
        assert_eq!(ids.allocate(), Some(4));
        // Then released ones, oldest release first.
        assert_eq!(ids.allocate(), Some(b));
        assert_eq!(ids.allocate(), Some(a));
        assert_eq!(ids.allocate(), None);
    }

    #[test]
    fn restoring_keeps_used_ids_and_frees_holes() {
        let mut ids = IdAllocator::restored(1, 10, [2, 5]);
        assert_eq!(ids.used(), 2);
        assert_eq!(ids.allocate(), Some(6));
        let mut rest: Vec<u32> = std::iter::from_fn(|| ids.allocate()).collect();
        rest.sort_unstable();
        assert_eq!(rest, [1, 3, 4, 7, 8, 9]);
    }

    #[test]
    fn releasing_an_unknown_id_does_nothing() {
        let mut ids = IdAllocator::new(0, 2);
        ids.release(1);
        assert_eq!(ids.available(), 2);
    }
}
