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
         Minutes before, on the same cluster with every baton-node stopped, the same pods are \
         started by calling the nodes' containerd over CRI directly, with the requests \
         baton-node builds for them, all at once: the runtime alone, from `RunPodSandbox` to \
         the return of `StartContainer`. It runs again once baton has removed its pods \
         (\"after\": on a containerd that has started pods before, where \"before\" is its \
         first burst). That is the floor the machine gives in that hour; compare it with \
         creation → running.\n\n\
         | nodes | pods | p50 | p99 | max | creation → running p50 / p99 | running → Ready p50 / p99 | the runtime alone before: p50 / p99 | after: p50 / p99 |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
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
            "| {} | {} | {:.2} s | {:.2} s | {:.2} s | {} | {} | {} | {} |\n",
            run["nodes"],
            run["pods"],
            seconds(&run["p50_seconds"]),
            seconds(&run["p99_seconds"]),
            seconds(&run["max_seconds"]),
            phase("creation_to_running"),
            phase("running_to_ready"),
            phase("runtime_alone"),
            phase("runtime_alone_after"),
        ));
    }
    text.push_str(&machine_line(report));
    text.push_str(&cpu_table(report));
    text.push_str(&steps_table(report));
    text.push_str(&steady_table(report));
    text.push_str("\nRaw samples: `target/baton/bench/pods.json`.\n");
    text
}

/// Where the CPU went from the first create request to the last pod Ready, by
/// component, against what the cores could give in that window; beside each
/// run, the runtime alone with the same pods.
fn cpu_table(report: &serde_json::Value) -> String {
    let runs = runs_with(report, "cpu_seconds");
    let Some(first) = runs.first().copied() else {
        return String::new();
    };
    let mut text = format!(
        "\nCPU seconds used from the first create request to the last pod Ready (each process's own \
         time and its reaped children's, from /proc), per pod in brackets, and in the runtime \
         alone's burst; the cores could give {} × the window:\n\n",
        first["cores"]
    );
    let mut columns = Vec::new();
    for run in &runs {
        columns.push(Column::of(
            run,
            &run["cpu_seconds"],
            "",
            &run["window_seconds"],
        ));
        let alone = &run["runtime_alone"];
        if alone["cpu_seconds"].is_object() {
            columns.push(Column::of(
                run,
                &alone["cpu_seconds"],
                ", the runtime alone before",
                &alone["window_seconds"],
            ));
        }
    }
    text.push_str(&component_table(&columns, |seconds, column| {
        format!("{seconds:.2} s ({:.0} ms)", seconds / column.pods * 1e3)
    }));
    text.push_str("| window (wall clock) |");
    for column in &columns {
        text.push_str(&format!(" {:.2} s |", column.window));
    }
    text.push('\n');
    text
}

