//! The persistent cluster of `cargo xtask up/down/status`: fixed names, slot
//! 0 (fabric `172.28.0.0/24`), described by `<state dir>/cluster.json` so a
//! later process can find it, check it and tear it down.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, ClusterError, ClusterSpec, Mode, claim_slot, overlapping_route};
use crate::host;
use crate::iproute;
use crate::process::{ProcessRecord, Tracked};
use crate::registry::Registry;
use crate::topology::{PERSISTENT_NAME, Topology, parse_ephemeral};

const STATE_FILE: &str = "cluster.json";
const LOCK_FILE: &str = "cluster.lock";
const STATE_VERSION: u32 = 1;

/// Failures reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("locking {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("state file {} is not valid: {source}", path.display())]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// What `<state dir>/cluster.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    version: u32,
    topology: Topology,
    /// Set when the cluster has unique names: its slot is filed there.
    registry_root: Option<PathBuf>,
    logs_dir: PathBuf,
    grace_ms: u64,
    processes: Vec<ProcessRecord>,
}

/// What [`Cluster::up`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpOutcome {
    /// Nothing was there; the cluster was created.
    Created,
    /// The cluster was there and healthy; nothing changed.
    Unchanged,
    /// Something was there but not the requested healthy cluster (missing
    /// parts, another node count, no state file); it was torn down, its
    /// processes stopped, and a new cluster created.
    Recreated { problems: Vec<String> },
}

/// What [`Cluster::down`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Whether a state file described a cluster.
    pub had_state: bool,
    /// Names of the processes that were stopped.
    pub stopped: Vec<String>,
}

/// A process of the persistent cluster and whether it runs.
#[derive(Debug, Clone)]
pub struct ProcessStatus {
    pub record: ProcessRecord,
    pub running: bool,
}

/// What [`Cluster::status`] reports.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub name: String,
    pub state_file: PathBuf,
    pub fabric: Ipv4Net,
    pub host_link: String,
    pub host_address: Ipv4Addr,
    /// `(role, namespace, address)` of the control plane, client and nodes.
    pub members: Vec<(String, String, Ipv4Addr)>,
    /// Differences from a healthy cluster (empty: healthy).
    pub problems: Vec<String>,
    pub processes: Vec<ProcessStatus>,
    pub logs_dir: PathBuf,
}

/// A problem for each process that no longer runs: the cluster is not
/// healthy while any part of it is down.
fn exited(processes: &[ProcessStatus]) -> Vec<String> {
    processes
        .iter()
        .filter(|p| !p.running)
        .map(|p| {
            format!(
                "{} (pid {}) is not running; its log: {}",
                p.record.name,
                p.record.pid,
                p.record.log.display()
            )
        })
        .collect()
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let health = if self.problems.is_empty() {
            "healthy"
        } else {
            "DEGRADED"
        };
        writeln!(
            f,
            "cluster {} ({health}), state {}",
            self.name,
            self.state_file.display()
        )?;
        writeln!(
            f,
            "  fabric {}  host {} on {}",
            self.fabric, self.host_address, self.host_link
        )?;
        for (role, netns, addr) in &self.members {
            writeln!(f, "  {role:<8} {netns:<16} {addr}")?;
        }
        for problem in &self.problems {
            writeln!(f, "  problem: {problem}")?;
        }
        if self.processes.is_empty() {
            writeln!(f, "  no processes")?;
        }
        for p in &self.processes {
            let state = if p.running { "running" } else { "exited" };
            writeln!(
                f,
                "  {:<12} pid {:<8} {:<8} in {:<16} log {}",
                p.record.name,
                p.record.pid,
                state,
                p.record.netns,
                p.record.log.display()
            )?;
        }
        Ok(())
    }
}

