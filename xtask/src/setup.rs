//! `cargo xtask setup`: brings a fresh machine to what baton needs and skips
//! what is already there, saying which. Idempotent: a second run installs
//! nothing.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use baton_e2e::images::IMAGE_TARGET;

use crate::progress::{Steps, note};
use crate::run::{output, status, succeeds};

/// Debian packages the cluster, its tests and benchmarks use.
const APT_PACKAGES: &[&str] = &[
    "etcd-server",
    "containerd",
    "runc",
    "busybox-static",
    "iproute2",
    "iptables",
    "nftables",
    "bpftool",
    "wrk",
    "iperf3",
    "conntrack",
    // etcd-client's and the CRI client's code generation need `protoc`.
    "protobuf-compiler",
    // A local registry for the image-pull test, and HTTP checks in tests.
    "docker-registry",
    "curl",
];

/// The bpf-linker release baton's eBPF build is known to work with.
const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> Result<()> {
    let mut steps = Steps::new(4);
    steps.step("apt packages", apt_packages)?;
    steps.step("nightly toolchain with rust-src", nightly_rust_src)?;
    steps.step("musl target for container images", musl_target)?;
    steps.step("bpf-linker", bpf_linker)?;
    Ok(())
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        note(format!("all {} present, skipping", APT_PACKAGES.len()));
        return Ok(());
    }
    note(format!("installing {}", missing.join(" ")));
    if !crate::privileges::is_root() {
        bail!(
            "packages {} are missing and installing them needs root; run `sudo cargo xtask setup`",
            missing.join(" ")
        );
    }
    status(
        Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn dpkg_installed(package: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .map(|s| s.trim() == "install ok installed")
        .unwrap_or(false)
}

fn nightly_rust_src() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        note("installing the nightly toolchain");
        return status(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]));
    }
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if installed.lines().any(|l| l.trim() == "rust-src") {
        note("nightly and its rust-src present, skipping");
        return Ok(());
    }
    note("adding rust-src to nightly");
    status(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// The container images' binaries are static musl executables.
fn musl_target() -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if installed.lines().any(|l| l.trim() == IMAGE_TARGET) {
        note(format!("{IMAGE_TARGET} present, skipping"));
        return Ok(());
    }
    note(format!("adding {IMAGE_TARGET}"));
    status(Command::new("rustup").args(["target", "add", IMAGE_TARGET]))
}

/// The nightly toolchain's sysroot and LLVM major version.
struct NightlyLlvm {
    sysroot: PathBuf,
    major: String,
}

fn nightly_llvm() -> Result<NightlyLlvm> {
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let verbose = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let major = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("`rustc +nightly -vV` reports no LLVM version")?
        .to_string();
    Ok(NightlyLlvm {
        sysroot: PathBuf::from(sysroot.trim()),
        major,
    })
}

/// bpf-linker must link the nightly toolchain's own libLLVM (Debian has no
/// LLVM of the version the crates.io default wants). It is usable when it
/// starts (its libLLVM loads) and that libLLVM is the current nightly's.
fn bpf_linker() -> Result<()> {
    let llvm = nightly_llvm()?;
    let lib_dir = llvm.sysroot.join("lib");
    if bpf_linker_links(&lib_dir) {
        note(format!(
            "present and linked against nightly's LLVM {}, skipping",
            llvm.major
        ));
        return Ok(());
    }
    let libllvm = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("libLLVM.so.{}", llvm.major)))
        })
        .with_context(|| format!("no libLLVM.so.{}* in {}", llvm.major, lib_dir.display()))?;

    // A prefix folder whose lib/libLLVM.so is the toolchain's library: what
    // llvm-sys looks for under LLVM_PREFIX.
    let prefix = cache_dir().join(format!("llvm-{}", llvm.major));
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    let link = prefix_lib.join("libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;

    note(format!(
        "installing bpf-linker {BPF_LINKER_VERSION} against {} (about 2 minutes)",
        libllvm.display()
    ));
    status(
        Command::new("cargo")
            .args([
                "install",
                "--force",
                "--locked",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
            ])
            .arg(format!("llvm-{}", llvm.major))
            .env("LLVM_PREFIX", &prefix)
            // Find libLLVM at run time where it was found at build time.
            .env(
                "RUSTFLAGS",
                format!("-C link-arg=-Wl,-rpath,{}", lib_dir.display()),
            ),
    )?;
    if !bpf_linker_links(&lib_dir) {
        bail!("bpf-linker was installed but does not start with nightly's libLLVM");
    }
    Ok(())
}

fn bpf_linker_links(nightly_lib: &std::path::Path) -> bool {
    let Ok(path) = output(Command::new("sh").args(["-c", "command -v bpf-linker"])) else {
        return false;
    };
    let path = path.trim();
    if !succeeds(Command::new(path).arg("--version")) {
        return false;
    }
    output(Command::new("ldd").arg(path))
        .map(|libs| {
            libs.lines()
                .any(|l| l.contains("libLLVM") && l.contains(&*nightly_lib.to_string_lossy()))
        })
        .unwrap_or(false)
}

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"))
        .join("baton")
}
