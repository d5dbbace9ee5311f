//! The backoff between deleting failed daemon pods on one node
//! (`failedPodsBackoff`, client-go's `flowcontrol.Backoff` with 1s
//! initial and 15 minutes maximum delay), so the controller does not hot
//! loop against a kubelet that keeps rejecting its pod.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const INITIAL: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
pub struct Backoff {
    entries: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl Backoff {
    /// The delay still to wait for `key` at `now`, if in backoff
    /// (`IsInBackOffSinceUpdate`).
    pub fn remaining(&self, key: &str, now: Instant) -> Option<Duration> {
        let m = self.entries.lock().expect("backoff");
        let (delay, at) = m.get(key)?;
        let elapsed = now.saturating_duration_since(*at);
        (elapsed < *delay).then(|| *delay - elapsed)
    }

    /// Records an attempt: the delay doubles up to [`MAX`], and starts
    /// over after `2 * MAX` without attempts (`Next`). Entries that old
    /// are dropped (`GC`).
    pub fn next(&self, key: &str, now: Instant) {
        let mut m = self.entries.lock().expect("backoff");
        m.retain(|k, (_, at)| k == key || now.saturating_duration_since(*at) <= 2 * MAX);
        let delay = match m.get(key) {
            Some((d, at)) if now.saturating_duration_since(*at) <= 2 * MAX => (*d * 2).min(MAX),
            _ => INITIAL,
        };
        m.insert(key.to_string(), (delay, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_lapse() {
        let b = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(b.remaining("k", t0), None);
        b.next("k", t0);
        assert_eq!(b.remaining("k", t0), Some(INITIAL));
        assert_eq!(b.remaining("k", t0 + INITIAL), None);
        b.next("k", t0 + INITIAL);
        assert_eq!(b.remaining("k", t0 + INITIAL), Some(Duration::from_secs(2)));
        let later = t0 + 3 * MAX;
        b.next("k", later);
        assert_eq!(b.remaining("k", later), Some(INITIAL));
    }
}
