//! `cargo xtask bench dataplane`: baton's eBPF service load balancing
//! against the physical limit (direct pod IP) and against kube-proxy's
//! iptables mode, on a namespace cluster of two nodes with real pods
//! (release builds). For 1, 1,000 and 10,000 services, every path is
//! loaded with wrk — keep-alive (requests/s, p50/p99) and one request per
//! connection (new connections/s); the time from 10,000 Services +
//! EndpointSlices written to the API until baton's datapath serves them,
//! and endpoint-change propagation, are measured too. Each baton service
//! path is also measured against the direct pod IP in paired runs (one
//! client alternating between them, see `paired`), which decide the
//! socket-LB and no-drop targets. Writes
//! `target/baton/bench/dataplane.json`, the "Dataplane" section of
//! docs/benchmarks.md and docs/benchmarks-dataplane.svg.
//!
//! All traffic stays inside the cluster's namespaces; runs are bounded in
//! time (wrk `-d`) and count; the cluster, the iptables rules, cgroups,
//! pins and processes are removed by drop guards, also on failure.

mod iptables;
mod load;
mod paired;
mod plot;
mod probe;
mod profile;
mod programming;
mod render;
mod services;
mod topology;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use serde_json::{Value, json};

use self::load::{Mode, Wrk, WrkResult};
use self::probe::Probe;
use self::services::{ECHO_PORT, Frontend, SERVICE_PORT};
use self::topology::{BATON, BenchCluster, IPTABLES, Place, Pods};
use super::report;

pub use self::iptables::Backend;
pub use self::probe::child_main as probe_main;

const SECTION: &str = "## Dataplane";
/// Busy share of the CPUs (over 2 s) below which the machine counts as
/// quiet before a round of runs.
const QUIET_BUSY: f64 = 0.15;
/// The cluster's pod range, kube-proxy's `--cluster-cidr`.
const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// Options of the benchmark.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchDataplaneArgs {
    /// Service counts to measure at (the measured service is one of them).
    #[arg(long, value_delimiter = ',', default_value = "1,1000,10000")]
    pub services: Vec<usize>,
    /// Seconds of each wrk run.
    #[arg(long, default_value_t = 4)]
    pub duration: u64,
    /// Runs of each point (interleaved over the paths; the median counts).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// wrk connections (keep-alive and new-connection runs alike).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Endpoint changes timed at each service count.
    #[arg(long, default_value_t = 120)]
    pub changes: usize,
    /// Creation requests in flight when writing filler services.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// iptables of the kube-proxy baseline.
    #[arg(long, value_enum, default_value_t = Backend::Nft)]
    pub iptables: Backend,
    /// Length of a slice of the paired runs (service path and direct path
    /// alternating in one client), ms.
    #[arg(long, default_value_t = 150)]
    pub slice_ms: u64,
    /// Recorded slices of each paired run (every two make a pair).
    #[arg(long, default_value_t = 60)]
    pub slices: usize,
    /// Skip the BPF run-time profile.
    #[arg(long)]
    pub no_profile: bool,
    /// Use the binaries (baton-control, baton-node, baton-cni) in this
    /// directory instead of building release ones.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Do not rewrite docs/benchmarks.md and the plot.
    #[arg(long)]
    pub no_docs: bool,
}

/// A measured path: who connects where, through what.
#[derive(Debug, Clone)]
pub struct PathDef {
    pub id: &'static str,
    pub label: &'static str,
    /// "baton" or "iptables".
    pub proxy: &'static str,
    pub place: Place,
    pub url: String,
    /// Measured at the first service count only (it involves no service).
    pub once: bool,
    /// The baton service it goes through (packet-path counters are read
    /// around its runs).
    pub baton_service: bool,
}

