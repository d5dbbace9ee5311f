//! Shared by baton-node's privileged integration tests: the root check,
//! network namespaces with a veth pair, private bpffs mounts and frame
//! builders. Every resource is owned by a guard that removes it on drop (also
//! when a test panics), and leftovers of an earlier run that was killed are
//! removed before new ones are made. Names carry the pid, so two test binaries
//! can run at once.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod cgroup;
pub mod client;
pub mod fabric;
pub mod frames;
pub mod packets;
pub mod probe;
pub mod servers;
pub mod topology;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use baton_node::sys::{mount, netns};

/// Prefix of every namespace, cgroup and bpffs directory these tests create.
pub const PREFIX: &str = "baton-nt";

/// Fails the test with a clear message unless it runs as root: these tests
/// load BPF programs, create namespaces and mount bpffs.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test loads eBPF programs, creates network namespaces and mounts bpffs: \
         it needs root (run `cargo xtask test`, or `sudo -E cargo test -p baton-node`)"
    );
}

/// Runs a command and returns its stdout; panics with its stderr on failure.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("run {program} {args:?}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether the process that created a resource named `<PREFIX><pid>-...` is
/// gone (so the resource is a leftover of a killed run).
pub fn owner_is_gone(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
    !pid.is_empty() && !Path::new("/proc").join(&pid).exists()
}

/// A network namespace created with `ip netns add`, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `<PREFIX><pid>-<tag>`, after removing leftovers of dead runs.
    pub fn create(tag: &str) -> Self {
        remove_leftover_namespaces();
        let name = format!("{PREFIX}{}-{tag}", std::process::id());
        // A namespace of this very process can only be left by an earlier
        // test in the same binary that failed to clean up.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let netns = Self { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file, for [`netns::run_in`].
    pub fn path(&self) -> PathBuf {
        netns::named(&self.name)
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A command run inside the namespace (`ip netns exec`).
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `work` on a thread inside the namespace.
    pub fn run_in<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        netns::run_in(&self.path(), work).unwrap_or_else(|error| panic!("{error}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also destroys the veth ends inside it.
        if let Err(error) = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output()
        {
            eprintln!("delete netns {}: {error}", self.name);
        }
    }
}

fn remove_leftover_namespaces() {
    let Ok(entries) = fs::read_dir(netns::NETNS_RUN_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if owner_is_gone(&name) {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

/// Two namespaces joined by a veth pair: `uplink0` in [`Self::node`] with
/// [`Self::NODE_ADDR`] and `peer0` in [`Self::peer`] with
/// [`Self::PEER_ADDR`]. Addresses are from 198.18.0.0/15 (reserved for
/// network benchmarks) and exist only inside these namespaces; no interface
/// is ever created in the host namespace.
pub struct VethPair {
    pub node: Netns,
    pub peer: Netns,
}

impl VethPair {
    pub const NODE_IFACE: &str = "uplink0";
    pub const PEER_IFACE: &str = "peer0";
    pub const NODE_ADDR: &str = "198.18.0.1";
    pub const PEER_ADDR: &str = "198.18.0.2";

    pub fn create(tag: &str) -> Self {
        let node = Netns::create(&format!("{tag}-n"));
        let peer = Netns::create(&format!("{tag}-p"));
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
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-bpffs-{tag}", std::process::id()));
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
        if fstype == "bpf" && target.parent() == Some(temp.as_path()) && owner_is_gone(&name) {
            let _ = mount::unmount(target);
            let _ = fs::remove_dir(target);
        }
    }
}
