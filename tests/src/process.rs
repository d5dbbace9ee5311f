//! Long-running processes inside cluster namespaces: started with their
//! output in a log file, remembered by PID and start time, stopped with
//! SIGTERM then SIGKILL.

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::exec::{self, pid_i32};
use crate::netns::Netns;
use crate::owner::ProcessId;

/// How long a process gets between SIGTERM and SIGKILL at teardown.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How long to wait for a SIGKILLed process to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Errors starting or stopping a process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("creating log file {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting {name} (`{command}`) in namespace {netns}: {source}")]
    Spawn {
        name: String,
        command: String,
        netns: String,
        #[source]
        source: io::Error,
    },
    #[error("{name} (`{command}`) in namespace {netns} exited at once; see {}", log.display())]
    ExitedAtOnce {
        name: String,
        command: String,
        netns: String,
        log: PathBuf,
    },
    #[error("a process named {name} is already running (pid {pid})")]
    DuplicateName { name: String, pid: u32 },
    #[error("no process named {name} was started in this cluster")]
    Unknown { name: String },
    #[error("{count} process(es) still running after SIGKILL: {pids:?}")]
    Unkillable { count: usize, pids: Vec<u32> },
}

/// What to run: a program with arguments and environment, under a name
/// that identifies it in the cluster and names its log file.
#[derive(Debug, Clone)]
#[must_use]
pub struct ProcessSpec {
    pub(crate) name: String,
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) cwd: Option<PathBuf>,
}

impl ProcessSpec {
    /// `name` must be unique among the cluster's running processes and
    /// usable as a file name (`<logs>/<name>.log`).
    pub fn new(name: impl Into<String>, program: impl AsRef<OsStr>) -> Self {
        Self {
            name: name.into(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds an environment variable (the rest is inherited).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A process the harness started: enough to find, check and stop it later,
/// also from another process (it is stored in the persistent state file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub name: String,
    /// The namespace it was started in.
    pub netns: String,
    pub pid: u32,
    /// Start time of `pid` (clock ticks after boot): tells it from a recycled PID.
    pub start_time: u64,
    /// The command line, for `status`.
    pub command: String,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Started in its own session, meant to outlive the starting process.
    pub detached: bool,
}

impl ProcessRecord {
    #[must_use]
    pub fn id(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            start_time: self.start_time,
        }
    }

    /// Whether this very process (not a recycled PID) still runs.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.id().is_alive()
    }
}

/// A started process, with its [`Child`] handle while this process is its
/// parent (so it can be reaped).
#[derive(Debug)]
pub(crate) struct Tracked {
    pub record: ProcessRecord,
    pub child: Option<Child>,
}

impl Tracked {
    fn gone(&mut self) -> bool {
        match &mut self.child {
            // Reaps it if it has exited, so no zombie is left behind.
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => !self.record.is_running(),
        }
    }
}

/// Waits (briefly) until `setsid`, which our child execs first, has made
/// the child the leader of its own session, so a detached process is
/// detached when `spawn` returns. Gives up early if the child exits.
fn wait_for_own_session(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        match crate::proc_stat(pid) {
            Some(stat) if stat.session != pid && stat.state != 'Z' => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            _ => return,
        }
    }
}

