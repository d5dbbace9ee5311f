//! Where the time goes inside the datapath: the kernel's per-program run
//! time and run count (`kernel.bpf_stats_enabled`, read with `bpftool prog
//! show`) of the baton node's programs — found through the links pinned in
//! its bpffs — around a load run. Statistics cost two clock reads per
//! program run, so they are on only for these profiling runs (and switched
//! back off by [`BpfStats`]'s drop).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Turns BPF run-time statistics on; restores the previous setting on drop.
pub struct BpfStats {
    previous: String,
}

impl BpfStats {
    pub fn enable() -> Result<Self> {
        let previous = std::fs::read_to_string(SYSCTL)
            .with_context(|| format!("reading {SYSCTL}"))?
            .trim()
            .to_owned();
        std::fs::write(SYSCTL, "1").with_context(|| format!("writing {SYSCTL}"))?;
        Ok(Self { previous })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.previous);
    }
}

/// Run count and total run time of one program.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProgStats {
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

fn bpftool_json(args: &[&str]) -> Result<Value> {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .context("running bpftool")?;
    anyhow::ensure!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The programs behind the links pinned under `<pin dir>/links`, by name
/// (one id per name: every attachment of a program runs the same code).
pub fn programs(pin_dir: &Path) -> Result<BTreeMap<String, Vec<u64>>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let dir = pin_dir.join("links");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let Ok(link) = bpftool_json(&["link", "show", "pinned", &path.display().to_string()])
        else {
            continue;
        };
        let Some(id) = link["prog_id"].as_u64() else {
            continue;
        };
        let prog = bpftool_json(&["prog", "show", "id", &id.to_string()])?;
        let name = prog["name"].as_str().unwrap_or("?").to_owned();
        let ids = out.entry(name).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(out)
}

/// Current statistics of `programs`, summed per name.
pub fn snapshot(programs: &BTreeMap<String, Vec<u64>>) -> Result<BTreeMap<String, ProgStats>> {
    let mut out = BTreeMap::new();
    for (name, ids) in programs {
        let mut total = ProgStats::default();
        for id in ids {
            let prog = bpftool_json(&["prog", "show", "id", &id.to_string()])?;
            total.run_cnt += prog["run_cnt"].as_u64().unwrap_or(0);
            total.run_time_ns += prog["run_time_ns"].as_u64().unwrap_or(0);
        }
        out.insert(name.clone(), total);
    }
    Ok(out)
}

/// Per program: runs per request and nanoseconds per run between two
/// snapshots, for a run that served `requests`.
pub fn delta(
    before: &BTreeMap<String, ProgStats>,
    after: &BTreeMap<String, ProgStats>,
    requests: u64,
) -> Value {
    let mut out = serde_json::Map::new();
    for (name, a) in after {
        let b = before.get(name).copied().unwrap_or_default();
        let runs = a.run_cnt.saturating_sub(b.run_cnt);
        if runs == 0 {
            continue;
        }
        let ns = a.run_time_ns.saturating_sub(b.run_time_ns);
        out.insert(
            name.clone(),
            json!({
                "runs": runs,
                "runs_per_request": super::load::round3(runs as f64 / requests.max(1) as f64),
                "ns_per_run": super::load::round3(ns as f64 / runs as f64),
                "ns_per_request": super::load::round3(ns as f64 / requests.max(1) as f64),
            }),
        );
    }
    Value::Object(out)
}
