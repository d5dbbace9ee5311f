//! `cargo xtask images`: builds the cluster's container images — the pause
//! image (`baton.local/pause:1`) and the echo image (`baton.local/echo:1`,
//! with busybox) — as OCI archives in `target/baton/images/`, without
//! docker or a registry, and optionally imports them into running
//! containerds.

use std::path::PathBuf;

use anyhow::{Context, Result};
use baton_e2e::images;
use clap::Args;

#[derive(Args, Clone, Default)]
pub struct ImagesArgs {
    /// Where to write the archives (default: `<target>/baton/images`).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Import the archives into the containerd listening on this socket
    /// (its `k8s.io` namespace, where CRI looks); repeatable.
    #[arg(long = "import")]
    pub import: Vec<PathBuf>,
}

/// Builds the archives (and imports them where asked); returns their paths.
pub fn run(args: &ImagesArgs) -> Result<Vec<PathBuf>> {
    let out_dir = args.out_dir.clone().unwrap_or_else(images::archives_dir);
    let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
    let archives = images::build_standard(&cargo, &out_dir).context("building the images")?;
    for archive in &archives {
        println!(
            "{} -> {} ({})",
            archive.name,
            archive.path.display(),
            archive.manifest_digest
        );
    }
    let paths: Vec<PathBuf> = archives.into_iter().map(|a| a.path).collect();
    for socket in &args.import {
        for path in &paths {
            images::import(socket, path).with_context(|| {
                format!("importing {} into {}", path.display(), socket.display())
            })?;
        }
        println!("imported into {}", socket.display());
    }
    Ok(paths)
}