impl Cluster {
    /// Brings up the persistent cluster described by `spec`, with fixed
    /// names, state in `state_dir` (e.g. `target/baton/`). Idempotent: a
    /// healthy cluster of that shape is returned untouched; anything else
    /// found (half-there, different node count, no state file) is torn down
    /// and recreated. The returned handle does not tear down on drop.
    pub fn up(
        spec: ClusterSpec,
        state_dir: impl AsRef<Path>,
    ) -> Result<(Self, UpOutcome), ClusterError> {
        host::require_root()?;
        spec.validate()?;
        let state_dir = absolute(state_dir.as_ref())?;
        ensure_dir(&state_dir)?;
        let _lock = lock(&state_dir)?;
        let logs_dir = match &spec.logs_dir {
            Some(dir) => absolute(dir)?,
            None => state_dir.join("logs"),
        };
        let fixed = !spec.unique_names;
        let old = load(&state_dir)?;
        // The names asked for, where they are known before anything changes:
        // the fixed ones, or (unique names) those of the cluster this process
        // already owns.
        let asked = if fixed {
            Some(Topology::persistent(spec.nodes, state_dir.join("run")))
        } else {
            old.as_ref()
                .filter(|s| s.registry_root.as_deref() == Some(spec.run_root.as_path()))
                .and_then(|s| parse_ephemeral(&s.topology.name))
                .filter(|(pid, _)| *pid == std::process::id())
                .map(|(pid, slot)| Topology::ephemeral(pid, slot, spec.nodes, &spec.run_root))
        };

        let problems = match (&old, &asked) {
            (Some(state), Some(want)) if state.topology == *want => {
                let problems = want.check();
                if problems.is_empty() {
                    let mut state = state.clone();
                    if state.logs_dir != logs_dir {
                        state.logs_dir.clone_from(&logs_dir);
                        save(&state_dir, &state)?;
                    }
                    let cluster = Self::from_state(state, state_dir);
                    tracing::info!(cluster = %cluster.name(), "already up and healthy");
                    return Ok((cluster, UpOutcome::Unchanged));
                }
                problems
            }
            (Some(state), _) => vec![format!(
                "state file describes another cluster: {} with {} nodes",
                state.topology.name,
                state.topology.nodes.len()
            )],
            (None, Some(want)) if fixed => {
                let found = fixed_names_present(want)?;
                if found.is_empty() {
                    Vec::new()
                } else {
                    vec![format!("found without a state file: {}", found.join(", "))]
                }
            }
            (None, _) => Vec::new(),
        };

        let outcome = if old.is_none() && problems.is_empty() {
            UpOutcome::Created
        } else {
            tracing::warn!(
                ?problems,
                "persistent cluster is not as requested; recreating it"
            );
            remove_everything(&state_dir, old.as_ref(), fixed, spec.nodes)?;
            UpOutcome::Recreated { problems }
        };

        let (want, registry_root) = if fixed {
            let want = Topology::persistent(spec.nodes, state_dir.join("run"));
            if let Some(route) =
                overlapping_route(want.addressing.fabric(), &iproute::host_routes()?)
            {
                return Err(ClusterError::FabricInUse {
                    fabric: want.addressing.fabric(),
                    route,
                });
            }
            (want, None)
        } else {
            let registry = Registry::new(&spec.run_root);
            (
                claim_slot(&registry, spec.nodes)?,
                Some(spec.run_root.clone()),
            )
        };
        let state = State {
            version: STATE_VERSION,
            topology: want,
            registry_root,
            logs_dir,
            grace_ms: u64::try_from(spec.grace.as_millis()).unwrap_or(u64::MAX),
            processes: Vec::new(),
        };
        // Filed first: if building fails half-way, `down` finds the parts.
        save(&state_dir, &state)?;
        let cluster = Self::from_state(state, state_dir);
        cluster.build("baton persistent cluster (cargo xtask up)")?;
        tracing::info!(cluster = %cluster.name(), fabric = %cluster.addressing().fabric(), "persistent cluster ready");
        Ok((cluster, outcome))
    }

    /// Finds the persistent cluster from its state file, changing nothing.
    /// `None` when there is no state file.
    pub fn open(state_dir: impl AsRef<Path>) -> Result<Option<Self>, ClusterError> {
        let state_dir = absolute(state_dir.as_ref())?;
        Ok(load(&state_dir)?.map(|state| Self::from_state(state, state_dir)))
    }

