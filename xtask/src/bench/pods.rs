//! `cargo xtask bench pods`: pod startup latency (creation → Ready, image
//! present) for 30 pods on one node and 90 on three, in namespace
//! clusters with release builds of baton. Writes
//! `target/baton/bench/pods.json` and the "Pod startup" section of
//! docs/benchmarks.md.
//!
//! The measurement is `tests/tests/pod_startup.rs` (an ignored test of the
//! harness crate, so it shares the end-to-end tests' cluster bring-up);
//! this drives it and records what it reports.

use anyhow::{Context, Result};

use super::report;
use crate::run::{cargo, status};

const SECTION: &str = "## Pod startup";

pub fn run() -> Result<()> {
    crate::privileges::require("bench pods")?;
    crate::images::run(&crate::images::ImagesArgs::default())?;
    let bins = crate::build::run(&crate::build::BuildArgs { release: true })?;
    let out = report::results_dir()?.join("pods.json");
    status(
        cargo()
            .args([
                "test",
                "--release",
                "-p",
                "baton-e2e",
                "--test",
                "pod_startup",
                "--",
                "--ignored",
                "--nocapture",
            ])
            .env("BATON_BIN_DIR", &bins)
            .env("BATON_BENCH_PODS_OUT", &out),
    )?;
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?,
    )
    .context("parsing the bench results")?;
    let doc = report::docs_path();
    report::write_section(&doc, SECTION, &render(&report))?;
    println!("results: {} and {}", out.display(), doc.display());
    Ok(())
}

/// The section's Markdown.
fn render(report: &serde_json::Value) -> String {
    let mut text = format!(
        "{SECTION}\n\n`cargo xtask bench pods`: pods of the echo image (present on the nodes) \
         created at once with `kubectl apply`, each bound to a node; latency is from the \
         watch event that first shows a pod to the one that first shows it Ready \
         (readiness: a TCP probe every second), release builds, this machine \
         (2 cores). The Kubernetes SLO is p99 ≤ 5 s; baton's target here is p99 < 2 s.\n\n\
         | nodes | pods | p50 | p99 | max |\n| --- | --- | --- | --- | --- |\n"
    );
    for run in report["runs"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "| {} | {} | {:.2} s | {:.2} s | {:.2} s |\n",
            run["nodes"],
            run["pods"],
            run["p50_seconds"].as_f64().unwrap_or(f64::NAN),
            run["p99_seconds"].as_f64().unwrap_or(f64::NAN),
            run["max_seconds"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    text.push_str("\nRaw samples: `target/baton/bench/pods.json`.\n");
    text
}
