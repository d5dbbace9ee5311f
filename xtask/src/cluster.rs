//! `cargo xtask up|down|status`: the persistent local cluster in network
//! namespaces with fixed names (`baton-control`, `baton-node-1`…,
//! `baton-client`), its state in `target/baton/`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use baton_e2e::control_plane::{self, Component, ControlPlane};
use baton_e2e::nodes;
use baton_e2e::{Binaries, Cluster, ClusterSpec, UpOutcome};
use clap::Args;

use crate::build::BuildArgs;
use crate::progress::{Steps, note};
use crate::run::repo_root;

#[derive(Args)]
pub struct UpArgs {
    /// Number of worker nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Where the persistent cluster keeps its state, logs and kubeconfig.
pub fn state_dir() -> PathBuf {
    repo_root().join("target").join("baton")
}

fn kubeconfig() -> PathBuf {
    state_dir().join("kubeconfig")
}

pub fn up(args: &UpArgs) -> Result<()> {
    crate::privileges::require("up")?;
    let mut steps = Steps::new(8);
    steps.step("set up this machine", crate::setup::run)?;
    let binaries = steps.step("build", || crate::build::run(&args.build))?;
    let binaries = Binaries::in_dir(binaries);
    let archives = steps.step("container images", || {
        crate::images::run(&crate::images::ImagesArgs::default())
    })?;
    let state = state_dir();
    let cluster = steps.step("network namespaces", || {
        let spec = ClusterSpec::new(args.nodes).logs_dir(state.join("logs"));
        let (cluster, outcome) = Cluster::up(spec, &state)?;
        match outcome {
            UpOutcome::Created => note(format!("created cluster {}", cluster.name())),
            UpOutcome::Unchanged => note("already there, unchanged"),
            UpOutcome::Recreated { problems } => {
                note(format!("recreated: {}", problems.join("; ")));
            }
        }
        Ok(cluster)
    })?;
    let plane = ControlPlane::layout(&cluster, &state, kubeconfig());
    steps.step("etcd", || {
        let ensured = control_plane::ensure_etcd(&cluster, &binaries, &plane)?;
        note(format!("etcd {ensured}"));
        Ok(())
    })?;
    steps.step("API server", || {
        let ensured = control_plane::ensure_apiserver(&cluster, &binaries, &plane)?;
        note(format!("baton-control apiserver {ensured}; /readyz ok"));
        Ok(())
    })?;
    steps.step("scheduler and controllers", || {
        for component in [Component::Scheduler, Component::Controllers] {
            let ensured = control_plane::ensure_component(&cluster, &binaries, &plane, component)?;
            note(format!(
                "baton-control {} {ensured}; leading",
                component.name()
            ));
        }
        Ok(())
    })?;
    steps.step("nodes (containerd, baton-node)", || {
        for node in cluster.nodes() {
            let (containerd, ensured) = nodes::ensure_containerd(&cluster, node, &archives)?;
            note(format!("{}: containerd {ensured}", node.name()));
            let ensured = nodes::ensure_agent(&cluster, &binaries, &plane, node, &containerd)?;
            note(format!("{}: baton-node {ensured}", node.name()));
        }
        nodes::wait_nodes_ready(&plane, args.nodes, Duration::from_secs(120))?;
        note(format!("{} nodes Ready", args.nodes));
        nodes::route_control_plane_to_pods(&cluster, &plane)?;
        Ok(())
    })?;
    println!("cluster is up: API server {}", plane.server);
    println!("logs in {}", cluster.logs_dir().display());
    println!("export KUBECONFIG={}", plane.kubeconfig.display());
    Ok(())
}

pub fn down() -> Result<()> {
    crate::privileges::require("down")?;
    let state = state_dir();
    if let Some(cluster) = Cluster::open(&state)? {
        println!("removing pods");
        let plane = ControlPlane::layout(&cluster, &state, kubeconfig());
        nodes::drain(&cluster, &plane, Duration::from_secs(60));
    }
    let report = Cluster::down(&state).context("tearing the cluster down")?;
    if !report.had_state {
        println!("no cluster state in {}, nothing to stop", state.display());
    }
    for name in &report.stopped {
        println!("stopped {name}");
    }
    // Everything but the logs: a later `up` starts from a clean slate.
    for leftover in [
        "etcd",
        "pki",
        "kubeconfig",
        "scheduler.kubeconfig",
        "controllers.kubeconfig",
    ] {
        let path = state.join(leftover);
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => println!("removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    println!(
        "cluster removed (logs kept in {})",
        state.join("logs").display()
    );
    Ok(())
}

pub fn status() -> Result<()> {
    match Cluster::status(state_dir())? {
        None => println!("no cluster (run `cargo xtask up`)"),
        Some(status) => {
            print!("{status}");
            let kubeconfig = kubeconfig();
            if kubeconfig.is_file() {
                println!("  kubeconfig {}", kubeconfig.display());
            }
        }
    }
    Ok(())
}