    /// Tears the persistent cluster down from its state file: stops its
    /// recorded processes (checking each PID is still the process started),
    /// kills anything left in its namespaces, removes namespaces, host link,
    /// safety routes, mounts and run directory, then the state file. Logs
    /// are kept. Doing it when nothing is there is fine.
    pub fn down(state_dir: impl AsRef<Path>) -> Result<DownReport, ClusterError> {
        host::require_root()?;
        let state_dir = absolute(state_dir.as_ref())?;
        if !state_dir.exists() {
            return Ok(DownReport::default());
        }
        let _lock = lock(&state_dir)?;
        let old = load(&state_dir)?;
        let report = DownReport {
            had_state: old.is_some(),
            stopped: old
                .iter()
                .flat_map(|s| &s.processes)
                .filter(|p| p.is_running())
                .map(|p| p.name.clone())
                .collect(),
        };
        let fixed = old.as_ref().is_none_or(|s| s.registry_root.is_none());
        remove_everything(&state_dir, old.as_ref(), fixed, 1)?;
        Ok(report)
    }

    /// Reports the persistent cluster's health and processes without
    /// changing anything. `None` when there is no state file.
    pub fn status(state_dir: impl AsRef<Path>) -> Result<Option<ClusterStatus>, ClusterError> {
        let state_dir = &absolute(state_dir.as_ref())?;
        let Some(state) = load(state_dir)? else {
            return Ok(None);
        };
        let t = &state.topology;
        let members = t
            .members()
            .into_iter()
            .map(|(ns, port, addr)| (port, ns.name().to_owned(), addr))
            .collect();
        let processes: Vec<ProcessStatus> = state
            .processes
            .iter()
            .map(|p| ProcessStatus {
                record: p.clone(),
                running: p.is_running(),
            })
            .collect();
        let mut problems = t.check();
        problems.extend(exited(&processes));
        Ok(Some(ClusterStatus {
            name: t.name.clone(),
            state_file: state_dir.join(STATE_FILE),
            fabric: t.addressing.fabric(),
            host_link: t.host_link.clone(),
            host_address: t.addressing.host_address(),
            members,
            problems,
            processes,
            logs_dir: state.logs_dir.clone(),
        }))
    }

    fn from_state(state: State, state_dir: PathBuf) -> Self {
        let cluster = Self::assemble(
            state.topology,
            Mode::Persistent {
                state_dir,
                registry: state.registry_root.map(Registry::new),
            },
            state.logs_dir,
            Duration::from_millis(state.grace_ms),
        );
        *cluster.lock_processes() = state
            .processes
            .into_iter()
            .map(|record| Tracked {
                record,
                child: None,
            })
            .collect();
        cluster
    }

    /// Rewrites the state file's process list.
    pub(crate) fn save_processes(&self, processes: Vec<ProcessRecord>) -> Result<(), ClusterError> {
        let Mode::Persistent { state_dir, .. } = &self.mode else {
            return Ok(());
        };
        let _lock = lock(state_dir)?;
        if let Some(mut state) = load(state_dir)? {
            state.processes = processes;
            save(state_dir, &state)?;
        }
        Ok(())
    }
}

/// Stops the old cluster's processes and removes it; with `fixed`, also
/// everything carrying the persistent cluster's fixed names (any node
/// count). Removes the state file.
fn remove_everything(
    state_dir: &Path,
    old: Option<&State>,
    fixed: bool,
    nodes: usize,
) -> Result<(), ClusterError> {
    if let Some(old) = old {
        let mut cluster = Cluster::from_state(old.clone(), state_dir.to_owned());
        cluster.teardown_inner()?;
    }
    if fixed {
        let nodes = fixed_node_count(old.map_or(0, |s| s.topology.nodes.len()).max(nodes))?;
        let topology = Topology::persistent(nodes, state_dir.join("run"));
        let mut cluster = Cluster::assemble(
            topology,
            Mode::Persistent {
                state_dir: state_dir.to_owned(),
                registry: None,
            },
            state_dir.join("logs"),
            crate::process::DEFAULT_GRACE,
        );
        cluster.teardown_inner()?;
    }
    remove_state(state_dir)?;
    Ok(())
}

