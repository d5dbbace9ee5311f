//! `cargo xtask bench …`: benchmarks that write their results as JSON under
//! `target/baton/bench/` and as a section of docs/benchmarks.md.

mod api;
mod authorization;
mod dataplane;
mod loopback;
mod pods;
mod report;
mod scheduler;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum Bench {
    /// API server: create/get/list/watch latency and throughput with 10,000
    /// pods, and its memory.
    Api(api::BenchApiArgs),
    /// Scheduler: pods scheduled per second over 500 fake nodes, and p99
    /// creation-to-binding.
    Scheduler(scheduler::BenchSchedulerArgs),
    /// Pod startup latency (creation to Ready) on one and three nodes.
    Pods,
    /// eBPF service load balancing against direct pod IP and kube-proxy's
    /// iptables rules at 1, 1,000 and 10,000 services; programming time
    /// and endpoint-change propagation.
    Dataplane(dataplane::BenchDataplaneArgs),
    /// The dataplane benchmark's probe inside a node (started by it).
    #[command(hide = true)]
    DataplaneProbe,
}

pub fn run(bench: Bench) -> Result<()> {
    if let Bench::DataplaneProbe = bench {
        return dataplane::probe_main();
    }
    crate::setup::run()?;
    match bench {
        Bench::Api(args) => api::run(args),
        Bench::Scheduler(args) => scheduler::run(args),
        Bench::Pods => pods::run(),
        Bench::Dataplane(args) => dataplane::run(args),
        Bench::DataplaneProbe => Ok(()),
    }
}
