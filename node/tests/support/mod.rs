//! Shared by baton-node's privileged integration tests: network namespaces
//! joined by veths, private bpffs mounts, backends and frame builders, on
//! the namespace, cgroup and probe guards of the `baton-e2e` harness. Every
//! resource is owned by a guard that removes it on drop (also when a test
//! panics), and leftovers of an earlier run that was killed are removed
//! before new ones are made. Names carry the pid (`baton_e2e::scratch`), so
//! two test binaries can run at once.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod client;
pub mod fabric;
pub mod frames;
pub mod packets;
pub mod servers;
pub mod topology;

use std::{
    fs,
    path::{Path, PathBuf},
};

use baton_e2e::{OwnedNetns, scratch};
use baton_node::sys::mount;

/// Two namespaces joined by a veth pair: `uplink0` in [`Self::node`] with
/// [`Self::NODE_ADDR`] and `peer0` in [`Self::peer`] with
/// [`Self::PEER_ADDR`]. Addresses are from 198.18.0.0/15 (reserved for
/// network benchmarks) and exist only inside these namespaces; no interface
/// is ever created in the host namespace.
pub struct VethPair {
    pub node: OwnedNetns,
    pub peer: OwnedNetns,
}

impl VethPair {
    pub const NODE_IFACE: &str = "uplink0";
    pub const PEER_IFACE: &str = "peer0";
    pub const NODE_ADDR: &str = "198.18.0.1";
    pub const PEER_ADDR: &str = "198.18.0.2";

    pub fn create(tag: &str) -> Self {
        let node = OwnedNetns::create(&format!("{tag}-n"));
        let peer = OwnedNetns::create(&format!("{tag}-p"));
        node.ip(&[
            "link",
            "add",
            Self::NODE_IFACE,
            "type",
            "veth",
            "peer",
            "name",
            Self::PEER_IFACE,
            "netns",
            peer.name(),
        ]);
        node.ip(&[
            "addr",
            "add",
            &format!("{}/30", Self::NODE_ADDR),
            "dev",
            Self::NODE_IFACE,
        ]);
        peer.ip(&[
            "addr",
            "add",
            &format!("{}/30", Self::PEER_ADDR),
            "dev",
            Self::PEER_IFACE,
        ]);
        node.ip(&["link", "set", Self::NODE_IFACE, "up"]);
        peer.ip(&["link", "set", Self::PEER_IFACE, "up"]);
        Self { node, peer }
    }
}

/// A private bpffs instance mounted on a fresh directory under the system
/// temp dir; unmounted and removed on drop. The host's /sys/fs/bpf is never
/// touched.
pub struct Bpffs {
    dir: PathBuf,
}

impl Bpffs {
    pub fn mount(tag: &str) -> Self {
        remove_leftover_bpffs();
        let dir = std::env::temp_dir().join(scratch::name(&format!("bpffs-{tag}")));
        if dir.exists() {
            let _ = mount::unmount(&dir);
            let _ = fs::remove_dir_all(&dir);
        }
        fs::create_dir(&dir).unwrap_or_else(|error| panic!("create {}: {error}", dir.display()));
        let guard = Self { dir };
        mount::mount_bpffs(&guard.dir).unwrap_or_else(|error| panic!("{error}"));
        guard
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        // Unmounting drops every pin in this instance with it.
        if let Err(error) = mount::unmount(&self.dir) {
            eprintln!("{error}");
        }
        if let Err(error) = fs::remove_dir(&self.dir) {
            eprintln!("remove {}: {error}", self.dir.display());
        }
    }
}

fn remove_leftover_bpffs() {
    let temp = std::env::temp_dir();
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_source), Some(target), Some(fstype)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let target = Path::new(target);
        let Some(name) = target
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
        else {
            continue;
        };
        if fstype == "bpf"
            && target.parent() == Some(temp.as_path())
            && scratch::owner_is_gone(&name)
        {
            let _ = mount::unmount(target);
            let _ = fs::remove_dir(target);
        }
    }
}