fn paths(bench: &BenchCluster, pods: &Pods, baton: Frontend, ipt: Frontend) -> Vec<PathDef> {
    let pod_url = |ip: Ipv4Addr| format!("http://{ip}:{ECHO_PORT}/");
    let vip_url = |fe: Frontend| format!("http://{}:{SERVICE_PORT}/", fe.cluster_ip);
    let np_url = |node: usize, fe: Frontend| {
        format!(
            "http://{}:{}/",
            bench.node(node).address(),
            fe.node_port.unwrap_or(0)
        )
    };
    let def = |id, label, proxy, place, url, once, baton_service| PathDef {
        id,
        label,
        proxy,
        place,
        url,
        once,
        baton_service,
    };
    vec![
        def(
            "direct_pod",
            "direct pod IP, from a pod",
            "baton",
            Place::Pod(pods.client_baton.clone()),
            pod_url(pods.echo_a.ip),
            false,
            false,
        ),
        def(
            "direct_host",
            "direct pod IP, from the node",
            "baton",
            Place::Host(BATON),
            pod_url(pods.echo_a.ip),
            false,
            false,
        ),
        def(
            "socket_pod",
            "ClusterIP, socket LB, from a pod",
            "baton",
            Place::Pod(pods.client_baton.clone()),
            vip_url(baton),
            false,
            true,
        ),
        def(
            "socket_host",
            "ClusterIP, socket LB, from the node",
            "baton",
            Place::Host(BATON),
            vip_url(baton),
            false,
            true,
        ),
        def(
            "tc_pod",
            "ClusterIP, tc LB (no socket hooks), from a pod",
            "baton",
            Place::PodWithoutSocketLb(pods.client_baton.clone()),
            vip_url(baton),
            false,
            true,
        ),
        def(
            "nodeport",
            "NodePort, from outside",
            "baton",
            Place::Outside,
            np_url(BATON, baton),
            false,
            true,
        ),
        def(
            "ipt_direct_pod",
            "direct pod IP, from a pod (kernel routing)",
            "iptables",
            Place::Pod(pods.client_iptables.clone()),
            pod_url(pods.echo_c.ip),
            true,
            false,
        ),
        def(
            "ipt_pod",
            "ClusterIP, iptables, from a pod",
            "iptables",
            Place::Pod(pods.client_iptables.clone()),
            vip_url(ipt),
            false,
            false,
        ),
        def(
            "ipt_host",
            "ClusterIP, iptables, from the node",
            "iptables",
            Place::Host(IPTABLES),
            vip_url(ipt),
            false,
            false,
        ),
        def(
            "ipt_nodeport",
            "NodePort, iptables, from outside",
            "iptables",
            Place::Outside,
            np_url(IPTABLES, ipt),
            false,
            false,
        ),
    ]
}

