//! A snapshot of the host's network and mount state, to show that a cluster
//! leaves nothing behind: named namespaces, links, every routing table,
//! `/sys/fs/bpf` and mounts.

use std::collections::BTreeSet;
use std::fs;

use crate::exec::CommandError;
use crate::iproute;

/// Host state that a cluster's lifetime must not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSnapshot {
    pub netns: BTreeSet<String>,
    /// `ip -o link` lines without the volatile parts (index, counters).
    pub links: BTreeSet<String>,
    /// `ip route show table all` and `ip -6 route show table all` lines.
    pub routes: BTreeSet<String>,
    /// Entries of `/sys/fs/bpf`, or a note that it is not mounted.
    pub bpffs: BTreeSet<String>,
    /// Mount point, type and source of every mount of this mount namespace.
    pub mounts: BTreeSet<String>,
}

impl HostSnapshot {
    /// Reads the current host state.
    pub fn take() -> Result<Self, CommandError> {
        let links = iproute::links(None)?
            .into_iter()
            .map(|l| {
                format!(
                    "{} up={} master={} alias={}",
                    l.ifname,
                    l.is_up(),
                    l.master.unwrap_or_default(),
                    l.ifalias.unwrap_or_default()
                )
            })
            .collect();
        let mut routes: BTreeSet<String> = BTreeSet::new();
        for family in ["-4", "-6"] {
            let out = iproute::ip(None, &[family, "route", "show", "table", "all"])?;
            routes.extend(out.lines().map(|l| format!("{family} {}", l.trim())));
        }
        Ok(Self {
            netns: iproute::netns_list()?.into_iter().collect(),
            links,
            routes,
            bpffs: bpffs_entries(),
            mounts: mounts(),
        })
    }

    /// What differs, one line per entry (`+` only in `later`, `-` only in
    /// `self`); empty when equal.
    #[must_use]
    pub fn diff(&self, later: &Self) -> Vec<String> {
        let mut out = Vec::new();
        let parts = [
            ("netns", &self.netns, &later.netns),
            ("link", &self.links, &later.links),
            ("route", &self.routes, &later.routes),
            ("bpffs", &self.bpffs, &later.bpffs),
            ("mount", &self.mounts, &later.mounts),
        ];
        for (what, before, after) in parts {
            out.extend(before.difference(after).map(|e| format!("- {what}: {e}")));
            out.extend(after.difference(before).map(|e| format!("+ {what}: {e}")));
        }
        out
    }
}

fn bpffs_entries() -> BTreeSet<String> {
    let mounted = mounts().iter().any(|m| m.starts_with("/sys/fs/bpf "));
    if !mounted {
        return BTreeSet::from(["(/sys/fs/bpf not mounted)".to_owned()]);
    }
    match fs::read_dir("/sys/fs/bpf") {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(err) => BTreeSet::from([format!("(/sys/fs/bpf unreadable: {err})")]),
    }
}

fn mounts() -> BTreeSet<String> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return BTreeSet::new();
    };
    info.lines()
        .filter_map(|line| {
            // `id parent major:minor root mountpoint options … - fstype source superopts`
            let fields: Vec<&str> = line.split(' ').collect();
            let point = fields.get(4)?;
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?;
            let source = fields.get(sep + 2)?;
            Some(format!("{point} {fstype} {source}"))
        })
        .collect()
}