/// The highest `baton-node-<k>` present, at least `at_least`.
fn fixed_node_count(at_least: usize) -> Result<usize, ClusterError> {
    let found = iproute::netns_list()?
        .iter()
        .filter_map(|n| {
            n.strip_prefix(&format!("{PERSISTENT_NAME}-node-"))?
                .parse()
                .ok()
        })
        .filter(|k| (1..=crate::addressing::MAX_NODES).contains(k))
        .max()
        .unwrap_or(0);
    Ok(found.max(at_least).max(1))
}

/// Parts of the persistent cluster that exist on the host.
fn fixed_names_present(want: &Topology) -> Result<Vec<String>, ClusterError> {
    let nodes = fixed_node_count(want.nodes.len())?;
    let all = Topology::persistent(nodes, want.run_dir.clone());
    let mut found: Vec<String> = all
        .all_netns()
        .into_iter()
        .filter(|ns| ns.exists())
        .map(|ns| format!("namespace {ns}"))
        .collect();
    if iproute::link_exists(None, &all.host_link) {
        found.push(format!("link {}", all.host_link));
    }
    Ok(found)
}

pub(crate) fn remove_state(state_dir: &Path) -> Result<(), StateError> {
    let path = state_dir.join(STATE_FILE);
    match fs::remove_file(&path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(StateError::Io {
            action: "removing",
            path,
            source: err,
        }),
        _ => Ok(()),
    }
}

/// Paths are stored absolute: the state file is read from other working
/// directories, and mount points are compared with `/proc/self/mountinfo`.
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, StateError> {
    std::path::absolute(path).map_err(|source| StateError::Io {
        action: "resolving",
        path: path.to_owned(),
        source,
    })
}

fn ensure_dir(dir: &Path) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(|source| StateError::Io {
        action: "creating",
        path: dir.to_owned(),
        source,
    })
}

fn lock(state_dir: &Path) -> Result<Flock<File>, StateError> {
    let path = state_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StateError::Io {
            action: "opening",
            path: path.clone(),
            source,
        })?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, source)| StateError::Lock { path, source })
}

fn load(state_dir: &Path) -> Result<Option<State>, StateError> {
    let path = state_dir.join(STATE_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Decode { path, source }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            action: "reading",
            path,
            source,
        }),
    }
}

fn save(state_dir: &Path, state: &State) -> Result<(), StateError> {
    let path = state_dir.join(STATE_FILE);
    let tmp = state_dir.join(format!("{STATE_FILE}.tmp"));
    let io_err = |action, path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    };
    let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
    let mut file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    file.write_all(&bytes).map_err(io_err("writing", &tmp))?;
    file.sync_all().map_err(io_err("syncing", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("renaming", &tmp))
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn an_exited_process_makes_the_cluster_degraded() {
        let record = |name: &str| ProcessRecord {
            name: name.into(),
            netns: "baton-control".into(),
            pid: 4242,
            start_time: 1,
            command: String::new(),
            log: PathBuf::from(format!("/logs/{name}.log")),
            detached: true,
        };
        let processes = vec![
            ProcessStatus {
                record: record("apiserver"),
                running: true,
            },
            ProcessStatus {
                record: record("scheduler"),
                running: false,
            },
        ];
        let problems = exited(&processes);
        assert_eq!(
            problems,
            ["scheduler (pid 4242) is not running; its log: /logs/scheduler.log"]
        );
        let status = ClusterStatus {
            name: "baton".into(),
            state_file: PathBuf::from("/state/cluster.json"),
            fabric: "172.28.0.0/16".parse().unwrap(),
            host_link: "baton-host".into(),
            host_address: Ipv4Addr::new(172, 28, 0, 1),
            members: Vec::new(),
            problems,
            processes,
            logs_dir: PathBuf::from("/logs"),
        };
        let text = status.to_string();
        assert!(text.starts_with("cluster baton (DEGRADED)"), "{text}");
        assert!(text.contains("scheduler    pid 4242     exited"), "{text}");
    }
}
