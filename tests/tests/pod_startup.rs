//! Pod startup latency (creation → Ready, images present), the measurement
//! behind `cargo xtask bench pods`: ignored in ordinary test runs, run by
//! the bench with `--ignored`, which reads the JSON it writes to
//! `$BATON_BENCH_PODS_OUT`.
//!
//! Each pod's latency is from the watch event that first shows it to the
//! one that first shows it Ready, both seen by one watch, so the clock and
//! the observer are the same for both ends. Before the pods go through
//! baton, and again after baton has removed them, the same pods are
//! started on the same cluster by calling the nodes' runtimes directly
//! ([`runtime_alone`]): the floor of that hour.

#[path = "pod_startup/machine.rs"]
mod machine;
#[path = "pod_startup/operations.rs"]
mod operations;
#[path = "pod_startup/runtime_alone.rs"]
mod runtime_alone;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use baton_e2e::Stack;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;

/// Create requests in flight together.
const CREATES_IN_FLIGHT: usize = 8;
/// How long the CPU of the running pods' node software is counted.
const STEADY: Duration = Duration::from_secs(10);
/// Busy share of the CPUs (over 2 s) below which the machine counts as
/// quiet before the pods are created.
const QUIET_BUSY: f64 = 0.15;

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
        // This test's binary (`pod_startup-<hash>`, cut to 15 bytes).
        c if c.starts_with("pod_startup") => "the benchmark's client (creating and watching)",
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

/// When the benchmark's watch first showed a pod in each state.
#[derive(Default)]
struct Seen {
    created: Option<Instant>,
    /// Every container running (the kubelet wrote `state.running`).
    running: Option<Instant>,
    ready: Option<Instant>,
}

/// What one run measured.
struct Run {
    /// Each pod's creation → Ready latency in seconds, sorted.
    latencies: Vec<f64>,
    /// Each pod's creation → containers running, sorted.
    to_running: Vec<f64>,
    /// Each pod's containers running → Ready (the readiness probe), sorted.
    running_to_ready: Vec<f64>,
    /// CPU seconds per component from the first create request to the last
    /// pod Ready.
    cpu: serde_json::Map<String, serde_json::Value>,
    /// Wall-clock seconds of that window.
    window: f64,
    /// CPU seconds per component over [`STEADY`] once every pod is Ready.
    steady_cpu: serde_json::Map<String, serde_json::Value>,
    /// How fast the machine was just before ([`machine::speed`]).
    machine: serde_json::Value,
    /// The nodes' CRI calls and volume set-ups in that window
    /// ([`operations::Steps::until`]).
    steps: serde_json::Value,
    /// The same pods started through the runtimes alone, just before.
    runtime_alone: runtime_alone::RuntimeAlone,
    /// And again once baton's pods were deleted.
    runtime_alone_after: runtime_alone::RuntimeAlone,
}

/// The benchmark's pod `i` of `nodes`: the echo image, bound to a node,
/// with a TCP readiness probe every second.
fn bench_pod(i: usize, nodes: usize) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("bench-{i}")},
        "spec": {
            "nodeName": format!("baton-node-{}", i % nodes + 1),
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "echo",
                "image": "baton.local/echo:1",
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            }],
        },
    }))
    .expect("a valid pod")
}

fn all_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            !cs.is_empty()
                && cs
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Sorted seconds between two of each pod's instants.
fn spans(
    seen: &HashMap<String, Seen>,
    from: fn(&Seen) -> Option<Instant>,
    to: fn(&Seen) -> Option<Instant>,
) -> Vec<f64> {
    let mut spans: Vec<f64> = seen
        .values()
        .filter_map(|s| Some(to(s)?.saturating_duration_since(from(s)?).as_secs_f64()))
        .collect();
    spans.sort_by(f64::total_cmp);
    spans
}

