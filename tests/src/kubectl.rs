//! The real `kubectl`, run against a cluster's kubeconfig.
//!
//! baton ships no kubectl: tests drive the user's own client (the
//! `/usr/bin/kubectl` dispatcher picks the version matching the server). So
//! a missing kubectl is reported as such, with what to install, rather than
//! as a bare "No such file or directory".

use std::ffi::OsStr;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::exec;

/// The program every kubectl command runs.
pub const PROGRAM: &str = "kubectl";

/// What a test needs to know when kubectl cannot be found.
pub const NOT_INSTALLED: &str = "kubectl is not installed (not found on PATH): baton ships no \
     kubectl of its own and its tests drive the user's real Kubernetes client; install kubectl \
     (1.27 or newer) and run the tests again";

/// kubectl could not be run.
#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error("{NOT_INSTALLED} (running `{command}`)")]
    NotInstalled { command: String },
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("writing the standard input of `{command}`: {source}")]
    Stdin {
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
}

/// kubectl for one kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
    home: Option<PathBuf>,
}

impl Kubectl {
    /// kubectl with `--kubeconfig <kubeconfig>`.
    #[must_use]
    pub fn new(kubeconfig: impl Into<PathBuf>) -> Self {
        Self {
            kubeconfig: kubeconfig.into(),
            home: None,
        }
    }

    /// Runs kubectl with `HOME` set to `dir`, so its discovery and HTTP
    /// caches live there rather than in the user's home.
    #[must_use]
    pub fn with_home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }

    #[must_use]
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A `kubectl --kubeconfig <kubeconfig>` command, for callers that add
    /// arguments, environment or pipes of their own; start it with
    /// [`spawn`] or [`output`] for a clear message when kubectl is missing.
    #[must_use]
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(PROGRAM);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        if let Some(home) = &self.home {
            cmd.env("HOME", home);
        }
        cmd
    }

    /// Runs `kubectl args…` to completion, feeding `stdin` if given (else
    /// stdin is empty); a non-zero exit is returned, not an error.
    pub fn output<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        stdin: Option<&str>,
    ) -> Result<Output, KubectlError> {
        let mut cmd = self.command();
        cmd.args(args);
        output(&mut cmd, stdin)
    }

    /// [`Kubectl::output`] for tests: panics with the reason if kubectl
    /// could not be run.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S], stdin: Option<&str>) -> Output {
        self.output(args, stdin)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Runs kubectl, which must succeed, and returns its stdout; panics
    /// with its stderr and stdout otherwise.
    pub fn run_ok<S: AsRef<OsStr> + std::fmt::Debug>(
        &self,
        args: &[S],
        stdin: Option<&str>,
    ) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            stderr(&out),
            stdout(&out)
        );
        stdout(&out)
    }
}

/// Starts a kubectl command (see [`Kubectl::command`]) as it is set up.
pub fn spawn(cmd: &mut Command) -> Result<Child, KubectlError> {
    cmd.spawn().map_err(|source| {
        let command = exec::describe(cmd);
        if source.kind() == io::ErrorKind::NotFound {
            KubectlError::NotInstalled { command }
        } else {
            KubectlError::Spawn { command, source }
        }
    })
}

/// Runs a kubectl command to completion with stdout and stderr captured,
/// feeding `stdin` if given (else stdin is empty).
pub fn output(cmd: &mut Command, stdin: Option<&str>) -> Result<Output, KubectlError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = spawn(cmd)?;
    if let Some(input) = stdin {
        let written = child
            .stdin
            .take()
            .map_or(Ok(()), |mut pipe| pipe.write_all(input.as_bytes()));
        if let Err(source) = written {
            let _ = child.kill();
            let _ = child.wait();
            return Err(KubectlError::Stdin {
                command: exec::describe(cmd),
                source,
            });
        }
    }
    child
        .wait_with_output()
        .map_err(|source| KubectlError::Wait {
            command: exec::describe(cmd),
            source,
        })
}

/// A command's stdout as text.
#[must_use]
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's stderr as text.
#[must_use]
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_name_the_kubeconfig_and_the_home() {
        let kubectl = Kubectl::new("/tmp/c/admin.conf").with_home("/tmp/c");
        let cmd = kubectl.command();
        assert_eq!(
            exec::describe(&cmd),
            "kubectl --kubeconfig /tmp/c/admin.conf"
        );
        let home: Vec<_> = cmd
            .get_envs()
            .filter(|(key, _)| *key == "HOME")
            .map(|(_, value)| value.map(Path::new))
            .collect();
        assert_eq!(home, vec![Some(Path::new("/tmp/c"))]);
        assert_eq!(Kubectl::new("/k").command().get_envs().count(), 0);
    }

    #[test]
    fn a_missing_kubectl_says_so() {
        let mut cmd = Command::new("/nonexistent/kubectl");
        cmd.arg("version");
        let error = output(&mut cmd, None).unwrap_err();
        assert!(
            matches!(error, KubectlError::NotInstalled { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("kubectl is not installed"), "{message}");
        assert!(
            message.contains("/nonexistent/kubectl version"),
            "{message}"
        );
    }

    #[test]
    fn output_feeds_stdin_and_captures_both_streams() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo err >&2; exit 4"]);
        let out = output(&mut cmd, Some("manifest\n")).unwrap();
        assert_eq!(stdout(&out), "manifest\n");
        assert_eq!(stderr(&out), "err\n");
        assert_eq!(out.status.code(), Some(4));
    }
}
