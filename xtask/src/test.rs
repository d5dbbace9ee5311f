//! `cargo xtask test`: everything CI checks, in the order that fails fastest —
//! formatting, clippy, then unit, eBPF and end-to-end tests (which need root).

use anyhow::Result;
use clap::Args;

use crate::progress::Steps;
use crate::run::{cargo, status};

#[derive(Args)]
pub struct TestArgs {
    /// Only run tests whose name contains this string (lints still run).
    pub filter: Option<String>,
}

pub fn run(args: &TestArgs) -> Result<()> {
    crate::privileges::require("test")?;
    crate::setup::run()?;
    let mut steps = Steps::new(4);
    steps.step("cargo fmt --check", || {
        status(cargo().args(["fmt", "--all", "--check"]))
    })?;
    steps.step("cargo clippy --workspace -D warnings", || {
        status(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    // End-to-end tests start the real binaries: build them first.
    steps.step("build binaries", || {
        crate::build::run(&crate::build::BuildArgs::default()).map(|_| ())
    })?;
    steps.step("unit, eBPF and end-to-end tests", || {
        let mut cmd = cargo();
        // Every test binary runs even after one fails, so one run shows
        // every failure.
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
        if let Some(filter) = &args.filter {
            cmd.arg(filter);
        }
        status(&mut cmd)
    })
}
