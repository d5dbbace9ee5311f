//! `cargo xtask bench api`: the API server's create/get/list/watch
//! throughput and latency with 10,000 pods, and its resident memory — the
//! real `baton-control apiserver` (release build) on a real etcd, driven by
//! kube-rs over HTTPS on loopback. Writes `target/baton/bench/api.json` and
//! the "API server" section of `docs/benchmarks.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use super::authorization;
use super::loopback::LoopbackControlPlane;
use super::report::{self, round2, rss_mib, summary};

const SECTION: &str = "## API server";

/// Options of the benchmark.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchApiArgs {
    /// Pods stored.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Requests in flight during the throughput phases.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Requests of the one-at-a-time latency phases (create and get).
    #[arg(long, default_value_t = 1_000)]
    pub latency_samples: usize,
    /// Full LISTs of all pods to time.
    #[arg(long, default_value_t = 10)]
    pub lists: usize,
    /// Directory for etcd's data (default: a directory under /dev/shm when
    /// it exists, so the numbers measure the API server, not the disk).
    #[arg(long)]
    pub etcd_dir: Option<PathBuf>,
    /// Use an already built baton-control instead of building one.
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Do not rewrite docs/benchmarks.md.
    #[arg(long)]
    pub no_docs: bool,
}

/// A pod as a Deployment's ReplicaSet creates it (labels, owner, one
/// container with ports, resources and probes), about 1.5 KiB stored.
fn pod(i: usize) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("bench-{i:05}"),
            "labels": {"app": "bench", "shard": (i % 10).to_string(), "pod-template-hash": "5d8f7c9b6d"},
            "annotations": {"bench.baton.dev/index": i.to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "bench-5d8f7c9b6d", "uid": "0b7c3a3e-2f57-4f2e-9d51-5f4b8a1f3c21", "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "nginx:1.14.2",
                "ports": [{"containerPort": 80, "name": "http"}],
                "env": [{"name": "MODE", "value": "bench"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 5}
            }]
        }
    }))?)
}

/// Runs the benchmark.
pub fn run(args: BenchApiArgs) -> Result<()> {
    let bin = match &args.binary {
        Some(b) => b.clone(),
        None => report::release_binary("baton-control")?,
    };
    ensure!(bin.exists(), "{} does not exist", bin.display());
    let run_dir = report::results_dir()?.join(format!("api-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let etcd_base = match &args.etcd_dir {
        Some(d) => d.clone(),
        None if Path::new("/dev/shm").is_dir() => {
            PathBuf::from(format!("/dev/shm/baton-bench-api-{}", std::process::id()))
        }
        None => run_dir.join("etcd"),
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut report = measure(&args, &bin, &run_dir, &etcd_base).await?;
            report["authorization"] =
                authorization::measure(&bin, &run_dir, &etcd_base, args.latency_samples, pod)
                    .await?;
            Ok::<_, anyhow::Error>(report)
        });
    let _ = std::fs::remove_dir_all(&etcd_base);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("logs are in {}", run_dir.display());
            return Err(e);
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("wrote {}", report::write_json("api", &report)?.display());
    if !args.no_docs {
        report::write_section(&report::docs_path(), SECTION, &render(&report))?;
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(())
}

/// Runs `n` requests with `concurrency` in flight; returns per-request
/// latencies (ms) and the wall time.
async fn concurrent<F, Fut>(n: usize, concurrency: usize, f: F) -> Result<(Vec<f64>, Duration)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let started = Instant::now();
    let lat = futures::stream::iter(0..n)
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                fut.await?;
                Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<f64>>()
        .await?;
    Ok((lat, started.elapsed()))
}

