//! `cargo xtask`: the one entry point for developers, CI and users —
//! machine set-up, builds, the local namespace cluster, tests and benchmarks.

mod bench;
mod build;
mod cluster;
mod images;
mod privileges;
mod progress;
mod run;
mod setup;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test baton")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what this machine lacks (apt packages, nightly rust-src,
    /// the musl target for the container images, bpf-linker); skips what
    /// is already there. Idempotent.
    Setup,
    /// Build the eBPF objects (nightly) and the userspace binaries (stable).
    Build(build::BuildArgs),
    /// Build the cluster's container images (pause, echo) as OCI archives.
    Images(images::ImagesArgs),
    /// Run a benchmark and record its results.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Start the local cluster in network namespaces (root); idempotent.
    Up(cluster::UpArgs),
    /// Stop the local cluster and remove its namespaces, routes and files.
    Down,
    /// Show what runs where in the local cluster.
    Status,
    /// Run every test: formatting, clippy, unit, eBPF and end-to-end (root).
    Test(test::TestArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Setup => setup::run(),
        Command::Build(args) => {
            setup::run()?;
            build::run(&args).map(|_| ())
        }
        Command::Images(args) => {
            setup::run()?;
            images::run(&args).map(|_| ())
        }
        Command::Bench(bench) => bench::run(bench),
        Command::Up(args) => cluster::up(&args),
        Command::Down => cluster::down(),
        Command::Status => cluster::status(),
        Command::Test(args) => test::run(&args),
    }
}
