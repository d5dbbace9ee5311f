//! Builds the eBPF programs with nightly for `bpfel-unknown-none` and leaves the
//! object in OUT_DIR for `include_bytes_aligned!`.
//!
//! This does what `aya_build::build_ebpf` does (nightly `cargo build` of the
//! program crate's binaries with `-Z build-std=core`, `bpf_target_arch`,
//! debug info and BTF) plus one thing it cannot: choose the BPF CPU. The
//! programs need ISA v3 (`-C target-cpu=v3`: fetching atomic adds for
//! round-robin, 32-bit jumps and ALU for smaller code the verifier tracks
//! better), and aya-build 0.2 replaces all rustflags of the nested build,
//! leaving no way to pass it.
use std::{env, path::PathBuf, process::Command};

use anyhow::{Context, bail};

const PACKAGE: &str = "baton-ebpf";
const BINARY: &str = "baton";
const TARGET: &str = "bpfel-unknown-none";
/// BPF instruction set: v3 is Linux 5.1+ (this project needs 6.6+ for tcx).
const CPU: &str = "v3";

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf = manifest_dir.join("../ebpf");
    // The build-dependency on baton-ebpf reruns this script when the crate's
    // library or the ABI changes; the binary's sources are watched here.
    println!(
        "cargo::rerun-if-changed={}",
        ebpf.join("programs").display()
    );
    println!("cargo::rerun-if-changed={}", ebpf.join("abi").display());

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // A target dir of its own: cargo would otherwise wait on the lock the
    // outer build holds.
    let target_dir = out_dir.join("ebpf-target");
    // aya-ebpf selects its architecture-specific bindings by the host's
    // architecture.
    let host_arch = env::var("CARGO_CFG_TARGET_ARCH")?;
    let rustflags = [
        format!("--cfg=bpf_target_arch=\"{host_arch}\""),
        "-Cdebuginfo=2".to_owned(),
        "-Clink-arg=--btf".to_owned(),
        format!("-Ctarget-cpu={CPU}"),
    ]
    .join("\x1f");

    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "build"])
        .args(["--package", PACKAGE, "--bins", "--release"])
        .args(["--target", TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(ebpf.join("programs"))
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        // The outer build's compiler settings must not leak into the
        // nightly one.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS");
    let output = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        // A failing build script's stderr is shown in full by cargo.
        eprintln!("{log}");
        bail!("{cmd:?} failed: {}", output.status);
    }
    // Compiler warnings in the programs surface in the outer build; the
    // nested build's progress lines do not.
    for line in log.lines().filter(|l| l.starts_with("warning")) {
        println!("cargo::warning={line}");
    }
    let built = target_dir.join(TARGET).join("release").join(BINARY);
    let embedded = out_dir.join(BINARY);
    std::fs::copy(&built, &embedded)
        .with_context(|| format!("copy {} to {}", built.display(), embedded.display()))?;
    Ok(())
}
