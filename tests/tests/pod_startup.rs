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

/// Starts `pods` echo pods spread over `nodes` nodes and returns each
/// pod's creation → Ready latency in seconds.
fn measure(nodes: usize, pods: usize) -> Vec<f64> {
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
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(ready.len(), pods, "not every pod became Ready within 300 s");
    let mut latencies: Vec<f64> = ready
        .iter()
        .map(|(name, r)| r.duration_since(created[name]).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

#[test]
#[ignore = "a benchmark: run by `cargo xtask bench pods`"]
fn pod_startup_latency() {
    let mut results = Vec::new();
    for (nodes, pods) in [(1, 30), (3, 90)] {
        let samples = measure(nodes, pods);
        let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
        println!(
            "{pods} pods on {nodes} node(s): p50 {p50:.3} s, p99 {p99:.3} s, max {:.3} s",
            samples.last().unwrap()
        );
        results.push(serde_json::json!({
            "nodes": nodes,
            "pods": pods,
            "p50_seconds": p50,
            "p99_seconds": p99,
            "max_seconds": samples.last(),
            "samples_seconds": samples,
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
fn percentiles_use_the_nearest_rank() {
    let samples: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&samples, 50.0), 50.0);
    assert_eq!(percentile(&samples, 99.0), 99.0);
    assert_eq!(percentile(&[0.5], 99.0), 0.5);
}
