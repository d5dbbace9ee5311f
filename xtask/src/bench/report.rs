//! What every benchmark shares: processes it owns, latency statistics, a
//! description of the machine, and writing results (JSON under
//! `target/baton/bench/`, a section of docs/benchmarks.md).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::build::{BuildArgs, target_dir};
use crate::run::repo_root;

/// A child process, killed (by PID) and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free on loopback right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on loopback `port`.
pub fn wait_port(port: u16, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {within:?}")
}

/// The release build of binary `name` (built now, with everything else).
pub fn release_binary(name: &str) -> Result<PathBuf> {
    Ok(crate::build::run(&BuildArgs { release: true })?.join(name))
}

/// Where results are written: `target/baton/bench/`.
pub fn results_dir() -> Result<PathBuf> {
    let dir = target_dir()?.join("baton").join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// docs/benchmarks.md.
pub fn docs_path() -> PathBuf {
    repo_root().join("docs").join("benchmarks.md")
}

/// Writes `report` as pretty JSON to `<results dir>/<name>.json`.
pub fn write_json(name: &str, report: &serde_json::Value) -> Result<PathBuf> {
    let path = results_dir()?.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// What this machine is and how busy it was, for the record.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown")
        .to_string();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let etcd = Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default();
    json!({
        "cpu": model,
        "cores": cores,
        "memory_gib": round2(mem_kb as f64 / 1_048_576.0),
        "kernel": kernel,
        "etcd": etcd,
        "load_average_1m": load_average(),
    })
}

/// The current time (UTC, to the minute) for a results record.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// The 1-minute load average: other work on the machine skews the numbers.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

pub use baton_e2e::wait_until_quiet;

/// Resident memory of a process, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| round2(kb / 1024.0))
        .unwrap_or(0.0)
}

/// The `p`th percentile (nearest rank) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Count, p50, p90, p99 and max of latency samples (any unit).
pub fn summary(mut samples: Vec<f64>) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    json!({
        "n": samples.len(),
        "p50": round2(percentile(&samples, 50.0)),
        "p90": round2(percentile(&samples, 90.0)),
        "p99": round2(percentile(&samples, 99.0)),
        "max": round2(samples.last().copied().unwrap_or(0.0)),
    })
}

/// Replaces the section that starts with the line `heading` (up to the next
/// `## ` heading) in `doc`, or appends it; the file is created if missing.
pub fn write_section(doc: &Path, heading: &str, section: &str) -> Result<()> {
    let current = std::fs::read_to_string(doc).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
    std::fs::write(doc, replace_section(&current, heading, section))
        .with_context(|| format!("writing {}", doc.display()))
}

fn replace_section(current: &str, heading: &str, section: &str) -> String {
    let section = section.trim_end();
    let start = current
        .match_indices(heading)
        .find(|(i, _)| {
            (*i == 0 || current[..*i].ends_with('\n'))
                && current[i + heading.len()..].starts_with('\n')
        })
        .map(|(i, _)| i);
    match start {
        Some(start) => {
            let rest = &current[start + heading.len()..];
            match rest.find("\n## ") {
                Some(i) => format!("{}{section}\n\n{}", &current[..start], &rest[i + 1..]),
                None => format!("{}{section}\n", &current[..start]),
            }
        }
        None => format!("{}\n\n{section}\n", current.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_in_place_and_others_are_kept() {
        let doc = "# Benchmarks\n\n## Pod startup\nold\n\n## Other\nkept\n";
        assert_eq!(
            replace_section(doc, "## Pod startup", "## Pod startup\nnew\n"),
            "# Benchmarks\n\n## Pod startup\nnew\n\n## Other\nkept\n"
        );
        assert_eq!(
            replace_section(doc, "## Other", "## Other\nnew\n"),
            "# Benchmarks\n\n## Pod startup\nold\n\n## Other\nnew\n"
        );
    }

    #[test]
    fn a_missing_section_is_appended_and_prefixes_do_not_match() {
        let doc = "# Benchmarks\n\n## API server latency\nkept\n";
        assert_eq!(
            replace_section(doc, "## API server", "## API server\nnew"),
            "# Benchmarks\n\n## API server latency\nkept\n\n## API server\nnew\n"
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 51.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(summary(vec![3.0, 1.0, 2.0])["max"], 3.0);
    }
}
