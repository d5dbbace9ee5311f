//! Paired runs: a baton service path and the direct path to the same pod,
//! loaded by one client from the same place in alternating slices of time
//! (the `load` program of the images crate: A B B A …, all connections on
//! one path per slice).
//!
//! Separate runs of the same path differ by a fifth here from one run to
//! the next (the host's speed moves within seconds), more than the
//! differences the targets ask about. Adjacent slices share the host's
//! moment, so the ratio of each adjacent pair of slices is what compares
//! the paths; its median over the run, with a distribution-free 95 %
//! confidence interval, is reported. Latency percentiles come from the
//! same interleaved time, so a stall of the host lands on both paths
//! alike.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use super::PathDef;
use super::load::{Mode, median, round3, run_bounded};
use super::topology::{BenchCluster, Place};
use crate::bench::report::round2;

/// The service paths measured in pairs, each against the direct pod IP
/// from the same place.
pub const PAIRED: &[&str] = &["socket_pod", "socket_host", "tc_pod", "nodeport"];

/// A service path and its reference.
#[derive(Debug, Clone)]
pub struct Pair {
    pub id: &'static str,
    pub place: Place,
    /// The service URL.
    pub subject: String,
    /// The pod's own address.
    pub reference: String,
}

/// How a paired run cuts its time.
#[derive(Debug, Clone, Copy)]
pub struct Slicing {
    pub connections: usize,
    pub slice: Duration,
    /// Recorded slices (an even number: every two make a pair).
    pub slices: usize,
}

/// The pairs of [`PAIRED`] among `paths`, each against `direct_url`.
pub fn pairs(paths: &[PathDef], direct_url: &str) -> Vec<Pair> {
    PAIRED
        .iter()
        .filter_map(|id| paths.iter().find(|p| p.id == *id))
        .map(|p| Pair {
            id: p.id,
            place: p.place.clone(),
            subject: p.url.clone(),
            reference: direct_url.to_owned(),
        })
        .collect()
}

/// One paired run of `pair` in `mode` with the load generator `load`.
pub fn run(
    bench: &BenchCluster,
    load: &Path,
    pair: &Pair,
    mode: Mode,
    slicing: Slicing,
) -> Result<Value> {
    let mut args = vec![
        load.display().to_string(),
        "--connections".into(),
        slicing.connections.to_string(),
        "--slice-ms".into(),
        slicing.slice.as_millis().to_string(),
        "--slices".into(),
        slicing.slices.to_string(),
    ];
    if mode == Mode::NewConnections {
        args.push("--close".into());
    }
    args.push(pair.subject.clone());
    args.push(pair.reference.clone());
    let cmd = super::client_command(bench, &pair.place, args)?;
    // Two warm-up slices, then the recorded ones.
    let limit = slicing.slice * (slicing.slices as u32 + 2) + Duration::from_secs(20);
    let out = run_bounded(cmd, limit).with_context(|| format!("paired run of {}", pair.id))?;
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .context("no result line from the load generator")?;
    let raw: Value = serde_json::from_str(line).context("the load generator's line")?;
    summarize(&raw).with_context(|| format!("reading {line}"))
}