/// Runs the benchmark.
pub fn run(args: BenchDataplaneArgs) -> Result<()> {
    crate::privileges::require("bench dataplane")?;
    ensure!(
        !args.services.is_empty() && args.services.iter().all(|&n| n >= 1),
        "--services needs counts of at least 1"
    );
    ensure!(
        args.slices >= 2 && args.slices.is_multiple_of(2) && args.slice_ms > 0,
        "--slices needs an even count of at least 2, --slice-ms a positive length"
    );
    crate::images::run(&crate::images::ImagesArgs::default())?;
    let bins = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => crate::build::run(&crate::build::BuildArgs { release: true })?,
    };
    let run_dir = report::results_dir()?.join(format!("dataplane-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let load_start = report::load_average();
    let measured = report::now();
    let body = measure(&args, &bins, &run_dir, &rt)?;
    let mut report = json!({
        "measured": measured,
        "machine": report::machine(),
        "load_average_start": load_start,
        "load_average_end": report::load_average(),
        "wall_seconds": report::round2(started.elapsed().as_secs_f64()),
        "settings": {
            "wrk_seconds": args.duration,
            "repeats": args.repeats,
            "connections": args.connections,
            "threads": args.threads,
            "iptables": args.iptables.name(),
            "paired_slice_ms": args.slice_ms,
            "paired_slices": args.slices,
            "cluster_cidr": CLUSTER_CIDR,
        },
    });
    if let (Some(out), Value::Object(body)) = (report.as_object_mut(), body) {
        out.extend(body);
    }
    report["targets"] = render::targets(&report);
    let path = report::write_json("dataplane", &report)?;
    println!("results: {}", path.display());
    if !args.no_docs {
        let svg = report::docs_path().with_file_name("benchmarks-dataplane.svg");
        std::fs::write(&svg, plot::svg(&report))
            .with_context(|| format!("writing {}", svg.display()))?;
        report::write_section(&report::docs_path(), SECTION, &render::section(&report))?;
        println!(
            "docs: {} and {}",
            report::docs_path().display(),
            svg.display()
        );
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(())
}

/// The order the counts are visited in: the smallest, then the largest
/// (so that step is the big burst of writes), then the rest downwards.
fn visit_order(counts: &[usize]) -> Vec<usize> {
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut order = Vec::new();
    if let Some(&first) = sorted.first() {
        order.push(first);
    }
    if sorted.len() > 1 {
        order.push(*sorted.last().expect("non-empty"));
        order.extend(sorted[1..sorted.len() - 1].iter().rev());
    }
    order
}

fn measure(
    args: &BenchDataplaneArgs,
    bins: &Path,
    run_dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<Value> {
    let bench = BenchCluster::start(bins)?;
    eprintln!(
        "cluster {} up; logs in {}",
        bench.cluster().name(),
        bench.logs_dir().display()
    );
    let result = measure_on(args, &bench, run_dir, rt);
    if result.is_err() {
        eprintln!("logs are in {}", bench.logs_dir().display());
    }
    result
}

fn measure_on(
    args: &BenchDataplaneArgs,
    bench: &BenchCluster,
    run_dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<Value> {
    let pods = bench.deploy_pods()?;
    let node1 = bench.node(BATON).netns().clone();
    let node1_name = bench.node(BATON).name().to_owned();
    let client = rt.block_on(services::client(bench.kubeconfig()))?;
    let baton_fe = rt.block_on(services::create_service(
        &client,
        "bench-baton",
        true,
        Some("echo-a"),
    ))?;
    let ipt_fe = rt.block_on(services::create_service(
        &client,
        "bench-iptables",
        true,
        Some("echo-c"),
    ))?;
    let prop_fe = rt.block_on(services::create_service(&client, "bench-prop", false, None))?;
    rt.block_on(services::put_slice(
        &client,
        "bench-prop-bench",
        "bench-prop",
        &[pods.echo_a.ip],
        &node1_name,
    ))?;

    let host_cgroup = bench
        .cgroup_of(&Place::Host(BATON))?
        .context("the node's host cgroup")?;
    let mut probe = Probe::spawn(&node1, &host_cgroup)?;
    let baton_vip = SocketAddr::from((baton_fe.cluster_ip, SERVICE_PORT));
    let prop_vip = SocketAddr::from((prop_fe.cluster_ip, SERVICE_PORT));
    for vip in [baton_vip, prop_vip] {
        let answered = probe.wait_get(vip, Duration::from_secs(60))?;
        ensure!(
            answered == pods.echo_a.ip.to_string(),
            "{vip} answered from {answered}, expected {}",
            pods.echo_a.ip
        );
    }

    let script = load::write_script(run_dir)?;
    let wrk = Wrk {
        script: &script,
        threads: args.threads,
        connections: args.connections,
        duration: Duration::from_secs(args.duration),
    };
    let all_paths = paths(bench, &pods, baton_fe, ipt_fe);
    let pairs = paired::pairs(
        &all_paths,
        &format!("http://{}:{ECHO_PORT}/", pods.echo_a.ip),
    );
    let load_bin = baton_e2e::images::binaries_dir().join("load");
    ensure!(
        load_bin.exists(),
        "no load generator at {}",
        load_bin.display()
    );
    let slicing = paired::Slicing {
        connections: args.connections,
        slice: Duration::from_millis(args.slice_ms),
        slices: args.slices,
    };
    let order = visit_order(&args.services);
    let max_count = *order.iter().max().expect("counts");
    let mut points = Vec::new();
    let mut bursts = Vec::new();
    let mut profile_report = Value::Null;
    let endpoints = [pods.echo_a.ip, pods.echo_b.ip];
    for (visit, &count) in order.iter().enumerate() {
        eprintln!("== {count} services");
        let have = rt.block_on(services::fillers(&client))?;
        let want = count - 1;
        let base = programming::wait_programmed(&node1, Duration::from_secs(60), |_| true)?
            - have.len() as f64;
        if want > have.len() {
            let poller = programming::Poller::start(&node1, Duration::from_millis(10));
            let before = base + have.len() as f64;
            let batch = rt.block_on(services::create_fillers(
                &client,
                have.len() + 1..want + 1,
                &endpoints,
                &node1_name,
                args.concurrency,
            ))?;
            let target = base + want as f64;
            programming::wait_programmed(&node1, Duration::from_secs(120), |v| v >= target)?;
            let samples = poller.finish()?;
            let mut burst = programming::burst_report(&batch, &samples, before, target);
            let sample = programming::sample_addrs(&batch, 50, 150);
            probe.start_serve(&sample, Duration::from_secs(60))?;
            let served = probe.seen()?;
            let last_wall = batch.started + batch.last().duration_since(batch.started_at);
            burst["kind"] = json!("create");
            burst["services_after"] = json!(count);
            burst["probed"] = json!(sample.len());
            burst["probed_served_after_last_write_ms"] = json!(served.map(|(at, _)| {
                report::round2(at.saturating_sub(probe::wall_ns(last_wall)) as f64 / 1e6)
            }));
            eprintln!("burst: {burst}");
            bursts.push(burst);
        } else if want < have.len() {
            let poller = programming::Poller::start(&node1, Duration::from_millis(10));
            let before = base + have.len() as f64;
            let remove: Vec<usize> = have.keys().copied().filter(|&i| i > want).collect();
            let batch = rt.block_on(services::delete_fillers(&client, remove, args.concurrency))?;
            let target = base + want as f64;
            programming::wait_programmed(&node1, Duration::from_secs(120), |v| v <= target)?;
            let samples = poller.finish()?;
            let mut burst = programming::burst_report(&batch, &samples, before, target);
            burst["kind"] = json!("delete");
            burst["services_after"] = json!(count);
            eprintln!("deletion: {burst}");
            bursts.push(burst);
        }

        // The baseline: the same services as kube-proxy's rules on node 2.
        let mut ports = rt.block_on(services::service_ports(&client))?;
        let measured_ipt = ports
            .iter()
            .find(|p| p.name == "bench-iptables")
            .context("bench-iptables is not in the API")?;
        ensure!(
            measured_ipt.endpoints == vec![(pods.echo_c.ip, ECHO_PORT)],
            "bench-iptables has endpoints {:?}",
            measured_ipt.endpoints
        );
        iptables::place_in_middle(&mut ports, "bench-iptables");
        let rules = iptables::render(&ports, CLUSTER_CIDR);
        let loaded =
            iptables::LoadedRules::load(bench.node(IPTABLES).netns(), args.iptables, &rules)?;
        eprintln!(
            "iptables: {} rules for {} service ports loaded in {:?}",
            loaded.rules,
            ports.len(),
            loaded.load_time
        );

        let paths: Vec<&PathDef> = all_paths.iter().filter(|p| visit == 0 || !p.once).collect();
        for path in &paths {
            // One short run first: the path works and is warm.
            let check = run_path(
                bench,
                &wrk,
                path,
                Mode::KeepAlive,
                Some(Duration::from_secs(1)),
            )?;
            ensure!(
                check.requests > 0 && check.errors == 0,
                "{}: {} requests, {} errors in the check run",
                path.id,
                check.requests,
                check.errors
            );
        }
        let mut runs: std::collections::BTreeMap<(&str, Mode), Vec<WrkResult>> = Default::default();
        let mut packet_path: std::collections::BTreeMap<&str, f64> = Default::default();
        let mut settling = Vec::new();
        for rep in 0..args.repeats {
            let (took, settled) = report::wait_until_quiet(
                QUIET_BUSY,
                Duration::from_secs(2),
                Duration::from_secs(120),
            );
            if !settled {
                eprintln!("  the machine did not settle in {took:?}; measuring anyway");
            }
            settling
                .push(json!({"seconds": report::round2(took.as_secs_f64()), "settled": settled}));
            // Each repeat starts at another path, so no path always runs
            // right after the same neighbour.
            let mut rotated = paths.clone();
            let shift = rep % rotated.len().max(1);
            rotated.rotate_left(shift);
            for path in &rotated {
                for mode in [Mode::KeepAlive, Mode::NewConnections] {
                    let before = path.baton_service.then(|| packets(&node1)).flatten();
                    let result = run_path(bench, &wrk, path, mode, None)?;
                    if let Some(before) = before {
                        let after = packets(&node1).unwrap_or(before);
                        *packet_path.entry(path.id).or_default() += after - before;
                    }
                    eprintln!(
                        "  [{rep}] {:<15} {:<15} {:>10.0}/s p50 {:.3} ms p99 {:.3} ms errors {}",
                        path.id,
                        mode.id(),
                        result.rate(),
                        result.p50_ms,
                        result.p99_ms,
                        result.errors
                    );
                    runs.entry((path.id, mode)).or_default().push(result);
                }
            }
        }
        let mut results = serde_json::Map::new();
        for path in &paths {
            let mut entry = json!({});
            for mode in [Mode::KeepAlive, Mode::NewConnections] {
                entry[mode.id()] = load::aggregate(&runs[&(path.id, mode)]);
            }
            if path.baton_service {
                entry["packet_path_packets"] =
                    json!(packet_path.get(path.id).copied().unwrap_or(0.0));
            }
            results.insert(path.id.to_owned(), entry);
        }

        let mut paired_results = serde_json::Map::new();
        for pair in &pairs {
            report::wait_until_quiet(QUIET_BUSY, Duration::from_secs(2), Duration::from_secs(60));
            let mut entry = json!({});
            for mode in [Mode::KeepAlive, Mode::NewConnections] {
                let result = paired::run(bench, &load_bin, pair, mode, slicing)?;
                eprintln!(
                    "  paired {:<12} {:<15} service/direct {} (95 % CI {}), p99 {}",
                    pair.id,
                    mode.id(),
                    result["rate_ratio"],
                    result["rate_ratio_ci95"],
                    result["p99_ratio"]
                );
                entry[mode.id()] = result;
            }
            paired_results.insert(pair.id.to_owned(), entry);
        }

        if count == max_count && !args.no_profile {
            profile_report = profile_paths(bench, &wrk, &all_paths)?;
        }

        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), services::NAMESPACE);
        let mut propagation = programming::Propagation {
            api: slices,
            slice: "bench-prop-bench".into(),
            service: "bench-prop".into(),
            vip: prop_vip,
            node: node1_name.clone(),
            probe: &mut probe,
        };
        let prop = rt.block_on(propagation.run(pods.echo_a.ip, pods.echo_b.ip, args.changes))?;
        eprintln!("propagation: {}", prop["latency_ms"]);
        let iptables_load_ms = report::round2(loaded.load_time.as_secs_f64() * 1000.0);
        let iptables_rules = loaded.rules;
        drop(loaded);
        points.push(json!({
            "services": count,
            "service_ports_in_cluster": ports.len(),
            "iptables": {"rules": iptables_rules, "restore_ms": iptables_load_ms},
            "results": results,
            "paired": paired_results,
            "propagation": prop,
            "settling": settling,
        }));
    }
    points.sort_by_key(|p| p["services"].as_u64());
    Ok(json!({
        "paths": all_paths.iter().map(|p| json!({
            "id": p.id, "label": p.label, "proxy": p.proxy, "url": p.url,
        })).collect::<Vec<_>>(),
        "pods": {
            "echo_a": pods.echo_a.ip.to_string(),
            "echo_b": pods.echo_b.ip.to_string(),
            "echo_c": pods.echo_c.ip.to_string(),
            "client_baton": pods.client_baton.ip.to_string(),
            "client_iptables": pods.client_iptables.ip.to_string(),
        },
        "points": points,
        "bursts": bursts,
        "profile": profile_report,
        "finished": format!("{:?}", SystemTime::now()),
    }))
}

/// The baton service's packet-path counter (per-packet translations).
fn packets(node: &baton_e2e::Netns) -> Option<f64> {
    let text = programming::scrape(node).ok()?;
    Some(
        programming::sample(
            &text,
            "baton_service_packets_total",
            &["service=\"bench-baton\""],
        )
        .unwrap_or(0.0),
    )
}

/// One wrk run over `path` (of `duration`, default the configured one).
fn run_path(
    bench: &BenchCluster,
    wrk: &Wrk<'_>,
    path: &PathDef,
    mode: Mode,
    duration: Option<Duration>,
) -> Result<WrkResult> {
    if path.proxy == "iptables" {
        iptables::flush_conntrack(bench.node(IPTABLES).netns())?;
    }
    let short;
    let wrk = match duration {
        Some(d) => {
            short = Wrk {
                script: wrk.script,
                threads: wrk.threads,
                connections: wrk.connections,
                duration: d,
            };
            &short
        }
        None => wrk,
    };
    let mut args = wrk.args(&path.url, mode);
    args.insert(0, "wrk".into());
    let cmd = client_command(bench, &path.place, args)?;
    let retransmits_before = bench.syn_retransmits(&path.place)?;
    let mut result = wrk.run(cmd).with_context(|| format!("path {}", path.id))?;
    result.syn_retransmits = bench
        .syn_retransmits(&path.place)?
        .saturating_sub(retransmits_before);
    Ok(result)
}

/// A load generator's command line `argv` run at `place`, on a core of
/// its own when there is more than one (see `topology::CLIENT_CPU`).
fn client_command(
    bench: &BenchCluster,
    place: &Place,
    mut argv: Vec<String>,
) -> Result<std::process::Command> {
    if topology::SERVER_CPU.is_some() {
        argv.splice(
            0..0,
            [
                "taskset".to_owned(),
                "-c".to_owned(),
                topology::CLIENT_CPU.to_string(),
            ],
        );
    }
    let (program, args) = argv.split_first().context("an empty command line")?;
    bench.command_at(place, program, args)
}

/// Per-program BPF run time on the baton paths (3 s runs, statistics on).
fn profile_paths(bench: &BenchCluster, wrk: &Wrk<'_>, paths: &[PathDef]) -> Result<Value> {
    let programs = profile::programs(&bench.pin_dir)?;
    let stats = profile::BpfStats::enable()?;
    let mut out = serde_json::Map::new();
    for path in paths.iter().filter(|p| p.proxy == "baton") {
        let mut entry = json!({});
        for mode in [Mode::KeepAlive, Mode::NewConnections] {
            let before = profile::snapshot(&programs)?;
            let result = run_path(bench, wrk, path, mode, Some(Duration::from_secs(3)))?;
            let after = profile::snapshot(&programs)?;
            entry[mode.id()] = json!({
                "rate": report::round2(result.rate()),
                "programs": profile::delta(&before, &after, result.requests),
            });
        }
        out.insert(path.id.to_owned(), entry);
    }
    drop(stats);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_count_comes_second() {
        assert_eq!(visit_order(&[1, 1000, 10000]), vec![1, 10000, 1000]);
        assert_eq!(visit_order(&[10, 1]), vec![1, 10]);
        assert_eq!(visit_order(&[5]), vec![5]);
        assert_eq!(visit_order(&[1, 10, 100, 1000]), vec![1, 1000, 100, 10]);
    }
}