/// Starts `spec` inside `netns` with stdout and stderr appended to
/// `<logs_dir>/<name>.log`. `detached` puts it in its own session (via
/// `setsid`, which execs without forking, so the PID stays the program's).
pub(crate) fn spawn(
    netns: &Netns,
    spec: &ProcessSpec,
    logs_dir: &Path,
    detached: bool,
) -> Result<Tracked, ProcessError> {
    let log = logs_dir.join(format!("{}.log", spec.name));
    let log_err = |source| ProcessError::Log {
        path: log.clone(),
        source,
    };
    fs::create_dir_all(logs_dir).map_err(log_err)?;
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(log_err)?;

    let mut cmd = if detached {
        let mut cmd = Command::new("setsid");
        cmd.arg("nsenter")
            .arg(format!("--net={}", netns.path().display()))
            .arg("--")
            .arg(&spec.program);
        cmd
    } else {
        netns.command(&spec.program)
    };
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let command = exec::describe(&cmd);
    writeln!(out, "--- baton-e2e: starting in {netns}: {command}").map_err(log_err)?;
    let err_out = out.try_clone().map_err(log_err)?;
    cmd.stdout(out).stderr(err_out);

    let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        name: spec.name.clone(),
        command: command.clone(),
        netns: netns.name().to_owned(),
        source,
    })?;
    let pid = child.id();
    // Our child cannot be reaped before we wait for it, so its /proc entry
    // exists even if it has already exited.
    let Some(id) = ProcessId::of_child(pid) else {
        return Err(ProcessError::ExitedAtOnce {
            name: spec.name.clone(),
            command,
            netns: netns.name().to_owned(),
            log,
        });
    };
    if detached {
        wait_for_own_session(pid);
    }
    tracing::info!(name = %spec.name, pid, %netns, log = %log.display(), "started");
    Ok(Tracked {
        record: ProcessRecord {
            name: spec.name.clone(),
            netns: netns.name().to_owned(),
            pid,
            start_time: id.start_time,
            command,
            log,
            detached,
        },
        child: Some(child),
    })
}

/// Stops processes: SIGTERM to all, up to `grace` for them to exit, then
/// SIGKILL. A PID whose start time no longer matches is left alone.
pub(crate) fn stop(processes: &mut [Tracked], grace: Duration) -> Result<(), ProcessError> {
    let mut running: Vec<&mut Tracked> = processes.iter_mut().collect();
    running.retain_mut(|t| !t.gone());
    for t in &running {
        tracing::debug!(name = %t.record.name, pid = t.record.pid, "SIGTERM");
        signal(&t.record, Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while !running.is_empty() && Instant::now() < deadline {
        running.retain_mut(|t| !t.gone());
        std::thread::sleep(Duration::from_millis(10));
    }
    running.retain_mut(|t| !t.gone());
    for t in &running {
        tracing::warn!(name = %t.record.name, pid = t.record.pid, ?grace, "did not exit after SIGTERM; SIGKILL");
        signal(&t.record, Signal::SIGKILL);
    }
    let deadline = Instant::now() + KILL_WAIT;
    while !running.is_empty() && Instant::now() < deadline {
        running.retain_mut(|t| !t.gone());
        std::thread::sleep(Duration::from_millis(10));
    }
    if running.is_empty() {
        Ok(())
    } else {
        Err(ProcessError::Unkillable {
            count: running.len(),
            pids: running.iter().map(|t| t.record.pid).collect(),
        })
    }
}

/// SIGKILLs processes found inside one of our namespaces (stragglers such
/// as daemons our processes started, or what a killed run left behind) and
/// waits for them to disappear. Never signals the calling process.
pub(crate) fn kill_all(pids: &[u32]) -> Result<(), ProcessError> {
    let me = std::process::id();
    let ids: Vec<ProcessId> = pids
        .iter()
        .filter(|&&pid| pid != me)
        .filter_map(|&pid| ProcessId::of(pid))
        .collect();
    for id in &ids {
        tracing::info!(pid = id.pid, "SIGKILL process left in a cluster namespace");
        let _ = kill(Pid::from_raw(pid_i32(id.pid)), Signal::SIGKILL);
    }
    let deadline = Instant::now() + KILL_WAIT;
    let mut left: Vec<ProcessId> = ids;
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(ProcessId::is_alive);
        std::thread::sleep(Duration::from_millis(10));
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(ProcessError::Unkillable {
            count: left.len(),
            pids: left.iter().map(|id| id.pid).collect(),
        })
    }
}

fn signal(record: &ProcessRecord, sig: Signal) {
    // Checked right before signalling: the PID must still be the process we
    // started (same start time), never a recycled one.
    if record.is_running() {
        let _ = kill(Pid::from_raw(pid_i32(record.pid)), sig);
    }
}
