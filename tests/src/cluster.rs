//! [`Cluster`]: a running namespace cluster, its members, its processes, and
//! its lifecycle for tests (unique names, torn down on drop).
//! The persistent mode (`cargo xtask up/down/status`) is in `persistent.rs`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::addressing::{self, Addressing, MAX_NODES, Slot};
use crate::exec::CommandError;
use crate::host::{self, HostError};
use crate::iproute;
use crate::leftovers;
use crate::netns::Netns;
use crate::owner::ProcessId;
use crate::persistent::StateError;
use crate::process::{self, DEFAULT_GRACE, ProcessError, ProcessRecord, ProcessSpec, Tracked};
use crate::ready::{self, ReadyError};
use crate::registry::{DEFAULT_RUN_ROOT, Registry, RegistryError, SlotRecord};
use crate::safety;
use crate::topology::Topology;

/// Everything that can go wrong creating, using or removing a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("a cluster needs 1..={MAX_NODES} nodes, not {0}")]
    NodeCount(usize),
    #[error(
        "no free fabric slot in 172.28.1.0–172.28.255.0 (all taken by live clusters or host routes)"
    )]
    NoFreeSlot,
    #[error("the fabric subnet {fabric} overlaps the host route {route}")]
    FabricInUse { fabric: Ipv4Net, route: String },
    #[error("creating cluster {cluster}: {source}")]
    Create {
        cluster: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error("namespace {netns} is not part of cluster {cluster}")]
    ForeignNamespace { netns: String, cluster: String },
    #[error("no node {index} (the cluster has {count})")]
    NoSuchNode { index: usize, count: usize },
    #[error("tearing down cluster {cluster} left: {}", problems.join("; "))]
    Teardown {
        cluster: String,
        problems: Vec<String>,
    },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Command(Box<CommandError>),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Ready(Box<ReadyError>),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<CommandError> for ClusterError {
    fn from(err: CommandError) -> Self {
        Self::Command(Box::new(err))
    }
}

impl From<ReadyError> for ClusterError {
    fn from(err: ReadyError) -> Self {
        Self::Ready(Box::new(err))
    }
}

/// How to build a cluster.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClusterSpec {
    pub(crate) nodes: usize,
    pub(crate) logs_dir: Option<PathBuf>,
    pub(crate) run_root: PathBuf,
    pub(crate) grace: Duration,
    pub(crate) unique_names: bool,
}

impl ClusterSpec {
    /// A cluster of `nodes` nodes (1..=[`MAX_NODES`]).
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            logs_dir: None,
            run_root: PathBuf::from(DEFAULT_RUN_ROOT),
            grace: DEFAULT_GRACE,
            unique_names: false,
        }
    }

    /// Where process logs go. Default: `$TMPDIR/baton-e2e-logs/<cluster>`
    /// for test clusters, `<state dir>/logs` for the persistent one. Logs are
    /// kept after teardown.
    pub fn logs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.logs_dir = Some(dir.into());
        self
    }

    /// Test clusters only: where slot records and run directories live
    /// (default `/run/baton-e2e`). Leftover removal covers this root only.
    pub fn run_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_root = dir.into();
        self
    }

    /// Persistent mode only: use a test cluster's unique names and a free
    /// slot instead of the fixed `baton-*` names and slot 0, so the
    /// persistent mode can be tested beside a running `cargo xtask up`
    /// cluster. The slot is filed as owned by the calling process: should it
    /// die, the next test cluster removes this one as a leftover.
    pub fn unique_names(mut self) -> Self {
        self.unique_names = true;
        self
    }

    /// Time between SIGTERM and SIGKILL when processes are stopped.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ClusterError> {
        if (1..=MAX_NODES).contains(&self.nodes) {
            Ok(())
        } else {
            Err(ClusterError::NodeCount(self.nodes))
        }
    }
}

/// A namespace attached to the fabric: the control plane or the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    netns: Netns,
    address: Ipv4Addr,
}

