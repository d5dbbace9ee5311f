//! `cargo xtask bench scheduler`: scheduling throughput and latency of
//! `baton-control scheduler` against the real API server on real etcd, on
//! this machine: N fake nodes (Node objects, Ready, no kubelets), then M
//! pods created at a fixed rate; each pod's time from the create request to
//! its binding being seen on a watch. Writes
//! `target/baton/bench/scheduler.json` and the "Scheduler" section of
//! `docs/benchmarks.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::loopback::LoopbackControlPlane;
use super::report::{self, Proc, percentile};

const SECTION: &str = "## Scheduler";

/// Options of the benchmark.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchSchedulerArgs {
    /// Fake nodes.
    #[arg(long, default_value_t = 500)]
    pub nodes: usize,
    /// Pods to schedule.
    #[arg(long, default_value_t = 5000)]
    pub pods: usize,
    /// Pods created per second (open loop; 0 = as fast as possible).
    #[arg(long, default_value_t = 300)]
    pub rate: u32,
    /// Create requests in flight at most.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Use an already built baton-control instead of building one.
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Do not rewrite docs/benchmarks.md.
    #[arg(long)]
    pub no_docs: bool,
}

/// Runs the benchmark.
pub fn run(args: BenchSchedulerArgs) -> Result<()> {
    let bin = match &args.binary {
        Some(b) => b.clone(),
        None => report::release_binary("baton-control")?,
    };
    ensure!(bin.exists(), "{} does not exist", bin.display());
    let run_dir = report::results_dir()?.join(format!("scheduler-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(measure(&args, &bin, &run_dir));
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("logs are in {}", run_dir.display());
            return Err(e);
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!(
        "written to {}",
        report::write_json("scheduler", &report)?.display()
    );
    if !args.no_docs {
        report::write_section(&report::docs_path(), SECTION, &render(&report))?;
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(())
}

async fn measure(args: &BenchSchedulerArgs, bin: &Path, dir: &Path) -> Result<serde_json::Value> {
    let log =
        |name: &str| -> Result<Stdio> { Ok(Stdio::from(std::fs::File::create(dir.join(name))?)) };
    let plane = LoopbackControlPlane::start(bin, dir, &dir.join("etcd"))?;
    let sched_kc = dir.join("scheduler.conf");
    plane.issue_kubeconfig("system:kube-scheduler", &sched_kc)?;
    let client = plane.client().await?;

    println!("creating {} nodes…", args.nodes);
    let nodes: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..args.nodes)
        .map(|i| {
            let nodes = nodes.clone();
            async move {
                let name = format!("bench-node-{i:04}");
                let node: Node = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
                }))?;
                nodes.create(&PostParams::default(), &node).await?;
                let cap = json!({"cpu": "32", "memory": "128Gi", "pods": "110"});
                let status = json!({"status": {"capacity": cap, "allocatable": cap,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": jiff::Timestamp::now().to_string()}]}});
                nodes.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;

    let _sched = Proc(
        Command::new(bin)
            .args(["scheduler", "--kubeconfig", sched_kc.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log("scheduler.log")?)
            .spawn()
            .context("starting the scheduler")?,
    );
    // The scheduler is ready when it holds its lease.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    let deadline = Instant::now() + Duration::from_secs(30);
    while leases
        .get_opt("kube-scheduler")
        .await
        .ok()
        .flatten()
        .is_none()
    {
        ensure!(
            Instant::now() < deadline,
            "the scheduler did not take its lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Bindings as seen by a watch.
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let ns = "default";
    let watch = {
        let (client, bound) = (client.clone(), bound.clone());
        tokio::spawn(async move {
            let pods: Api<Pod> = Api::namespaced(client, ns);
            let mut w = std::pin::pin!(
                watcher::watcher(pods, watcher::Config::default().labels("bench=scheduler"))
                    .default_backoff()
            );
            while let Some(ev) = w.next().await {
                let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev else {
                    continue;
                };
                if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                    let now = Instant::now();
                    bound
                        .lock()
                        .unwrap()
                        .entry(p.metadata.name.clone().unwrap_or_default())
                        .or_insert(now);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!("creating {} pods at {} /s…", args.pods, args.rate);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    let interval = if args.rate == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(1.0 / args.rate as f64)
    };
    let errors = Arc::new(Mutex::new(0usize));
    futures::stream::iter(0..args.pods)
        .map(|i| {
            let (pods, created, errors) = (pods.clone(), created.clone(), errors.clone());
            async move {
                // Open loop: pod i is due at start + i × interval.
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let name = format!("bench-pod-{i:05}");
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"bench": "scheduler"}},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
                }))
                .expect("pod");
                let t = Instant::now();
                match pods.create(&PostParams::default(), &pod).await {
                    Ok(_) => {
                        created.lock().unwrap().insert(name, t);
                    }
                    Err(_) => *errors.lock().unwrap() += 1,
                }
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let created_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let n = bound.lock().unwrap().len();
        if n >= created.lock().unwrap().len() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {n} of {} pods bound after {}s",
            args.pods,
            args.timeout
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch.abort();
    let created = created.lock().unwrap().clone();
    let bound = bound.lock().unwrap().clone();
    let mut lat: Vec<f64> = created
        .iter()
        .filter_map(|(n, t)| {
            bound
                .get(n)
                .map(|b| b.saturating_duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let first = created.values().min().copied().unwrap_or(start);
    let last = bound.values().max().copied().unwrap_or(start);
    let span = last.saturating_duration_since(first).as_secs_f64();
    let throughput = lat.len() as f64 / span.max(1e-9);
    Ok(json!({
        "benchmark": "scheduler",
        "nodes": args.nodes,
        "pods": args.pods,
        "create_rate_per_s": args.rate,
        "create_errors": *errors.lock().unwrap(),
        "creation_took_s": (created_in.as_secs_f64() * 100.0).round() / 100.0,
        "scheduled": lat.len(),
        "pods_per_second": (throughput * 10.0).round() / 10.0,
        "latency_ms": {
            "p50": percentile(&lat, 50.0).round(),
            "p90": percentile(&lat, 90.0).round(),
            "p99": percentile(&lat, 99.0).round(),
            "max": lat.last().copied().unwrap_or(0.0).round(),
        },
        "target": {"pods_per_second": 300, "p99_ms": 1000},
        "machine": report::machine(),
        "when": report::now(),
    }))
}

/// The "Scheduler" section of docs/benchmarks.md.
fn render(r: &serde_json::Value) -> String {
    let m = &r["machine"];
    let l = &r["latency_ms"];
    let section = format!(
        "{SECTION}\n\n\
         `cargo xtask bench scheduler`: {nodes} fake nodes (Node objects, Ready, no kubelets), {pods} pods created at {rate}/s \
         by a client on loopback; the real `baton-control apiserver` on a real etcd, one `baton-control scheduler` \
         (release build) binding through `pods/binding`. Latency is from the create request to the binding seen on a watch.\n\n\
         | pods/s | p50 | p90 | p99 | max | target |\n| --- | --- | --- | --- | --- | --- |\n\
         | {tp} | {p50} ms | {p90} ms | {p99} ms | {max} ms | ≥ 300 pods/s, p99 < 1000 ms |\n\n\
         Machine: {cpu}, {cores} cores, {mem} GiB, Linux {kernel}, {etcd}; load average {load} when it started \
         (etcd, the API server, the scheduler and the load client share the cores); measured {when}. \
         Raw numbers: `target/baton/bench/scheduler.json`.\n",
        nodes = r["nodes"],
        pods = r["pods"],
        rate = r["create_rate_per_s"],
        tp = r["pods_per_second"],
        p50 = l["p50"],
        p90 = l["p90"],
        p99 = l["p99"],
        max = l["max"],
        cpu = m["cpu"].as_str().unwrap_or(""),
        cores = m["cores"],
        mem = m["memory_gib"],
        kernel = m["kernel"].as_str().unwrap_or(""),
        etcd = m["etcd"].as_str().unwrap_or(""),
        when = r["when"].as_str().unwrap_or(""),
        load = m["load_average_1m"].as_str().unwrap_or(""),
    );
    section
}
