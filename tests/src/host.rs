//! Host-side facts and mounts: the root check, the harness's logs in a
//! test's output, bpffs mounts for nodes, and unmounting what lies under a
//! cluster's run directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Host-level failures.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "the test harness must run as root (it creates network namespaces, veths, cgroups \
         and host routes, mounts bpffs and loads eBPF programs); run the tests with \
         `cargo xtask test`, or e.g. `sudo -E cargo test -p baton-e2e`"
    )]
    NotRoot,
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{action} {}: {source}", path.display())]
    Mount {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// Fails with a message saying why root is needed unless running as root.
pub fn require_root() -> Result<(), HostError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(HostError::NotRoot)
    }
}

/// Sends the harness's logs to the calling test's output (`RUST_LOG`
/// chooses what, `baton_e2e=info` by default); later calls keep the first
/// set-up.
pub fn log_to_test_output() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "baton_e2e=info".into()),
        )
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// Fails the calling test, with [`HostError::NotRoot`]'s message, unless
/// running as root.
pub fn assert_root() {
    if let Err(error) = require_root() {
        panic!("{error}");
    }
}

/// Mounts a fresh bpffs instance at `dir` (created if missing). Each mount
/// is its own instance, so pins under one node's mount are private to it.
pub fn mount_bpffs(dir: &Path) -> Result<(), HostError> {
    fs::create_dir_all(dir).map_err(|source| HostError::Io {
        action: "creating",
        path: dir.to_owned(),
        source,
    })?;
    mount(
        Some("bpf"),
        dir,
        Some("bpf"),
        MsFlags::empty(),
        Some("mode=0700"),
    )
    .map_err(|source| HostError::Mount {
        action: "mounting bpffs on",
        path: dir.to_owned(),
        source,
    })
}

/// Mount points at or below `dir`, deepest first.
#[must_use]
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Detaches every mount at or below `dir` (deepest first).
pub fn unmount_all_under(dir: &Path) -> Result<(), HostError> {
    for point in mounts_under(dir) {
        tracing::debug!(point = %point.display(), "unmount");
        umount2(&point, MntFlags::MNT_DETACH).map_err(|source| HostError::Mount {
            action: "unmounting",
            path: point.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Unmounts what lies under `dir` and removes it (missing is fine).
pub(crate) fn remove_run_dir(dir: &Path) -> Result<(), HostError> {
    unmount_all_under(dir)?;
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(HostError::Io {
            action: "removing",
            path: dir.to_owned(),
            source: err,
        }),
        _ => Ok(()),
    }
}

/// `/proc/self/mountinfo` escapes space, tab, newline and backslash as
/// `\ooo` octal.
fn unescape_mount_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(value) = u8::from_str_radix(digits, 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mount_path(r"/run/a\040b"), "/run/a b");
        assert_eq!(unescape_mount_path(r"/plain"), "/plain");
        assert_eq!(unescape_mount_path(r"/trailing\04"), r"/trailing\04");
    }
}