/// From the generator's line (target 0 the service, 1 the pod): each
/// side's rate and latency; the ratio service/direct of every adjacent
/// pair of slices, their median and its 95 % confidence interval; and the
/// ratios of the latency percentiles.
pub fn summarize(raw: &Value) -> Result<Value> {
    let targets = raw["targets"].as_array().context("no targets")?;
    ensure!(targets.len() == 2, "{} targets, not 2", targets.len());
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    let side = |t: &Value| {
        let seconds = num(&t["micros"]) / 1e6;
        let rate = if seconds > 0.0 {
            num(&t["answers"]) / seconds
        } else {
            0.0
        };
        json!({
            "rate": round2(rate),
            "p50_ms": round3(num(&t["p50_us"]) / 1000.0),
            "p90_ms": round3(num(&t["p90_us"]) / 1000.0),
            "p99_ms": round3(num(&t["p99_us"]) / 1000.0),
            "max_ms": round3(num(&t["max_us"]) / 1000.0),
            "errors": num(&t["errors"]) + num(&t["status_errors"]),
        })
    };
    let slices: Vec<(u64, f64)> = raw["slices"]
        .as_array()
        .context("no slices")?
        .iter()
        .map(|s| {
            let micros = num(&s[2]);
            let rate = if micros > 0.0 {
                num(&s[1]) * 1e6 / micros
            } else {
                0.0
            };
            (s[0].as_u64().unwrap_or(u64::MAX), rate)
        })
        .collect();
    let mut ratios = Vec::new();
    for two in slices.chunks_exact(2) {
        let find = |t| two.iter().find(|s| s.0 == t).map(|s| s.1);
        let (Some(service), Some(direct)) = (find(0), find(1)) else {
            anyhow::bail!("slices {two:?} are not one of each path");
        };
        ensure!(direct > 0.0, "a slice of the direct path without answers");
        ratios.push(service / direct);
    }
    ensure!(!ratios.is_empty(), "no pair of slices");
    ratios.sort_by(f64::total_cmp);
    let (low, high) = median_ci(&ratios);
    let (service, direct) = (side(&targets[0]), side(&targets[1]));
    let ratio = |key: &str| round3(num(&service[key]) / num(&direct[key]));
    Ok(json!({
        "service": service,
        "direct": direct,
        "rate_ratio": round3(median(&ratios)),
        "rate_ratio_ci95": [round3(low), round3(high)],
        "slice_pairs": ratios.len(),
        "p50_ratio": ratio("p50_ms"),
        "p99_ratio": ratio("p99_ms"),
    }))
}

/// A distribution-free 95 % confidence interval for the median of the
/// sorted `values`: the order statistics k and n + 1 − k, k the largest
/// rank with P(Binomial(n, ½) < k) ≤ 2.5 %. Below 6 values no such k
/// exists, and the whole range is returned.
pub fn median_ci(sorted: &[f64]) -> (f64, f64) {
    let n = sorted.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    // P(X = i) for X ~ Binomial(n, ½), accumulated while ≤ 2.5 %.
    let mut p = 0.5f64.powi(i32::try_from(n).unwrap_or(i32::MAX));
    let mut below = 0.0;
    let mut k = 0;
    for i in 0..n {
        if below + p > 0.025 {
            break;
        }
        below += p;
        k = i + 1;
        p *= (n - i) as f64 / (i + 1) as f64;
    }
    if k == 0 {
        return (sorted[0], sorted[n - 1]);
    }
    (sorted[k - 1], sorted[n - k])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_interval_uses_binomial_order_statistics() {
        // n = 20: P(X ≤ 5) = 2.07 %, P(X ≤ 6) = 5.77 %, so the interval
        // runs from the 6th to the 15th value.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(median_ci(&v), (6.0, 15.0));
        // n = 6: P(X = 0) = 1.6 %: the extremes.
        let v: Vec<f64> = (1..=6).map(f64::from).collect();
        assert_eq!(median_ci(&v), (1.0, 6.0));
        // n = 5: no rank qualifies; the whole range.
        assert_eq!(median_ci(&[1.0, 2.0, 3.0, 4.0, 5.0]), (1.0, 5.0));
    }

    #[test]
    fn slices_are_compared_with_their_neighbour() {
        // Service slices at 90 % of the direct ones while the host's speed
        // halves in the middle of the run: every pair says 0.9.
        let raw = json!({
            "targets": [
                {"answers": 2700, "micros": 4_000_000, "p50_us": 110, "p99_us": 990, "errors": 0, "status_errors": 0},
                {"answers": 3000, "micros": 4_000_000, "p50_us": 100, "p99_us": 900, "errors": 0, "status_errors": 0},
            ],
            "slices": [
                [0, 900, 1_000_000], [1, 1000, 1_000_000],
                [1, 1000, 1_000_000], [0, 900, 1_000_000],
                [0, 450, 1_000_000], [1, 500, 1_000_000],
                [1, 500, 1_000_000], [0, 450, 1_000_000],
            ],
        });
        let s = summarize(&raw).unwrap();
        assert_eq!(s["rate_ratio"], 0.9);
        assert_eq!(s["rate_ratio_ci95"], json!([0.9, 0.9]));
        assert_eq!(s["slice_pairs"], 4);
        assert_eq!(s["service"]["rate"], 675.0);
        assert_eq!(s["p99_ratio"], 1.1);
        assert_eq!(s["p50_ratio"], 1.1);
        let broken = json!({"targets": raw["targets"], "slices": [[0, 1, 1], [0, 1, 1]]});
        assert!(
            summarize(&broken).is_err(),
            "a pair without the direct path"
        );
    }
}
