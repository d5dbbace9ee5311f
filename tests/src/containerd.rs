//! One containerd per node: its configuration (own root, state, sockets,
//! runc root, CNI directories, sandbox image), starting it inside the
//! node's network namespace, waiting for its CRI socket, and killing what
//! its containers left behind.
//!
//! containerd must run with only the network namespace changed
//! (`nsenter --net`, which [`Cluster::spawn`] uses): `ip netns exec` would
//! also give it a mount namespace without the cgroup mounts, and runc then
//! fails with "no cgroup mount found".
//!
//! Containers are placed in cgroups below [`ContainerdPaths::cgroup_parent`]
//! (cgroupfs driver: the kubelet passes it as the sandbox's cgroup parent),
//! one subtree per node of each cluster, so [`kill_cgroup_tree`] can find
//! and kill every process of a node's containers even when containerd is
//! gone — the shims die with the node's namespace, their containers do not.

use std::fs;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, ClusterError, Node};
use crate::exec::{self, CommandError};
use crate::images::{self, ImagesError, PAUSE_IMAGE};
use crate::process::{ProcessRecord, ProcessSpec};

/// The cgroup v1 hierarchies runc creates container cgroups in (the
/// unified hierarchy is mounted too on this hybrid layout).
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How long containerd gets to answer on its socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors setting up, starting or cleaning up a node's containerd.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Cluster(#[from] Box<ClusterError>),
    #[error(transparent)]
    Command(#[from] Box<CommandError>),
    #[error(transparent)]
    Images(#[from] Box<ImagesError>),
    #[error("containerd of {node} did not answer on {} within {timeout:?}; last lines of {}:\n{log_tail}", socket.display(), log.display())]
    NotReady {
        node: String,
        socket: PathBuf,
        timeout: Duration,
        log: PathBuf,
        log_tail: String,
    },
    #[error("processes of cgroup {} survived SIGKILL: {pids:?}", path.display())]
    Unkillable { path: PathBuf, pids: Vec<u32> },
}

impl From<ClusterError> for ContainerdError {
    fn from(err: ClusterError) -> Self {
        Self::Cluster(Box::new(err))
    }
}

impl From<CommandError> for ContainerdError {
    fn from(err: CommandError) -> Self {
        Self::Command(Box::new(err))
    }
}

impl From<ImagesError> for ContainerdError {
    fn from(err: ImagesError) -> Self {
        Self::Images(Box::new(err))
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ContainerdError {
    move |source| ContainerdError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Every path one node's containerd uses, all below `<node dir>/containerd`
/// except the cgroup parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdPaths {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    /// The gRPC socket (CRI and containerd's own API, for `ctr`).
    pub socket: PathBuf,
    pub runc_root: PathBuf,
    /// CNI configuration directory (baton-node writes its conflist here).
    pub cni_conf_dir: PathBuf,
    /// CNI plugin directory (baton-node links `baton-cni` in, also as
    /// `loopback`).
    pub cni_bin_dir: PathBuf,
    /// `certs.d`-style registry host configuration (`hosts.toml` per host).
    pub registry_config_dir: PathBuf,
    /// Absolute cgroup path, below each hierarchy's mount, under which the
    /// node's pods are placed: `/baton/<cluster>/<node name>`.
    pub cgroup_parent: String,
}

impl ContainerdPaths {
    /// The paths of `node` of `cluster`.
    #[must_use]
    pub fn for_node(cluster: &Cluster, node: &Node) -> Self {
        Self::new(
            node.dir(),
            &format!("/baton/{}/{}", cluster.name(), node.name()),
        )
    }

    /// The paths below `node_dir`, with pods under `cgroup_parent`.
    #[must_use]
    pub fn new(node_dir: &Path, cgroup_parent: &str) -> Self {
        let dir = node_dir.join("containerd");
        Self {
            config: dir.join("config.toml"),
            root: dir.join("root"),
            state: dir.join("state"),
            socket: dir.join("containerd.sock"),
            runc_root: dir.join("runc"),
            cni_conf_dir: node_dir.join("cni").join("net.d"),
            cni_bin_dir: node_dir.join("cni").join("bin"),
            registry_config_dir: dir.join("certs.d"),
            cgroup_parent: cgroup_parent.to_owned(),
            dir,
        }
    }
}

/// containerd's configuration file (version 2, as containerd 1.6 reads it)
/// for these paths and sandbox image.
#[must_use]
pub fn render_config(paths: &ContainerdPaths, sandbox_image: &str) -> String {
    let p = |path: &Path| path.display().to_string();
    format!(
        r#"# Written by baton-e2e for one node of a namespace cluster.
version = 2
root = "{root}"
state = "{state}"
# This machine forbids lowering oom_score_adj; keep containerd's own as is.
oom_score = 0
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # The kubelet's pods must not get an oom_score_adj below containerd's.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  # Exec/attach/port-forward streaming server, inside the node's namespace.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroupfs driver: the kubelet passes absolute cgroup parents.
        SystemdCgroup = false
        Root = "{runc_root}"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{registry}"
"#,
        root = p(&paths.root),
        state = p(&paths.state),
        socket = p(&paths.socket),
        opt = p(&paths.dir.join("opt")),
        runc_root = p(&paths.runc_root),
        cni_bin = p(&paths.cni_bin_dir),
        cni_conf = p(&paths.cni_conf_dir),
        registry = p(&paths.registry_config_dir),
    )
}

/// Writes a `hosts.toml` that lets this containerd pull from `host`
/// (`127.0.0.1:5000`) over plain HTTP.
pub fn allow_insecure_registry(paths: &ContainerdPaths, host: &str) -> Result<(), ContainerdError> {
    let dir = paths.registry_config_dir.join(host);
    fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let file = dir.join("hosts.toml");
    let text = format!(
        "server = \"http://{host}\"\n\n[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n"
    );
    fs::write(&file, text).map_err(io_err("writing", &file))
}

/// A node's running containerd.
#[derive(Debug, Clone)]
pub struct Containerd {
    pub paths: ContainerdPaths,
    pub process: ProcessRecord,
}

/// Creates the directories and configuration and starts containerd in `node`'s namespace under
/// the process name `containerd-<node index>`; returns once its socket
/// answers. The cluster stops it at teardown; call
/// [`Containerd::kill_containers`] before that so no container outlives it.
pub fn start(cluster: &Cluster, node: &Node) -> Result<Containerd, ContainerdError> {
    let paths = ContainerdPaths::for_node(cluster, node);
    prepare(&paths)?;
    let spec = ProcessSpec::new(process_name(node), "containerd")
        .arg("--config")
        .arg(&paths.config);
    let process = cluster.spawn(node.netns(), spec)?;
    wait_ready(node.name(), &paths.socket, &process, START_TIMEOUT)?;
    tracing::info!(node = %node.name(), socket = %paths.socket.display(), "containerd ready");
    Ok(Containerd { paths, process })
}

/// The containerd of `node` if it runs already (the persistent cluster of
/// `cargo xtask up` keeps it across runs).
#[must_use]
pub fn running(cluster: &Cluster, node: &Node) -> Option<Containerd> {
    cluster
        .process(&process_name(node))
        .filter(ProcessRecord::is_running)
        .map(|process| Containerd {
            paths: ContainerdPaths::for_node(cluster, node),
            process,
        })
}

fn process_name(node: &Node) -> String {
    format!("containerd-{}", node.index())
}

/// Directories and configuration. The CNI plugin directory is filled by
/// baton-node, which links baton-cni in as itself and as `loopback`.
pub fn prepare(paths: &ContainerdPaths) -> Result<(), ContainerdError> {
    for dir in [
        &paths.dir,
        &paths.root,
        &paths.state,
        &paths.runc_root,
        &paths.cni_conf_dir,
        &paths.cni_bin_dir,
        &paths.registry_config_dir,
    ] {
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    }
    fs::write(&paths.config, render_config(paths, PAUSE_IMAGE))
        .map_err(io_err("writing", &paths.config))
}

/// Waits until `ctr version` gets an answer over `socket`, failing at once
/// if containerd exits.
fn wait_ready(
    node: &str,
    socket: &Path,
    process: &ProcessRecord,
    timeout: Duration,
) -> Result<(), ContainerdError> {
    let deadline = Instant::now() + timeout;
    loop {
        if UnixStream::connect(socket).is_ok() {
            let mut cmd = Command::new("ctr");
            cmd.arg("--address").arg(socket).arg("version");
            if exec::run(&mut cmd, Duration::from_secs(5))?.success() {
                return Ok(());
            }
        }
        if !process.is_running() || Instant::now() >= deadline {
            return Err(ContainerdError::NotReady {
                node: node.to_owned(),
                socket: socket.to_owned(),
                timeout,
                log: process.log.clone(),
                log_tail: crate::ready::log_tail(&process.log),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Containerd {
    /// Imports image archives into this containerd's CRI namespace.
    pub fn import(&self, archives: &[PathBuf]) -> Result<(), ContainerdError> {
        for archive in archives {
            images::import(&self.paths.socket, archive)?;
        }
        Ok(())
    }

    /// SIGKILLs every process in the node's container cgroups and removes
    /// the cgroups: the last resort once CRI could not stop the pods.
    pub fn kill_containers(&self) -> Result<(), ContainerdError> {
        kill_cgroup_tree(&self.paths.cgroup_parent)
    }
}

/// SIGKILLs every process in the cgroup `parent` (absolute, e.g.
/// `/baton/<cluster>/<node>`) and below, in every v1 hierarchy and the
/// unified one, then removes the cgroup directories, deepest first.
/// Missing cgroups are fine.
pub fn kill_cgroup_tree(parent: &str) -> Result<(), ContainerdError> {
    let relative = parent.trim_start_matches('/');
    let mut dirs = Vec::new();
    let mut tops = Vec::new();
    if let Ok(hierarchies) = fs::read_dir(CGROUP_ROOT) {
        for hierarchy in hierarchies.flatten() {
            let top = hierarchy.path().join(relative);
            if top.is_dir() {
                collect_dirs(&top, &mut dirs);
                tops.push((hierarchy.path(), top));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<u32> = dirs.iter().flat_map(|d| procs(d)).collect();
        if pids.is_empty() {
            break;
        }
        for &pid in &pids {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if Instant::now() >= deadline {
            return Err(ContainerdError::Unkillable {
                path: PathBuf::from(parent),
                pids,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Deepest first (collect_dirs pushes parents before children).
    for dir in dirs.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
    // Then the parents the runtime created (`/baton/<cluster>`), while empty.
    for (hierarchy, top) in tops {
        for parent in top.ancestors().skip(1) {
            if parent == hierarchy || fs::remove_dir(parent).is_err() {
                break;
            }
        }
    }
    Ok(())
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
}

fn procs(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_points_everything_at_the_node_directory() {
        let paths = ContainerdPaths::new(Path::new("/run/x/node-2"), "/baton/c/baton-node-2");
        let text = render_config(&paths, PAUSE_IMAGE);
        for needle in [
            r#"root = "/run/x/node-2/containerd/root""#,
            r#"state = "/run/x/node-2/containerd/state""#,
            r#"address = "/run/x/node-2/containerd/containerd.sock""#,
            r#"sandbox_image = "baton.local/pause:1""#,
            "restrict_oom_score_adj = true",
            r#"Root = "/run/x/node-2/containerd/runc""#,
            r#"bin_dir = "/run/x/node-2/cni/bin""#,
            r#"conf_dir = "/run/x/node-2/cni/net.d""#,
            "SystemdCgroup = false",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn killing_a_missing_cgroup_tree_is_fine() {
        kill_cgroup_tree("/baton/no-such-cluster/no-such-node").unwrap();
    }
}
