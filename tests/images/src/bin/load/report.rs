//! What the load generator counted, and the JSON line it prints.

use std::fmt::Write as _;

use crate::Args;

/// One URL's answers over the recorded slices.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of every answer, µs.
    latencies: Vec<u32>,
    /// Answers whose status was not 200.
    pub status_errors: u64,
    /// Failed connects and broken connections.
    pub errors: u64,
}

impl Tally {
    pub fn record(&mut self, micros: u32, ok: bool) {
        self.latencies.push(micros);
        if !ok {
            self.status_errors += 1;
        }
    }

    pub fn answers(&self) -> u64 {
        self.latencies.len() as u64
    }
}

/// One slice of time: which URL was loaded, and how many of its answers
/// arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub target: usize,
    pub answers: u64,
    pub micros: u64,
}

/// The `q`-quantile of sorted `values` (nearest rank); 0 when empty.
fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The result as one JSON line.
pub fn line(args: &Args, tallies: &[Tally], slices: &[Slice]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"{{"mode":"{}","connections":{},"slice_us":{},"targets":["#,
        if args.close { "close" } else { "keepalive" },
        args.connections,
        args.slice.as_micros()
    );
    for (i, (target, tally)) in args.targets.iter().zip(tallies).enumerate() {
        let mut sorted = tally.latencies.clone();
        sorted.sort_unstable();
        let micros: u64 = slices
            .iter()
            .filter(|s| s.target == i)
            .map(|s| s.micros)
            .sum();
        let _ = write!(
            out,
            r#"{}{{"url":"{}","answers":{},"micros":{micros},"errors":{},"status_errors":{},"p50_us":{},"p90_us":{},"p99_us":{},"max_us":{}}}"#,
            if i > 0 { "," } else { "" },
            target.url,
            tally.answers(),
            tally.errors,
            tally.status_errors,
            quantile(&sorted, 0.50),
            quantile(&sorted, 0.90),
            quantile(&sorted, 0.99),
            sorted.last().copied().unwrap_or(0),
        );
    }
    out.push_str(r#"],"slices":["#);
    for (i, s) in slices.iter().enumerate() {
        let _ = write!(
            out,
            "{}[{},{},{}]",
            if i > 0 { "," } else { "" },
            s.target,
            s.answers,
            s.micros
        );
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[7], 0.99), 7);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
