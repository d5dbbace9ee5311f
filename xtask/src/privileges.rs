//! What the privileged commands need: root's capabilities to create network
//! namespaces, load eBPF programs, mount bpffs and run containerd.

use anyhow::{Result, bail};

/// Capabilities the tests and the local cluster use (bit numbers from
/// linux/capability.h).
const NEEDED: &[(u32, &str)] = &[
    (12, "CAP_NET_ADMIN"),
    (21, "CAP_SYS_ADMIN"),
    (39, "CAP_BPF"),
];

pub fn is_root() -> bool {
    euid() == 0
}

fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Fails with a message saying what is missing and how to run instead.
pub fn require(what: &str) -> Result<()> {
    let caps = effective_caps();
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(bit, _)| caps & (1u64 << bit) == 0)
        .map(|(_, name)| *name)
        .collect();
    if !is_root() || !missing.is_empty() {
        let detail = if missing.is_empty() {
            "not running as root".to_string()
        } else {
            format!("missing {}", missing.join(", "))
        };
        bail!(
            "`cargo xtask {what}` creates network namespaces, loads eBPF programs and runs \
             containers, which needs root ({detail}); run it as root, e.g. `sudo -E cargo xtask {what}`"
        );
    }
    Ok(())
}