impl Member {
    #[must_use]
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Its `eth0` address on the fabric.
    #[must_use]
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    index: usize,
    name: String,
    netns: Netns,
    address: Ipv4Addr,
    pod_cidr: Ipv4Net,
    dir: PathBuf,
}

impl Node {
    /// 1-based position in the cluster.
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }

    /// The Kubernetes Node name, `baton-node-<index>` in every cluster (the
    /// host-visible namespace name is [`Node::netns`]).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Its `eth0` address on the fabric (the Node's InternalIP).
    #[must_use]
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// Its podCIDR, `10.244.<index>.0/24`.
    #[must_use]
    pub fn pod_cidr(&self) -> Ipv4Net {
        self.pod_cidr
    }

    /// A directory for this node's state (containerd root, sockets, bpffs),
    /// under the cluster's run directory; removed (and unmounted) at teardown.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

pub(crate) enum Mode {
    /// A test cluster: its slot is filed in `registry`.
    Ephemeral { registry: Registry },
    /// The `cargo xtask up` cluster, described by the state file in
    /// `state_dir`; with unique names, its slot is also filed in `registry`.
    Persistent {
        state_dir: PathBuf,
        registry: Option<Registry>,
    },
}

/// A cluster of network namespaces on this host. A test cluster is torn
/// down when dropped (also while unwinding from a panic); a persistent one
/// outlives the process (see [`Cluster::up`] and [`Cluster::down`]).
pub struct Cluster {
    pub(crate) topology: Topology,
    pub(crate) mode: Mode,
    pub(crate) logs_dir: PathBuf,
    pub(crate) grace: Duration,
    pub(crate) control: Member,
    pub(crate) client: Member,
    pub(crate) nodes: Vec<Node>,
    pub(crate) processes: Mutex<Vec<Tracked>>,
    pub(crate) torn_down: bool,
}

