//! A named network namespace of the cluster and what can be done inside it.
//!
//! Commands enter a namespace with `nsenter --net=/var/run/netns/<name>`
//! rather than `ip netns exec`: the latter also unshares the mount namespace
//! (to remount /sys), which hides cgroup mounts from the command and breaks
//! runc. In-process work (connecting, binding sockets) runs on a short-lived
//! thread that has `setns(2)`-ed into the namespace, so the rest of the
//! process stays where it was.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use serde::{Deserialize, Serialize};

use crate::exec::{self, CommandError, Output};
use crate::iproute::{self, Route, RouteInfo};
use crate::scratch;

/// Where iproute2 keeps named namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

/// Errors entering a namespace from this process.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("opening network namespace {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("setns into {path}: {source}")]
    Setns {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// A named network namespace (`/var/run/netns/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Netns {
    name: String,
}

impl Netns {
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The namespace's name as `ip netns list` shows it.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/var/run/netns/<name>`, for `nsenter --net=` or `setns`.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// Whether the namespace exists.
    #[must_use]
    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    /// A [`Command`] that runs `program` inside this namespace (only the
    /// network namespace changes; mounts, cgroups and PIDs are the host's).
    #[must_use]
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Runs `program args…` inside the namespace to completion and captures
    /// its output; a non-zero exit is returned, not an error (see
    /// [`Output::check`]). The command is killed after `timeout`.
    pub fn run<I, S>(
        &self,
        program: &str,
        args: I,
        timeout: Duration,
    ) -> Result<Output, CommandError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        exec::run(&mut cmd, timeout)
    }

    /// Like [`Netns::run`], but a non-zero exit is an error.
    pub fn run_ok<I, S>(
        &self,
        program: &str,
        args: I,
        timeout: Duration,
    ) -> Result<Output, CommandError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(program, args, timeout)?.check()
    }

    /// Runs `f` on a fresh thread that has entered this namespace and returns
    /// its result. Sockets created by `f` stay in this namespace and may be
    /// used from any thread afterwards. A panic in `f` is propagated.
    pub fn enter<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let path = self.path();
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            path: path.clone(),
            source,
        })?;
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|source| NetnsError::Setns { path, source })?;
                Ok(f())
            });
            match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// PIDs of every process whose network namespace this is.
    pub fn pids(&self) -> Result<Vec<u32>, CommandError> {
        iproute::netns_pids(&self.name)
    }

    /// Adds a route inside the namespace (`ip -n <ns> route add …`).
    pub fn add_route(&self, route: &Route) -> Result<(), CommandError> {
        tracing::debug!(netns = %self.name, ?route, "add route");
        iproute::route_add(&self.name, route)
    }

    /// Adds or replaces a route inside the namespace (`ip -n <ns> route
    /// replace …`).
    pub fn replace_route(&self, route: &Route) -> Result<(), CommandError> {
        tracing::debug!(netns = %self.name, ?route, "replace route");
        iproute::route_replace(&self.name, route)
    }

    /// Removes a route inside the namespace (`ip -n <ns> route del …`).
    pub fn del_route(&self, route: &Route) -> Result<(), CommandError> {
        tracing::debug!(netns = %self.name, ?route, "delete route");
        iproute::route_del(&self.name, route)
    }

    /// The namespace's IPv4 main routing table.
    pub fn routes(&self) -> Result<Vec<RouteInfo>, CommandError> {
        iproute::routes_in(&self.name)
    }
}

/// A network namespace one test creates for itself (`ip netns add`, named
/// by [`scratch::name`], loopback up) and deletes on drop, also when the
/// test panics; namespaces left by killed runs are deleted first. Derefs
/// to its [`Netns`]. Its methods panic with the failing command, for tests.
#[derive(Debug)]
pub struct OwnedNetns {
    netns: Netns,
}

impl OwnedNetns {
    /// Creates `<PREFIX><pid>-<tag>`, after removing leftovers of dead runs.
    pub fn create(tag: &str) -> Self {
        remove_leftover_namespaces();
        let name = scratch::name(tag);
        // A namespace of this very process can only be left by an earlier
        // test in the same binary that failed to clean up.
        let _ = exec::run_ok(&mut exec::command("ip", ["netns", "del", &name]));
        exec::stdout_of("ip", &["netns", "add", &name]);
        let owned = Self {
            netns: Netns::new(name),
        };
        owned.ip(&["link", "set", "lo", "up"]);
        owned
    }

    /// `ip -n <ns> <args>`; returns its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.netns.name()];
        all.extend_from_slice(args);
        exec::stdout_of("ip", &all)
    }

    /// `program args…` run inside the namespace with `ip netns exec`
    /// (which also mounts a /sys of the namespace); returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.netns.name(), program];
        all.extend_from_slice(args);
        exec::stdout_of("ip", &all)
    }

    /// Runs `work` on a thread inside the namespace (see [`Netns::enter`]).
    pub fn run_in<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        self.netns
            .enter(work)
            .unwrap_or_else(|error| panic!("{error}"))
    }
}

impl std::ops::Deref for OwnedNetns {
    type Target = Netns;

    fn deref(&self) -> &Netns {
        &self.netns
    }
}

impl Drop for OwnedNetns {
    fn drop(&mut self) {
        // Deleting the namespace also destroys the veth ends inside it.
        if let Err(error) = exec::run_ok(&mut exec::command(
            "ip",
            ["netns", "del", self.netns.name()],
        )) {
            eprintln!("delete netns {}: {error}", self.netns);
        }
    }
}

fn remove_leftover_namespaces() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if scratch::owner_is_gone(&name) {
            let _ = exec::run_ok(&mut exec::command("ip", ["netns", "del", &name]));
        }
    }
}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}