async fn measure(
    args: &BenchApiArgs,
    bin: &Path,
    dir: &Path,
    etcd_dir: &Path,
) -> Result<serde_json::Value> {
    let n = args.pods;
    ensure!(
        args.latency_samples <= n,
        "--latency-samples must not exceed --pods"
    );
    let plane = LoopbackControlPlane::start(bin, dir, etcd_dir)?;
    let api_pid = plane.apiserver.0.id();
    let c = plane.client().await?;
    let rss_idle = rss_mib(api_pid);
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let pods = Arc::new(pods);
    let templates: Arc<Vec<Pod>> = Arc::new((0..n).map(pod).collect::<Result<_>>()?);
    let pp = PostParams::default();

    // A watch running through the whole create phase counts every event.
    let watch_pods = pods.clone();
    let watcher = tokio::spawn(async move {
        let mut stream = watch_pods
            .watch(&WatchParams::default().timeout(290), "0")
            .await?
            .boxed();
        let mut seen = 0usize;
        let mut first: Option<Instant> = None;
        while let Some(ev) = stream.try_next().await? {
            if let WatchEvent::Added(_) = ev {
                first.get_or_insert_with(Instant::now);
                seen += 1;
                if seen == n {
                    break;
                }
            }
        }
        Ok::<(usize, Option<Instant>, Instant), anyhow::Error>((seen, first, Instant::now()))
    });

    // Create: one at a time for latency, then the rest concurrently.
    let seq = args.latency_samples;
    let mut create_seq = Vec::with_capacity(seq);
    for i in 0..seq {
        let t = Instant::now();
        pods.create(&pp, &templates[i]).await?;
        create_seq.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (create_conc, create_wall) = {
        let pods = pods.clone();
        let templates = templates.clone();
        concurrent(n - seq, args.concurrency, move |i| {
            let pods = pods.clone();
            let templates = templates.clone();
            async move {
                pods.create(&PostParams::default(), &templates[seq + i])
                    .await?;
                Ok(())
            }
        })
        .await?
    };
    let (watched, first_event, last_event) =
        tokio::time::timeout(Duration::from_secs(60), watcher).await???;
    let watch_rate = match first_event {
        Some(f) if watched > 1 => {
            watched as f64 / last_event.duration_since(f).as_secs_f64().max(1e-9)
        }
        _ => 0.0,
    };
    let rss_stored = rss_mib(api_pid);

    // Get: one at a time, then concurrently.
    let mut get_seq = Vec::with_capacity(seq);
    for i in 0..seq {
        let name = format!("bench-{:05}", (i * 7919) % n);
        let t = Instant::now();
        pods.get(&name).await?;
        get_seq.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (get_conc, get_wall) = {
        let pods = pods.clone();
        concurrent(n, args.concurrency, move |i| {
            let pods = pods.clone();
            async move {
                pods.get(&format!("bench-{:05}", (i * 104_729) % n)).await?;
                Ok(())
            }
        })
        .await?
    };

    // LIST of every pod: a consistent read (resourceVersion unset), and a
    // read at any revision (resourceVersion=0) as informers do.
    let mut list_consistent = Vec::new();
    let mut list_any = Vec::new();
    for _ in 0..args.lists {
        let t = Instant::now();
        let l = pods.list(&ListParams::default()).await?;
        list_consistent.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(
            l.items.len() == n,
            "LIST returned {} pods, expected {n}",
            l.items.len()
        );
        let t = Instant::now();
        let l = pods.list(&ListParams::default().match_any()).await?;
        list_any.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(
            l.items.len() == n,
            "LIST returned {} pods, expected {n}",
            l.items.len()
        );
    }
    // A paged LIST as kubectl reads (500 per page, from etcd).
    let t = Instant::now();
    let mut lp = ListParams::default().limit(500);
    let mut total = 0;
    loop {
        let page = pods.list(&lp).await?;
        total += page.items.len();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    let paged_ms = t.elapsed().as_secs_f64() * 1000.0;
    ensure!(total == n, "paged LIST returned {total} pods");
    let rss_after_lists = rss_mib(api_pid);

    // Watch from resourceVersion 0: every pod as an initial ADDED event.
    let t = Instant::now();
    let mut stream = pods
        .watch(&WatchParams::default().timeout(60), "0")
        .await?
        .boxed();
    let mut initial = 0;
    while let Some(ev) = stream.try_next().await? {
        if let WatchEvent::Added(_) = ev {
            initial += 1;
            if initial == n {
                break;
            }
        }
    }
    let initial_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(stream);

    let mut all_creates = create_seq.clone();
    all_creates.extend(create_conc.iter().copied());
    let mut all_gets = get_seq.clone();
    all_gets.extend(get_conc.iter().copied());
    let when = report::now();
    // Other work on the machine shows in the tails: record the load.
    let load = report::load_average();
    Ok(json!({
        "when": when,
        "machine": report::machine(),
        "load_average_1m_at_end": load,
        "pods": n,
        "concurrency": args.concurrency,
        "etcd_data": if etcd_dir.starts_with("/dev/shm") { "tmpfs (/dev/shm)" } else { "disk" },
        "create": {
            "sequential_ms": summary(create_seq),
            "concurrent_ms": summary(create_conc.clone()),
            "all_ms": summary(all_creates),
            "per_second": round2((n - seq) as f64 / create_wall.as_secs_f64()),
        },
        "get": {
            "sequential_ms": summary(get_seq),
            "concurrent_ms": summary(get_conc),
            "all_ms": summary(all_gets),
            "per_second": round2(n as f64 / get_wall.as_secs_f64()),
        },
        "list": {
            "consistent_ms": summary(list_consistent),
            "any_revision_ms": summary(list_any),
            "paged_500_ms": round2(paged_ms),
        },
        "watch": {
            "events_during_creates": watched,
            "events_per_second_during_creates": round2(watch_rate),
            "initial_events_ms": round2(initial_ms),
            "initial_events_per_second": round2(n as f64 / (initial_ms / 1000.0)),
        },
        "rss_mib": {"idle": rss_idle, "with_pods": rss_stored, "after_lists": rss_after_lists},
    }))
}

fn render(r: &serde_json::Value) -> String {
    let m = &r["machine"];
    let ms = |v: &serde_json::Value| format!("{} ms", v);
    let section = format!(
        "{SECTION}\n\n\
         `cargo xtask bench api`: {pods} pods (about 1.5 KiB each, as a ReplicaSet creates them) written to and read from \
         the real `baton-control apiserver` (release build) on a real etcd (data on {etcd_data}), by kube-rs over HTTPS \
         on loopback. Latencies are per request as the client sees them: first {seq} requests one at a time, the rest \
         with {conc} in flight.\n\n\
         | operation | throughput | p50 | p99 | target |\n| --- | --- | --- | --- | --- |\n\
         | create (one at a time) | | {cs50} | {cs99} | p99 < 10 ms |\n\
         | create ({conc} in flight) | {cps}/s | {cc50} | {cc99} | |\n\
         | get (one at a time) | | {gs50} | {gs99} | p99 < 5 ms |\n\
         | get ({conc} in flight) | {gps}/s | {gc50} | {gc99} | |\n\
         | LIST all {pods} pods, consistent | | {lc50} | {lc99} | < 1 s |\n\
         | LIST all {pods} pods, resourceVersion=0 | | {la50} | {la99} | < 1 s |\n\
         | LIST in pages of 500 (kubectl) | | {paged} ms total | | |\n\
         | watch events while creating | {wps}/s | | | |\n\
         | watch from 0: {pods} initial events | {ips}/s | {init} ms total | | |\n\n\
         API server resident memory: {idle} MiB idle, {stored} MiB with {pods} pods stored, {after} MiB after the LISTs \
         (target < 150 MiB).\n\n\
         Machine: {cpu}, {cores} cores, {mem} GiB, Linux {kernel}, {etcd}; measured {when} \
         (1-minute load average {load} at the end of the run: client, server and etcd share the cores with whatever else runs). \
         Raw numbers: `target/baton/bench/api.json`.\n",
        pods = r["pods"],
        etcd_data = r["etcd_data"].as_str().unwrap_or(""),
        seq = r["create"]["sequential_ms"]["n"],
        conc = r["concurrency"],
        cs50 = ms(&r["create"]["sequential_ms"]["p50"]),
        cs99 = ms(&r["create"]["sequential_ms"]["p99"]),
        cps = r["create"]["per_second"],
        cc50 = ms(&r["create"]["concurrent_ms"]["p50"]),
        cc99 = ms(&r["create"]["concurrent_ms"]["p99"]),
        gs50 = ms(&r["get"]["sequential_ms"]["p50"]),
        gs99 = ms(&r["get"]["sequential_ms"]["p99"]),
        gps = r["get"]["per_second"],
        gc50 = ms(&r["get"]["concurrent_ms"]["p50"]),
        gc99 = ms(&r["get"]["concurrent_ms"]["p99"]),
        lc50 = ms(&r["list"]["consistent_ms"]["p50"]),
        lc99 = ms(&r["list"]["consistent_ms"]["p99"]),
        la50 = ms(&r["list"]["any_revision_ms"]["p50"]),
        la99 = ms(&r["list"]["any_revision_ms"]["p99"]),
        paged = r["list"]["paged_500_ms"],
        wps = r["watch"]["events_per_second_during_creates"],
        ips = r["watch"]["initial_events_per_second"],
        init = r["watch"]["initial_events_ms"],
        idle = r["rss_mib"]["idle"],
        stored = r["rss_mib"]["with_pods"],
        after = r["rss_mib"]["after_lists"],
        cpu = m["cpu"].as_str().unwrap_or(""),
        cores = m["cores"],
        mem = m["memory_gib"],
        kernel = m["kernel"].as_str().unwrap_or(""),
        etcd = m["etcd"].as_str().unwrap_or(""),
        when = r["when"].as_str().unwrap_or(""),
        load = r["load_average_1m_at_end"].as_str().unwrap_or("?"),
    );
    format!("{section}\n{}", authorization::render(&r["authorization"]))
}