static SLOT_SEED: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// Creates a test cluster with names unique to this process
    /// (`baton-<pid>-<slot>-…`) on a free fabric slot, after removing what
    /// killed earlier runs left behind. Host safety routes are installed
    /// before any namespace exists.
    pub fn create(spec: ClusterSpec) -> Result<Self, ClusterError> {
        host::require_root()?;
        spec.validate()?;
        let registry = Registry::new(crate::persistent::absolute(&spec.run_root)?);
        let owner = ProcessId::current();
        let topology = claim_slot(&registry, spec.nodes)?;
        let logs_dir = spec.logs_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir()
                .join("baton-e2e-logs")
                .join(&topology.name)
        });
        let cluster = Self::assemble(topology, Mode::Ephemeral { registry }, logs_dir, spec.grace);
        // From here on, a failure drops `cluster`, which removes whatever
        // was built and releases the slot.
        let alias = format!("baton test cluster {} (pid {})", cluster.name(), owner.pid);
        cluster.build(&alias)?;
        tracing::info!(cluster = %cluster.name(), fabric = %cluster.addressing().fabric(), "cluster ready");
        Ok(cluster)
    }

    pub(crate) fn assemble(
        topology: Topology,
        mode: Mode,
        logs_dir: PathBuf,
        grace: Duration,
    ) -> Self {
        let a = topology.addressing;
        let control = Member {
            netns: topology.control.clone(),
            address: a.control_address(),
        };
        let client = Member {
            netns: topology.client.clone(),
            address: a.client_address(),
        };
        let nodes = topology
            .nodes
            .iter()
            .enumerate()
            .map(|(i, netns)| {
                let index = i + 1;
                Node {
                    index,
                    name: format!("baton-node-{index}"),
                    netns: netns.clone(),
                    address: a.node_address(index),
                    pod_cidr: addressing::node_pod_cidr(index),
                    dir: topology.node_dir(index),
                }
            })
            .collect();
        Self {
            topology,
            mode,
            logs_dir,
            grace,
            control,
            client,
            nodes,
            processes: Mutex::new(Vec::new()),
            torn_down: false,
        }
    }

    /// Installs the safety routes, then the namespaces and links, then the
    /// node directories.
    pub(crate) fn build(&self, alias: &str) -> Result<(), ClusterError> {
        let create_err = |source| ClusterError::Create {
            cluster: self.name().to_owned(),
            source: Box::new(source),
        };
        safety::install(&self.topology.addressing).map_err(create_err)?;
        self.topology.build(alias).map_err(create_err)?;
        for node in &self.nodes {
            std::fs::create_dir_all(&node.dir).map_err(|source| HostError::Io {
                action: "creating",
                path: node.dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    // ---- what the cluster is ----

    /// `baton-<pid>-<slot>` for test clusters, `baton` for the persistent one.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.topology.name
    }

    #[must_use]
    pub fn is_persistent(&self) -> bool {
        matches!(self.mode, Mode::Persistent { .. })
    }

    /// The address plan (fabric subnet, host address, safety-route metric).
    #[must_use]
    pub fn addressing(&self) -> Addressing {
        self.topology.addressing
    }

    /// The namespace holding the fabric bridge.
    #[must_use]
    pub fn fabric(&self) -> &Netns {
        &self.topology.fabric
    }

    /// The host's veth into the fabric (it holds [`Cluster::host_address`]).
    #[must_use]
    pub fn host_link(&self) -> &str {
        &self.topology.host_link
    }

    /// The host's address on the fabric.
    #[must_use]
    pub fn host_address(&self) -> Ipv4Addr {
        self.topology.addressing.host_address()
    }

    /// The control-plane namespace (etcd, API server).
    #[must_use]
    pub fn control(&self) -> &Member {
        &self.control
    }

    /// The outside-client namespace.
    #[must_use]
    pub fn client(&self) -> &Member {
        &self.client
    }

    #[must_use]
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `index` (1-based).
    pub fn node(&self, index: usize) -> Result<&Node, ClusterError> {
        index
            .checked_sub(1)
            .and_then(|i| self.nodes.get(i))
            .ok_or(ClusterError::NoSuchNode {
                index,
                count: self.nodes.len(),
            })
    }

    /// The cluster's run directory (node directories live below it).
    #[must_use]
    pub fn run_dir(&self) -> &Path {
        &self.topology.run_dir
    }

    #[must_use]
    pub fn logs_dir(&self) -> &Path {
        &self.logs_dir
    }

    // ---- processes ----

    /// Starts a process inside `netns` (one of this cluster's), with stdout
    /// and stderr appended to `<logs dir>/<name>.log`. Test clusters stop it
    /// at teardown; the persistent cluster starts it in its own session and
    /// records it in the state file, so it outlives this process until
    /// [`Cluster::down`].
    pub fn spawn(&self, netns: &Netns, spec: ProcessSpec) -> Result<ProcessRecord, ClusterError> {
        if !self.topology.all_netns().contains(&netns) {
            return Err(ClusterError::ForeignNamespace {
                netns: netns.name().to_owned(),
                cluster: self.name().to_owned(),
            });
        }
        let mut processes = self.lock_processes();
        if let Some(running) = processes
            .iter()
            .find(|t| t.record.name == spec.name && t.record.is_running())
        {
            return Err(ProcessError::DuplicateName {
                name: spec.name.clone(),
                pid: running.record.pid,
            }
            .into());
        }
        let tracked = process::spawn(netns, &spec, &self.logs_dir, self.is_persistent())?;
        let record = tracked.record.clone();
        processes.retain(|t| t.record.name != spec.name);
        processes.push(tracked);
        if self.is_persistent() {
            let records: Vec<ProcessRecord> = processes.iter().map(|t| t.record.clone()).collect();
            drop(processes);
            self.save_processes(records)?;
        }
        Ok(record)
    }

    /// Every process started in this cluster (running or not).
    #[must_use]
    pub fn processes(&self) -> Vec<ProcessRecord> {
        self.lock_processes()
            .iter()
            .map(|t| t.record.clone())
            .collect()
    }

    /// The process started under `name`, if any.
    #[must_use]
    pub fn process(&self, name: &str) -> Option<ProcessRecord> {
        self.lock_processes()
            .iter()
            .find(|t| t.record.name == name)
            .map(|t| t.record.clone())
    }

    /// SIGKILLs the process started under `name` (a crash, for tests of
    /// what survives one), waits up to 5 s for it to go, and forgets it.
    pub fn kill_process(&self, name: &str) -> Result<(), ClusterError> {
        let record = self.process(name).ok_or_else(|| ProcessError::Unknown {
            name: name.to_owned(),
        })?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(crate::exec::pid_i32(record.pid)),
            nix::sys::signal::Signal::SIGKILL,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while record.is_running() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop_process(name)
    }

    /// Stops the process started under `name` (SIGTERM, then SIGKILL after
    /// the grace period) and forgets it.
    pub fn stop_process(&self, name: &str) -> Result<(), ClusterError> {
        let mut processes = self.lock_processes();
        let Some(pos) = processes.iter().position(|t| t.record.name == name) else {
            return Err(ProcessError::Unknown {
                name: name.to_owned(),
            }
            .into());
        };
        let mut tracked = processes.remove(pos);
        let result = process::stop(std::slice::from_mut(&mut tracked), self.grace);
        if self.is_persistent() {
            let records: Vec<ProcessRecord> = processes.iter().map(|t| t.record.clone()).collect();
            drop(processes);
            self.save_processes(records)?;
        }
        Ok(result?)
    }

    /// Waits until `addr` accepts TCP connections from inside the namespace
    /// of the process started under `name`, failing at once (with the tail
    /// of its log) if that process exits.
    pub fn wait_for_process_tcp(
        &self,
        name: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Duration, ClusterError> {
        let record = self.process(name).ok_or_else(|| ProcessError::Unknown {
            name: name.to_owned(),
        })?;
        let netns = Netns::new(&record.netns);
        Ok(ready::wait_tcp(&netns, addr, timeout, Some(&record))?)
    }

    /// Mounts a private bpffs at `<node dir>/bpf` (pins of that node's
    /// dataplane); unmounted at teardown. Returns the mount point.
    pub fn mount_bpffs(&self, node_index: usize) -> Result<PathBuf, ClusterError> {
        let dir = self.node(node_index)?.dir.join("bpf");
        if !host::mounts_under(&dir).contains(&dir) {
            host::mount_bpffs(&dir)?;
        }
        Ok(dir)
    }

    pub(crate) fn lock_processes(&self) -> std::sync::MutexGuard<'_, Vec<Tracked>> {
        // A panic while holding the lock leaves a valid list behind.
        self.processes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- teardown ----

    /// Stops every process, removes namespaces, links, routes, mounts and
    /// run directory, and (test clusters) releases the slot; for the
    /// persistent cluster this is [`Cluster::down`]. Dropping a test cluster
    /// does the same, logging instead of returning problems.
    pub fn teardown(mut self) -> Result<(), ClusterError> {
        self.teardown_inner()
    }

    pub(crate) fn teardown_inner(&mut self) -> Result<(), ClusterError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        tracing::info!(cluster = %self.name(), "tearing down");
        let mut problems = Vec::new();
        {
            let mut processes = self.lock_processes();
            // Reverse start order: clients before the servers they use.
            processes.reverse();
            if let Err(err) = process::stop(&mut processes, self.grace) {
                problems.push(err.to_string());
            }
            processes.clear();
        }
        problems.extend(self.topology.destroy());
        match &self.mode {
            Mode::Ephemeral { registry } => {
                // Kept when something is left, so a later run retries once
                // this process is gone.
                if problems.is_empty()
                    && let Err(err) = registry.remove(self.topology.addressing.slot())
                {
                    problems.push(err.to_string());
                }
            }
            Mode::Persistent {
                state_dir,
                registry,
            } => {
                if problems.is_empty()
                    && let Err(err) = crate::persistent::remove_state(state_dir)
                {
                    problems.push(err.to_string());
                }
                if problems.is_empty()
                    && let Some(registry) = registry
                    && let Err(err) = registry.remove(self.topology.addressing.slot())
                {
                    problems.push(err.to_string());
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ClusterError::Teardown {
                cluster: self.name().to_owned(),
                problems,
            })
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.is_persistent() {
            return;
        }
        if let Err(err) = self.teardown_inner() {
            tracing::error!(%err, "cluster teardown incomplete");
            eprintln!("baton-e2e: {err}");
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.topology.name)
            .field("fabric", &self.topology.addressing.fabric())
            .field("nodes", &self.nodes.len())
            .field("persistent", &self.is_persistent())
            .finish_non_exhaustive()
    }
}

/// Removes leftovers of dead runs, then picks a free slot (not filed, its
/// fabric not overlapping any host route) and files it as owned by this
/// process, all under the registry lock. Slots are tried from a point that
/// depends on the PID, so concurrent runs rarely probe the same ones.
pub(crate) fn claim_slot(registry: &Registry, nodes: usize) -> Result<Topology, ClusterError> {
    let owner = ProcessId::current();
    let lock = registry.lock()?;
    let removed = leftovers::sweep(registry, &lock)?;
    if !removed.is_empty() {
        tracing::info!(?removed, "removed leftovers of earlier runs");
    }
    let taken: Vec<Slot> = registry
        .records(&lock)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let host_routes = iproute::host_routes()?;
    let seed = owner.pid as usize + SLOT_SEED.fetch_add(1, Ordering::Relaxed);
    let slot = (0..255)
        .map(|i| Slot::try_from((seed + i) % 255 + 1).expect("1..=255"))
        .find(|&slot| {
            !taken.contains(&slot)
                && overlapping_route(Addressing::for_slot(slot).fabric(), &host_routes).is_none()
        })
        .ok_or(ClusterError::NoFreeSlot)?;
    let topology = Topology::ephemeral(owner.pid, slot, nodes, registry.root());
    registry.write(
        &lock,
        &SlotRecord {
            owner,
            topology: topology.clone(),
        },
    )?;
    Ok(topology)
}

/// A host route (other than the harness's own) overlapping `fabric`.
pub(crate) fn overlapping_route(fabric: Ipv4Net, routes: &[iproute::RouteInfo]) -> Option<String> {
    routes
        .iter()
        .filter(|r| r.dst != "default")
        .find(|r| {
            let dst: Option<Ipv4Net> = r
                .dst
                .parse()
                .ok()
                .or_else(|| r.dst.parse::<Ipv4Addr>().ok().map(Ipv4Net::from));
            dst.is_some_and(|d| d.contains(&fabric) || fabric.contains(&d))
        })
        .map(|r| format!("{} {}", r.dst, r.dev.as_deref().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str) -> iproute::RouteInfo {
        iproute::RouteInfo {
            kind: None,
            dst: dst.to_owned(),
            gateway: None,
            dev: Some("x".to_owned()),
            metric: None,
        }
    }

    #[test]
    fn overlap_detection() {
        let fabric: Ipv4Net = "172.28.5.0/24".parse().unwrap();
        assert!(overlapping_route(fabric, &[route("default"), route("192.0.2.0/24")]).is_none());
        assert!(overlapping_route(fabric, &[route("172.16.0.0/12")]).is_some());
        assert!(overlapping_route(fabric, &[route("172.28.5.7")]).is_some());
        assert!(overlapping_route(fabric, &[route("172.28.6.0/24")]).is_none());
    }

    #[test]
    fn spec_validation() {
        assert!(ClusterSpec::new(0).validate().is_err());
        assert!(ClusterSpec::new(MAX_NODES + 1).validate().is_err());
        assert!(ClusterSpec::new(3).validate().is_ok());
    }
}