/// How fast the machine was when each run started.
fn machine_line(report: &serde_json::Value) -> String {
    let runs = runs_with(report, "machine");
    if runs.is_empty() {
        return String::new();
    }
    let each: Vec<String> = runs
        .iter()
        .map(|run| {
            format!(
                "{} pods: {:.2} s and {:.2} s",
                run["pods"],
                run["machine"]["hash_128_mib_seconds"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                run["machine"]["spawn_100_seconds"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            )
        })
        .collect();
    format!(
        "\nThe machine just before each run, to compare runs of different hours (SHA-256 of \
         128 MiB on one core, and 100 process spawns one after the other): {}.\n",
        each.join("; ")
    )
}

/// The order of a pod's steps; steps not named here follow, by name.
const STEP_ORDER: [&str; 5] = [
    "volume_mount kubernetes.io/projected",
    "run_podsandbox",
    "podsandbox_status",
    "create_container",
    "start_container",
];

/// The nodes' CRI calls and volume set-ups during each burst: the mean
/// time of one, and how many there were.
fn steps_table(report: &serde_json::Value) -> String {
    let mut columns: Vec<(String, &serde_json::Value)> = Vec::new();
    for run in runs_with(report, "steps") {
        let heading = format!("{} node(s), {} pods", run["nodes"], run["pods"]);
        columns.push((heading.clone(), &run["steps"]));
        if run["runtime_alone"]["steps"].is_object() {
            columns.push((
                format!("{heading}, the runtime alone before"),
                &run["runtime_alone"]["steps"],
            ));
        }
    }
    if columns.is_empty() {
        return String::new();
    }
    let mut steps: Vec<&String> = columns
        .iter()
        .filter_map(|(_, steps)| steps.as_object())
        .flat_map(|m| m.keys())
        .collect();
    steps.sort_by_key(|step| {
        (
            STEP_ORDER
                .iter()
                .position(|known| known == step)
                .unwrap_or(STEP_ORDER.len()),
            *step,
        )
    });
    steps.dedup();
    let mut text = String::from(
        "\nThe nodes' steps in the same windows (`kubelet_runtime_operations_duration_seconds` \
         and `storage_operation_duration_seconds`, from the kubelets' metrics; for the runtime \
         alone, from the benchmark's CRI clients): the mean time of one, and how many ran:\n\n",
    );
    text.push_str(&table_head("step", columns.iter().map(|(h, _)| h.as_str())));
    for step in steps {
        text.push_str(&format!("| {step} |"));
        for (_, column) in &columns {
            let cell = &column[step.as_str()];
            if cell.is_object() {
                text.push_str(&format!(
                    " {:.0} ms ({}) |",
                    cell["mean_seconds"].as_f64().unwrap_or(f64::NAN) * 1e3,
                    cell["calls"].as_f64().unwrap_or(0.0)
                ));
            } else {
                text.push_str(" |");
            }
        }
        text.push('\n');
    }
    text
}

/// What the node software costs while every pod runs and nothing changes.
fn steady_table(report: &serde_json::Value) -> String {
    let runs = runs_with(report, "steady_cpu_seconds");
    let Some(first) = runs.first().copied() else {
        return String::new();
    };
    let mut text = format!(
        "\nCPU while every pod runs and nothing changes (probes, relists, resyncs, leases; {} s \
         counted a few seconds after the last pod became Ready), in % of one core:\n\n",
        first["steady_seconds"]
    );
    let columns: Vec<Column<'_>> = runs
        .iter()
        .map(|run| Column::of(run, &run["steady_cpu_seconds"], "", &run["steady_seconds"]))
        .collect();
    text.push_str(&component_table(&columns, |seconds, column| {
        format!("{:.1} %", seconds / column.window * 100.0)
    }));
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

/// A column of a per-component CPU table: its heading, CPU seconds per
/// component, the run's pod count and the seconds counted.
struct Column<'a> {
    heading: String,
    cpu: &'a serde_json::Value,
    pods: f64,
    window: f64,
}

impl<'a> Column<'a> {
    fn of(
        run: &serde_json::Value,
        cpu: &'a serde_json::Value,
        suffix: &str,
        window: &serde_json::Value,
    ) -> Self {
        Self {
            heading: format!("{} node(s), {} pods{suffix}", run["nodes"], run["pods"]),
            cpu,
            pods: run["pods"].as_f64().unwrap_or(1.0),
            window: window.as_f64().unwrap_or(f64::NAN),
        }
    }
}

/// A table's heading row and its separator: a first column named `first`,
/// then right-aligned `headings`.
fn table_head<'a>(first: &str, headings: impl Iterator<Item = &'a str>) -> String {
    let mut text = format!("| {first} |");
    let mut sep = String::from("| --- |");
    for heading in headings {
        text.push_str(&format!(" {heading} |"));
        sep.push_str(" ---: |");
    }
    format!("{text}\n{sep}\n")
}

/// A row per component found in any column, each cell
/// `cell(seconds, column)`.
fn component_table(columns: &[Column<'_>], cell: impl Fn(f64, &Column<'_>) -> String) -> String {
    let mut text = table_head("component", columns.iter().map(|c| c.heading.as_str()));
    let mut components: Vec<&String> = columns
        .iter()
        .filter_map(|c| c.cpu.as_object())
        .flat_map(|m| m.keys())
        .collect();
    components.sort();
    components.dedup();
    for component in components {
        text.push_str(&format!("| {component} |"));
        for column in columns {
            let seconds = column.cpu[component.as_str()].as_f64().unwrap_or(0.0);
            text.push_str(&format!(" {} |", cell(seconds, column)));
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
    fn steps_are_tabled_in_a_pods_order_beside_the_runtime_alone() {
        let report = serde_json::json!({"runs": [{
            "nodes": 1, "pods": 30, "p50_seconds": 1.0, "p99_seconds": 2.0, "max_seconds": 2.0,
            "steps": {
                "start_container": {"calls": 30.0, "mean_seconds": 0.25},
                "list_containers": {"calls": 4.0, "mean_seconds": 0.002},
                "volume_mount kubernetes.io/projected": {"calls": 30.0, "mean_seconds": 0.1},
            },
            "runtime_alone": {"steps": {"start_container": {"calls": 30.0, "mean_seconds": 0.2}}},
        }]});
        let text = render(&report);
        let table = text.split("| step |").nth(1).expect("a steps table");
        assert!(
            table.contains(
                "| volume_mount kubernetes.io/projected | 100 ms (30) | |\n\
                 | start_container | 250 ms (30) | 200 ms (30) |\n\
                 | list_containers | 2 ms (4) | |\n"
            ),
            "{text}"
        );
        assert!(
            table.starts_with(
                " 1 node(s), 30 pods | 1 node(s), 30 pods, the runtime alone before |"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_machines_speed_is_told_per_run() {
        let report = serde_json::json!({"runs": [
            {"nodes": 1, "pods": 30, "machine": {"hash_128_mib_seconds": 0.31, "spawn_100_seconds": 0.125}},
            {"nodes": 3, "pods": 90, "machine": {"hash_128_mib_seconds": 0.5, "spawn_100_seconds": 0.25}},
        ]});
        let text = render(&report);
        assert!(
            text.contains(
                "one after the other): 30 pods: 0.31 s and 0.12 s; 90 pods: 0.50 s and 0.25 s.\n"
            ),
            "{text}"
        );
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
                "| 1 | 30 | 1.00 s | 2.00 s | 2.50 s | 0.75 s / 1.50 s | 0.25 s / 1.00 s |  |  |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| 3 | 90 | 3.00 s | 4.00 s | 4.00 s |  |  |  |  |"),
            "{text}"
        );
    }

    #[test]
    fn the_runtime_alone_is_tabled_beside_its_run() {
        let report = serde_json::json!({"runs": [{
            "nodes": 1, "pods": 30, "p50_seconds": 2.0, "p99_seconds": 2.5, "max_seconds": 2.5,
            "window_seconds": 2.5, "cores": 2, "cpu_seconds": {"etcd": 0.3, "baton-node": 0.6},
            "runtime_alone": {"p50_seconds": 1.5, "p99_seconds": 1.75, "window_seconds": 1.8,
                              "cpu_seconds": {"etcd": 0.03}},
            "runtime_alone_after": {"p50_seconds": 1.25, "p99_seconds": 1.5},
        }]});
        let text = render(&report);
        assert!(
            text.contains(
                "| 1 | 30 | 2.00 s | 2.50 s | 2.50 s |  |  | 1.50 s / 1.75 s | 1.25 s / 1.50 s |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| component | 1 node(s), 30 pods | 1 node(s), 30 pods, the runtime alone before |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| baton-node | 0.60 s (20 ms) | 0.00 s (0 ms) |"),
            "{text}"
        );
        assert!(
            text.contains("| etcd | 0.30 s (10 ms) | 0.03 s (1 ms) |"),
            "{text}"
        );
        assert!(
            text.contains("| window (wall clock) | 2.50 s | 1.80 s |"),
            "{text}"
        );
    }
}
