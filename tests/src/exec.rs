//! Running external commands to completion with a timeout, capturing output.
//!
//! Every host side effect of the harness (`ip`, `nsenter`, `mount`…) goes
//! through [`run`], so every failure names the command line (which, for
//! `ip -n <ns>` and `nsenter --net=<path>`, names the namespace too), its exit
//! status and its stderr.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{self, Read};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long harness-internal commands (`ip`, `mount`) may take.
pub(crate) const HOST_COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// A command that could not be run, failed, or did not finish in time.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(
        "could not start `{command}`: {source}{}",
        missing_kubectl(command, source)
    )]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("waiting for `{command}`: {source}")]
    Wait {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {}", stderr.trim())]
    Failed {
        command: String,
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
    #[error("`{command}` did not finish within {timeout:?} and was killed; stderr so far: {}", stderr.trim())]
    Timeout {
        command: String,
        timeout: Duration,
        stdout: String,
        stderr: String,
    },
}

/// The reason to add when the program that could not be found is kubectl,
/// the user's own client.
fn missing_kubectl(command: &str, source: &io::Error) -> String {
    let program = command.split_whitespace().next().unwrap_or_default();
    if source.kind() == io::ErrorKind::NotFound && program == crate::kubectl::PROGRAM {
        format!("; {}", crate::kubectl::NOT_INSTALLED)
    } else {
        String::new()
    }
}

/// The result of a command that ran to completion (successfully or not).
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Whether the command exited with status 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Turns a non-zero exit into [`CommandError::Failed`].
    pub fn check(self) -> Result<Self, CommandError> {
        if self.success() {
            Ok(self)
        } else {
            Err(CommandError::Failed {
                command: self.command,
                status: self.status,
                stdout: self.stdout,
                stderr: self.stderr,
            })
        }
    }
}

/// Renders a command line for messages and logs.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            let _ = write!(line, " '{arg}'");
        } else {
            let _ = write!(line, " {arg}");
        }
    }
    line
}

/// Runs `cmd` to completion, capturing stdout and stderr, killing it (and
/// anything it started in its process group) when `timeout` passes.
///
/// A non-zero exit is returned as an [`Output`]; use [`Output::check`] to
/// make it an error.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output, CommandError> {
    let command = describe(cmd);
    tracing::trace!(%command, "run");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group, so a timeout kills what the command started too.
        .process_group(0)
        .spawn()
        .map_err(|source| CommandError::Spawn {
            command: command.clone(),
            source,
        })?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());

    let status = match wait_until(&mut child, Instant::now() + timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let pgid = Pid::from_raw(pid_i32(child.id()));
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
            return Err(CommandError::Timeout {
                command,
                timeout,
                stdout: join_reader(stdout),
                stderr: join_reader(stderr),
            });
        }
        Err(source) => return Err(CommandError::Wait { command, source }),
    };
    Ok(Output {
        command,
        status,
        stdout: join_reader(stdout),
        stderr: join_reader(stderr),
    })
}

/// Runs `program args…` (killed after 20 s) for a test and returns its
/// stdout; panics with the command line, exit status and stderr if it
/// cannot be run or fails.
pub fn stdout_of<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    run_ok(&mut command(program, args)).unwrap_or_else(|error| panic!("{error}"))
}

/// Runs `cmd` and fails on a non-zero exit; returns stdout.
pub(crate) fn run_ok(cmd: &mut Command) -> Result<String, CommandError> {
    Ok(run(cmd, HOST_COMMAND_TIMEOUT)?.check()?.stdout)
}

/// Builds a command from a program and arguments.
pub(crate) fn command<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// Polls `child` until it exits or `deadline` passes (`Ok(None)`).
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

pub(crate) fn pid_i32(pid: u32) -> i32 {
    i32::try_from(pid).unwrap_or(i32::MAX)
}

type Reader = Option<thread::JoinHandle<String>>;

fn read_in_background<R: Read + Send + 'static>(pipe: Option<R>) -> Reader {
    pipe.map(|mut pipe| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

fn join_reader(reader: Reader) -> String {
    reader
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let out = run(
            &mut command("sh", ["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status.code(), Some(3));
        let err = out.check().unwrap_err().to_string();
        assert!(
            err.contains("sh -c 'echo out; echo err >&2; exit 3'"),
            "{err}"
        );
        assert!(err.contains("err"), "{err}");
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let started = Instant::now();
        let err = run(
            &mut command("sh", ["-c", "echo partial; sleep 30 & wait"]),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        match err {
            CommandError::Timeout { stdout, .. } => assert_eq!(stdout, "partial\n"),
            other => panic!("expected a timeout, got {other}"),
        }
    }

    #[test]
    fn missing_program_names_the_command() {
        let err = run(
            &mut command("/nonexistent/baton-e2e-tool", ["--flag"]),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, CommandError::Spawn { .. }));
        assert!(
            err.to_string()
                .contains("/nonexistent/baton-e2e-tool --flag")
        );
    }
}
