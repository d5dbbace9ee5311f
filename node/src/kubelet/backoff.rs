//! CrashLoopBackOff: the delay before a crashed container is started
//! again, as the kubelet computes it — 10 s, doubling per restart, capped
//! at 5 minutes, and forgotten once the container has run for 10 minutes
//! (`pkg/kubelet/kuberuntime`, `flowcontrol.Backoff`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// First delay.
pub const INITIAL: Duration = Duration::from_secs(10);
/// Cap of the delay.
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long resets its backoff.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    /// When the last (re)start was allowed.
    last_start: Instant,
}

/// Backoff state per key (pod UID and container name).
#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<(String, String), Entry>,
}

impl Backoff {
    /// How long `(pod, container)` must still wait before a restart at
    /// `now`, given that its last run started at `started_at` and ended at
    /// `finished_at` (both `None` when it never ran). `None` means go.
    /// Allowing a start records it, doubling the next delay.
    pub fn try_start(
        &mut self,
        pod: &str,
        container: &str,
        ran_for: Option<Duration>,
        now: Instant,
    ) -> Option<Duration> {
        let key = (pod.to_owned(), container.to_owned());
        if ran_for.is_some_and(|d| d >= RESET_AFTER) {
            self.entries.remove(&key);
        }
        match self.entries.get_mut(&key) {
            None => {
                self.entries.insert(
                    key,
                    Entry {
                        delay: INITIAL,
                        last_start: now,
                    },
                );
                None
            }
            Some(entry) => {
                let ready_at = entry.last_start + entry.delay;
                if now < ready_at {
                    return Some(ready_at - now);
                }
                entry.last_start = now;
                entry.delay = (entry.delay * 2).min(MAX);
                None
            }
        }
    }

    /// Whether a restart of `(pod, container)` at `now` would wait.
    #[must_use]
    pub fn in_backoff(&self, pod: &str, container: &str, now: Instant) -> bool {
        self.entries
            .get(&(pod.to_owned(), container.to_owned()))
            .is_some_and(|e| now < e.last_start + e.delay)
    }

    /// Forgets every key of `pod` (deleted).
    pub fn forget_pod(&mut self, pod: &str) {
        self.entries.retain(|(p, _), _| p != pod);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_ten_seconds_up_to_five_minutes() {
        let mut backoff = Backoff::default();
        let mut now = Instant::now();
        // The first restart goes at once.
        assert_eq!(
            backoff.try_start("p", "c", Some(Duration::from_secs(1)), now),
            None
        );
        let mut expected = INITIAL;
        for _ in 0..8 {
            // Right after: wait the whole current delay.
            assert_eq!(
                backoff.try_start("p", "c", Some(Duration::from_secs(1)), now),
                Some(expected)
            );
            assert!(backoff.in_backoff("p", "c", now));
            now += expected;
            assert_eq!(
                backoff.try_start("p", "c", Some(Duration::from_secs(1)), now),
                None
            );
            expected = (expected * 2).min(MAX);
        }
        assert_eq!(expected, MAX);
    }

    #[test]
    fn a_long_run_resets_and_keys_are_separate() {
        let mut backoff = Backoff::default();
        let now = Instant::now();
        assert_eq!(backoff.try_start("p", "c", None, now), None);
        assert!(backoff.try_start("p", "c", None, now).is_some());
        // Another container of the same pod is not delayed.
        assert_eq!(backoff.try_start("p", "d", None, now), None);
        // Ten minutes of running forgive everything.
        assert_eq!(backoff.try_start("p", "c", Some(RESET_AFTER), now), None);
        backoff.forget_pod("p");
        assert!(!backoff.in_backoff("p", "c", now));
    }
}
