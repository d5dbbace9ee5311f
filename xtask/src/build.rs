//! `cargo xtask build`: the eBPF objects (nightly, `-Z build-std=core`, built
//! and embedded by baton-node's build script) and the userspace binaries
//! (stable).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::run::{cargo, output, status};

/// The binaries a cluster runs.
pub const BINARIES: &[&str] = &["baton-control", "baton-node", "baton-cni"];

#[derive(Args, Clone, Default)]
pub struct BuildArgs {
    /// Build optimised binaries (target/release) instead of debug ones.
    #[arg(long)]
    pub release: bool,
}

/// Builds everything and returns the directory holding the binaries.
pub fn run(args: &BuildArgs) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "--bins", "-p", "baton-control", "-p", "baton-node"]);
    if args.release {
        cmd.arg("--release");
    }
    status(&mut cmd)?;
    let dir = target_dir()?.join(if args.release { "release" } else { "debug" });
    for bin in BINARIES {
        let path = dir.join(bin);
        anyhow::ensure!(path.exists(), "{} was not built", path.display());
    }
    Ok(dir)
}

/// Cargo's target directory (honours CARGO_TARGET_DIR and config).
pub fn target_dir() -> Result<PathBuf> {
    let meta = output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let meta: serde_json::Value = serde_json::from_str(&meta).context("parsing cargo metadata")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}
