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
         created together through the API (8 requests in flight, by a client that does nothing \
         else meanwhile), each bound to a node; latency is from the watch event that first \
         shows a pod to the one that first shows it Ready (readiness: a TCP probe every \
         second), split at the event that first shows every container running. Release \
         builds, this machine (2 cores); each run creates its pods once the cores are less \
         than 15 % busy. The Kubernetes SLO is p99 ≤ 5 s; baton's target \
         here is p99 < 2 s.\n\n\
         | nodes | pods | p50 | p99 | max | creation → running p50 / p99 | running → Ready p50 / p99 |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    let seconds = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    for run in report["runs"].as_array().into_iter().flatten() {
        let phase = |name: &str| {
            let phase = &run[name];
            if phase.is_object() {
                format!(
                    "{:.2} s / {:.2} s",
                    seconds(&phase["p50_seconds"]),
                    seconds(&phase["p99_seconds"])
                )
            } else {
                String::new()
            }
        };
        text.push_str(&format!(
            "| {} | {} | {:.2} s | {:.2} s | {:.2} s | {} | {} |\n",
            run["nodes"],
            run["pods"],
            seconds(&run["p50_seconds"]),
            seconds(&run["p99_seconds"]),
            seconds(&run["max_seconds"]),
            phase("creation_to_running"),
            phase("running_to_ready"),
        ));
    }
    text.push_str(&cpu_table(report));
    text.push_str(&steady_table(report));
    text.push_str("\nRaw samples: `target/baton/bench/pods.json`.\n");
    text
}

/// Where the CPU went from the first create request to the last pod Ready, by
/// component, against what the cores could give in that window.
fn cpu_table(report: &serde_json::Value) -> String {
    let Some(first) = runs_with(report, "cpu_seconds").first().copied() else {
        return String::new();
    };
    let mut text = format!(
        "\nCPU seconds used from the first create request to the last pod Ready (each process's own \
         time and its reaped children's, from /proc), per pod in brackets; the cores could give \
         {} × the window:\n\n",
        first["cores"]
    );
    text.push_str(&component_table(report, "cpu_seconds", |seconds, run| {
        let pods = run["pods"].as_f64().unwrap_or(1.0);
        format!("{seconds:.2} s ({:.0} ms)", seconds / pods * 1e3)
    }));
    text.push_str("| window (wall clock) |");
    for run in runs_with(report, "cpu_seconds") {
        text.push_str(&format!(
            " {:.2} s |",
            run["window_seconds"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    text.push('\n');
    text
}

/// What the node software costs while every pod runs and nothing changes.
fn steady_table(report: &serde_json::Value) -> String {
    let Some(first) = runs_with(report, "steady_cpu_seconds").first().copied() else {
        return String::new();
    };
    let mut text = format!(
        "\nCPU while every pod runs and nothing changes (probes, relists, resyncs, leases; {} s \
         counted a few seconds after the last pod became Ready), in % of one core:\n\n",
        first["steady_seconds"]
    );
    text.push_str(&component_table(
        report,
        "steady_cpu_seconds",
        |seconds, run| {
            let counted = run["steady_seconds"].as_f64().unwrap_or(f64::NAN);
            format!("{:.1} %", seconds / counted * 100.0)
        },
    ));
    text
}

fn runs_with<'a>(report: &'a serde_json::Value, key: &str) -> Vec<&'a serde_json::Value> {
    report["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r[key].is_object())
        .collect()
}

/// A row per component of the `key` object of each run (a column per
/// run), each cell `cell(seconds, run)`.
fn component_table(
    report: &serde_json::Value,
    key: &str,
    cell: impl Fn(f64, &serde_json::Value) -> String,
) -> String {
    let runs = runs_with(report, key);
    let mut text = String::from("| component |");
    let mut sep = String::from("| --- |");
    for run in &runs {
        text.push_str(&format!(
            " {} node(s), {} pods |",
            run["nodes"], run["pods"]
        ));
        sep.push_str(" ---: |");
    }
    text.push('\n');
    text.push_str(&sep);
    text.push('\n');
    let mut components: Vec<&String> = runs
        .iter()
        .filter_map(|r| r[key].as_object())
        .flat_map(|m| m.keys())
        .collect();
    components.sort();
    components.dedup();
    for component in components {
        text.push_str(&format!("| {component} |"));
        for run in &runs {
            let seconds = run[key][component.as_str()].as_f64().unwrap_or(0.0);
            text.push_str(&format!(" {} |", cell(seconds, run)));
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_tabled_per_component_and_pod() {
        let report = serde_json::json!({"runs": [{
            "nodes": 1, "pods": 30, "p50_seconds": 1.0, "p99_seconds": 2.0, "max_seconds": 2.0,
            "window_seconds": 3.0, "cores": 2,
            "cpu_seconds": {"etcd": 0.3, "baton-node": 0.6},
        }]});
        let text = render(&report);
        assert!(text.contains("| baton-node | 0.60 s (20 ms) |"), "{text}");
        assert!(text.contains("| etcd | 0.30 s (10 ms) |"), "{text}");
        assert!(text.contains("| window (wall clock) | 3.00 s |"), "{text}");
    }

    #[test]
    fn steady_cpu_is_tabled_in_percent_of_a_core() {
        let report = serde_json::json!({"runs": [{
            "nodes": 1, "pods": 30, "p50_seconds": 1.0, "p99_seconds": 2.0, "max_seconds": 2.0,
            "steady_seconds": 10, "steady_cpu_seconds": {"containerd (with the CNI plugins it runs)": 0.25},
        }]});
        let text = render(&report);
        assert!(text.contains("10 s counted"), "{text}");
        assert!(
            text.contains("| containerd (with the CNI plugins it runs) | 2.5 % |"),
            "{text}"
        );
    }

    #[test]
    fn phases_are_tabled_when_measured() {
        let report = serde_json::json!({"runs": [
            {"nodes": 1, "pods": 30, "p50_seconds": 1.0, "p99_seconds": 2.0, "max_seconds": 2.5,
             "creation_to_running": {"p50_seconds": 0.75, "p99_seconds": 1.5},
             "running_to_ready": {"p50_seconds": 0.25, "p99_seconds": 1.0}},
            {"nodes": 3, "pods": 90, "p50_seconds": 3.0, "p99_seconds": 4.0, "max_seconds": 4.0},
        ]});
        let text = render(&report);
        assert!(
            text.contains(
                "| 1 | 30 | 1.00 s | 2.00 s | 2.50 s | 0.75 s / 1.50 s | 0.25 s / 1.00 s |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| 3 | 90 | 3.00 s | 4.00 s | 4.00 s |  |  |"),
            "{text}"
        );
    }
}
