//! Controller expectations (`controller.ControllerExpectations`): after a
//! sync creates or deletes pods, the controller (ReplicaSet, Job) does not manage its pods again until
//! the informer has shown those creations and deletions (or five minutes
//! passed), so a slow watch never makes the controller create extra pods.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Expectations lapse after this long (`ExpectationsTimeout`).
pub const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Expectation {
    adds: i64,
    deletes: HashSet<String>,
    set_at: Instant,
}

/// Expectations per controller key (`namespace/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Expectation>>,
}

impl Expectations {
    /// Whether the controller may compute a new diff.
    pub fn satisfied(&self, key: &str) -> bool {
        let m = self.inner.lock().expect("expectations");
        match m.get(key) {
            None => true,
            Some(e) => (e.adds <= 0 && e.deletes.is_empty()) || e.set_at.elapsed() > TIMEOUT,
        }
    }

    pub fn expect_creations(&self, key: &str, n: i64) {
        self.expect(key, n, []);
    }

    pub fn expect_deletions(&self, key: &str, pods: impl IntoIterator<Item = String>) {
        self.expect(key, 0, pods);
    }

    /// Creations and deletions of one sync (`SetExpectations`).
    pub fn expect(&self, key: &str, adds: i64, pods: impl IntoIterator<Item = String>) {
        let mut m = self.inner.lock().expect("expectations");
        m.insert(
            key.to_string(),
            Expectation {
                adds,
                deletes: pods.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.inner.lock().expect("expectations").get_mut(key) {
            e.adds -= 1;
        }
    }

    pub fn deletion_observed(&self, key: &str, pod: &str) {
        if let Some(e) = self.inner.lock().expect("expectations").get_mut(key) {
            e.deletes.remove(pod);
        }
    }

    pub fn forget(&self, key: &str) {
        self.inner.lock().expect("expectations").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsatisfied_until_every_creation_and_deletion_is_seen() {
        let e = Expectations::default();
        assert!(e.satisfied("d/rs"));
        e.expect_creations("d/rs", 2);
        assert!(!e.satisfied("d/rs"));
        e.creation_observed("d/rs");
        assert!(!e.satisfied("d/rs"));
        e.creation_observed("d/rs");
        assert!(e.satisfied("d/rs"));
        e.expect_deletions("d/rs", ["d/p1".to_string()]);
        assert!(!e.satisfied("d/rs"));
        e.deletion_observed("d/rs", "d/p1");
        assert!(e.satisfied("d/rs"));
    }
}
