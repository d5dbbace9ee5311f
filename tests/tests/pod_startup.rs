//! Pod startup latency (creation → Ready, images present), the measurement
//! behind `cargo xtask bench pods`: ignored in ordinary test runs, run by
//! the bench with `--ignored`, which reads the JSON it writes to
//! `$BATON_BENCH_PODS_OUT`.
//!
//! Each pod's latency is from the watch event that first shows it to the
//! one that first shows it Ready, both seen by one `kubectl get --watch`,
//! so the clock and the observer are the same for both ends.

use std::collections::HashMap;
use std::io::BufReader;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use baton_e2e::Stack;

/// Percentile `p` (0–100) of sorted samples (nearest rank).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Which part of the node's software a process is, by its command name
/// (`None`: not counted).
fn component(comm: &str) -> Option<&'static str> {
    Some(match comm {
        "containerd" => "containerd (with the CNI plugins it runs)",
        c if c.starts_with("containerd-shim") => "containerd shims (with their runc runs)",
        "baton-node" => "baton-node",
        "baton-control" => "baton-control (API server, scheduler, controllers)",
        "etcd" => "etcd",
        "echo" | "pause" => "the pods' own processes",
        _ => return None,
    })
}

/// CPU time used so far by every process of a counted component: pid →
/// (component, seconds), the process's own time plus that of its reaped
/// children (a shim's `runc` runs, containerd's CNI plugins).
fn cpu_snapshot() -> HashMap<u32, (&'static str, f64)> {
    // /proc/<pid>/stat counts in USER_HZ, which is 100 on Linux.
    const TICKS_PER_SECOND: f64 = 100.0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = baton_e2e::proc_stat(pid)?;
            let component = component(&stat.comm)?;
            Some((pid, (component, stat.cpu_ticks as f64 / TICKS_PER_SECOND)))
        })
        .collect()
}

/// CPU seconds per component between two snapshots (a process that
/// started in between counts from zero).
fn cpu_between(
    before: &HashMap<u32, (&'static str, f64)>,
    after: &HashMap<u32, (&'static str, f64)>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut seconds: std::collections::BTreeMap<&str, f64> = Default::default();
    for (pid, (component, now)) in after {
        let then = before
            .get(pid)
            .filter(|(c, _)| c == component)
            .map_or(0.0, |(_, t)| *t);
        *seconds.entry(component).or_default() += (now - then).max(0.0);
    }
    seconds
        .into_iter()
        .map(|(c, s)| (c.to_owned(), serde_json::json!((s * 100.0).round() / 100.0)))
        .collect()
}

/// What one run measured.
struct Run {
    /// Each pod's creation → Ready latency in seconds, sorted.
    latencies: Vec<f64>,
    /// CPU seconds per component from the `kubectl apply` to the last pod
    /// Ready.
    cpu: serde_json::Map<String, serde_json::Value>,
    /// Wall-clock seconds of that window.
    window: f64,
}

/// Starts `pods` echo pods spread over `nodes` nodes and measures each
/// pod's creation → Ready latency and what the node software spent on it.
fn measure(nodes: usize, pods: usize) -> Run {
    let c = Stack::start(nodes);
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args([
            "get",
            "pods",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl watch");
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(String, bool, Instant)>();
    std::thread::spawn(move || {
        let events = serde_json::Deserializer::from_reader(BufReader::new(stdout))
            .into_iter::<serde_json::Value>();
        for event in events.flatten() {
            let object = &event["object"];
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ready = object["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if tx.send((name, ready, Instant::now())).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let manifest: String = (0..pods)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: bench-{i}}}\nspec:\n  nodeName: baton-node-{}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: echo\n    image: baton.local/echo:1\n    readinessProbe:\n      tcpSocket: {{port: 8080}}\n      periodSeconds: 1\n",
                i % nodes + 1
            )
        })
        .collect();
    let cpu_before = cpu_snapshot();
    let window_start = Instant::now();
    c.apply(&manifest);
    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut ready: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while ready.len() < pods && Instant::now() < deadline {
        let Ok((name, is_ready, at)) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        created.entry(name.clone()).or_insert(at);
        if is_ready {
            ready.entry(name).or_insert(at);
        }
    }
    let window = window_start.elapsed().as_secs_f64();
    let cpu = cpu_between(&cpu_before, &cpu_snapshot());
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(ready.len(), pods, "not every pod became Ready within 300 s");
    let mut latencies: Vec<f64> = ready
        .iter()
        .map(|(name, r)| r.duration_since(created[name]).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    Run {
        latencies,
        cpu,
        window,
    }
}

#[test]
#[ignore = "a benchmark: run by `cargo xtask bench pods`"]
fn pod_startup_latency() {
    let mut results = Vec::new();
    for (nodes, pods) in [(1, 30), (3, 90)] {
        let run = measure(nodes, pods);
        let samples = &run.latencies;
        let (p50, p99) = (percentile(samples, 50.0), percentile(samples, 99.0));
        println!(
            "{pods} pods on {nodes} node(s): p50 {p50:.3} s, p99 {p99:.3} s, max {:.3} s",
            samples.last().unwrap()
        );
        println!(
            "CPU seconds in the {:.2} s from apply to the last Ready: {:?}",
            run.window, run.cpu
        );
        results.push(serde_json::json!({
            "nodes": nodes,
            "pods": pods,
            "p50_seconds": p50,
            "p99_seconds": p99,
            "max_seconds": samples.last(),
            "samples_seconds": samples,
            "window_seconds": (run.window * 100.0).round() / 100.0,
            "cpu_seconds": run.cpu,
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        }));
    }
    if let Some(out) = std::env::var_os("BATON_BENCH_PODS_OUT") {
        std::fs::write(
            out,
            serde_json::to_vec_pretty(&serde_json::json!({ "runs": results })).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn cpu_is_counted_per_component_from_the_first_snapshot() {
    let before = HashMap::from([(1, ("etcd", 2.0)), (2, ("baton-node", 1.0))]);
    let after = HashMap::from([
        (1, ("etcd", 2.5)),
        (2, ("baton-node", 1.25)),
        (3, ("baton-node", 0.5)),
    ]);
    let cpu = cpu_between(&before, &after);
    assert_eq!(cpu["etcd"], 0.5);
    assert_eq!(cpu["baton-node"], 0.75);
    assert_eq!(
        component("containerd-shim"),
        component("containerd-shim-runc-v2")
    );
    assert_eq!(component("kubectl"), None);
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let samples: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&samples, 50.0), 50.0);
    assert_eq!(percentile(&samples, 99.0), 99.0);
    assert_eq!(percentile(&[0.5], 99.0), 0.5);
}