/// Creates `pods` echo pods spread over `nodes` nodes through the API (as
/// a controller or a load generator would: requests in flight together,
/// no client-side work between them) and measures each pod's creation →
/// Ready latency and what the node software spent on it.
///
/// The client is this process, not kubectl: on this machine a client shares
/// the cores with the cluster, and `kubectl apply` spends about a CPU second
/// (OpenAPI documents, three-way merge bookkeeping) while the pods start;
/// a real cluster's client runs elsewhere.
async fn measure(nodes: usize, pods: usize) -> Run {
    let c = Stack::start(nodes);
    let kubeconfig = Kubeconfig::read_from(&c.kubeconfig).expect("the admin kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration");
    let client = kube::Client::try_from(config).expect("a client");
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let runtime_alone = runtime_alone::measure(&c, &api, nodes, pods, "before").await;
    baton_e2e::nodes::wait_nodes_ready(&c.plane, nodes, Duration::from_secs(60))
        .expect("the nodes Ready again after their kubelets restarted");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Pod, Instant)>();
    let events = watcher(api.clone(), watcher::Config::default());
    let watching = tokio::spawn(async move {
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event
                && tx.send((pod, Instant::now())).is_err()
            {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let machine = machine::speed();
    // The bring-up (and a previous run's teardown) keeps the cores busy for
    // a while; the pods start on a quiet machine. This blocks the runtime,
    // which has nothing to do before the first create.
    let (waited, settled) =
        baton_e2e::wait_until_quiet(QUIET_BUSY, Duration::from_secs(2), Duration::from_secs(120));
    println!(
        "  waited {:.1} s for the machine to settle{}",
        waited.as_secs_f64(),
        if settled { "" } else { " (it did not)" }
    );

    let steps_before = operations::scrape_nodes(&client).await;
    let cpu_before = cpu_snapshot();
    let window_start = Instant::now();
    let created = futures::stream::iter((0..pods).map(|i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &bench_pod(i, nodes))
                .await
        }
    }))
    .buffer_unordered(CREATES_IN_FLIGHT)
    .collect::<Vec<_>>()
    .await;
    for result in created {
        result.expect("creating a bench pod");
    }

    let mut seen: HashMap<String, Seen> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.values().filter(|s| s.ready.is_some()).count() < pods && Instant::now() < deadline {
        let Ok(Some((pod, at))) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await
        else {
            continue;
        };
        let entry = seen
            .entry(pod.metadata.name.clone().unwrap_or_default())
            .or_default();
        entry.created.get_or_insert(at);
        if all_running(&pod) {
            entry.running.get_or_insert(at);
        }
        if is_ready(&pod) {
            entry.ready.get_or_insert(at);
        }
    }
    let window = window_start.elapsed().as_secs_f64();
    let cpu = cpu_between(&cpu_before, &cpu_snapshot());
    let steps = steps_before.until(&operations::scrape_nodes(&client).await);
    watching.abort();
    let ready = seen.values().filter(|s| s.ready.is_some()).count();
    assert_eq!(ready, pods, "not every pod became Ready within 300 s");
    // What the node software costs while the pods just run: probes,
    // relists, resyncs, leases.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady_before = cpu_snapshot();
    tokio::time::sleep(STEADY).await;
    let steady_cpu = cpu_between(&steady_before, &cpu_snapshot());
    delete_all(&api).await;
    let runtime_alone_after = runtime_alone::measure(&c, &api, nodes, pods, "after").await;
    Run {
        latencies: spans(&seen, |s| s.created, |s| s.ready),
        to_running: spans(&seen, |s| s.created, |s| s.running),
        running_to_ready: spans(&seen, |s| s.running, |s| s.ready),
        cpu,
        window,
        steady_cpu,
        machine,
        steps,
        runtime_alone,
        runtime_alone_after,
    }
}

/// Deletes every pod of `api` and waits until the kubelets have removed
/// them (a pod leaves the API once its sandbox is gone from the runtime).
async fn delete_all(api: &Api<Pod>) {
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("deleting the bench pods");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = api
            .list_metadata(&ListParams::default())
            .await
            .expect("listing the bench pods")
            .items
            .len();
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} bench pods still there after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A runtime-alone burst as the report has it.
fn alone_json(alone: &runtime_alone::RuntimeAlone) -> serde_json::Value {
    serde_json::json!({
        "p50_seconds": percentile(&alone.latencies, 50.0),
        "p99_seconds": percentile(&alone.latencies, 99.0),
        "max_seconds": alone.latencies.last(),
        "samples_seconds": alone.latencies,
        "window_seconds": (alone.window * 100.0).round() / 100.0,
        "cpu_seconds": alone.cpu,
        "steps": alone.steps,
    })
}

#[test]
#[ignore = "a benchmark: run by `cargo xtask bench pods`"]
fn pod_startup_latency() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut results = Vec::new();
    for (nodes, pods) in [(1, 30), (3, 90)] {
        let run = runtime.block_on(measure(nodes, pods));
        let samples = &run.latencies;
        let (p50, p99) = (percentile(samples, 50.0), percentile(samples, 99.0));
        println!(
            "{pods} pods on {nodes} node(s): p50 {p50:.3} s, p99 {p99:.3} s, max {:.3} s",
            samples.last().unwrap()
        );
        println!(
            "  creation → running p50 {:.3} s, p99 {:.3} s; running → Ready p50 {:.3} s, p99 {:.3} s",
            percentile(&run.to_running, 50.0),
            percentile(&run.to_running, 99.0),
            percentile(&run.running_to_ready, 50.0),
            percentile(&run.running_to_ready, 99.0),
        );
        println!(
            "  CPU seconds in the {:.2} s from the first create to the last Ready: {:?}",
            run.window, run.cpu
        );
        println!(
            "  CPU seconds in {} s with every pod running: {:?}",
            STEADY.as_secs(),
            run.steady_cpu
        );
        for (round, alone) in [
            ("before", &run.runtime_alone),
            ("after", &run.runtime_alone_after),
        ] {
            println!(
                "  the runtime alone ({round}): p50 {:.3} s, p99 {:.3} s; CPU seconds in its {:.2} s: {:?}",
                percentile(&alone.latencies, 50.0),
                percentile(&alone.latencies, 99.0),
                alone.window,
                alone.cpu
            );
        }
        let phase = |samples: &[f64]| {
            serde_json::json!({
                "p50_seconds": percentile(samples, 50.0),
                "p99_seconds": percentile(samples, 99.0),
                "samples_seconds": samples,
            })
        };
        results.push(serde_json::json!({
            "nodes": nodes,
            "pods": pods,
            "p50_seconds": p50,
            "p99_seconds": p99,
            "max_seconds": samples.last(),
            "samples_seconds": samples,
            "creation_to_running": phase(&run.to_running),
            "running_to_ready": phase(&run.running_to_ready),
            "window_seconds": (run.window * 100.0).round() / 100.0,
            "cpu_seconds": run.cpu,
            "steps": run.steps,
            "machine": run.machine,
            "steady_seconds": STEADY.as_secs(),
            "steady_cpu_seconds": run.steady_cpu,
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "runtime_alone": alone_json(&run.runtime_alone),
            "runtime_alone_after": alone_json(&run.runtime_alone_after),
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
