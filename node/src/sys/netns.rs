//! Running code inside a network namespace.
//!
//! `setns(CLONE_NEWNET)` changes the namespace of the calling thread only, so
//! the work runs on a fresh thread that joins the namespace and ends with the
//! work: no other thread of the process ever changes namespace. Sockets,
//! netlink requests and interface-name lookups made on that thread act inside
//! the namespace; BPF links created there stay bound to the namespace's device.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
};

use nix::sched::{CloneFlags, setns};

use super::SyscallError;

/// Directory where `ip netns add NAME` creates the namespace file `NAME`.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Entering a network namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened.
    #[error("open network namespace {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel refused to switch the thread into the namespace.
    #[error("enter network namespace {path}: {source}")]
    Enter {
        path: PathBuf,
        #[source]
        source: SyscallError,
    },
    /// The thread for the namespace could not be started.
    #[error("start a thread for network namespace {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Path of the namespace named `name` as created by `ip netns add`.
#[must_use]
pub fn named(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Runs `work` on a new thread inside the network namespace at `netns` (a file
/// such as `/run/netns/NAME` or `/proc/PID/ns/net`) and returns its result.
/// A panic in `work` is resumed on the calling thread.
pub fn run_in<T, F>(netns: &Path, work: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let file = File::open(netns).map_err(|source| NetnsError::Open {
        path: netns.to_owned(),
        source,
    })?;
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("netns".into())
            .spawn_scoped(scope, || {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| NetnsError::Enter {
                    path: netns.to_owned(),
                    source: SyscallError::from_errno("setns(CLONE_NEWNET)", errno),
                })?;
                Ok(work())
            })
            .map_err(|source| NetnsError::Spawn {
                path: netns.to_owned(),
                source,
            })?;
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Fresh network namespaces for tests (they run as root).
#[cfg(test)]
pub mod testing {
    use std::path::PathBuf;
    use std::sync::mpsc;

    use nix::sched::{CloneFlags, unshare};

    /// A fresh network namespace held by a thread until the returned
    /// sender drops: its path (`/proc/<pid>/task/<tid>/ns/net`, which
    /// other processes can open too) and the sender.
    #[must_use]
    pub fn hold_fresh() -> (PathBuf, mpsc::Sender<()>) {
        let (path_tx, path_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).expect("a new network namespace (tests run as root)");
            let tid = nix::unistd::gettid();
            path_tx
                .send(PathBuf::from(format!(
                    "/proc/{}/task/{tid}/ns/net",
                    std::process::id()
                )))
                .unwrap();
            let _ = done_rx.recv();
        });
        (path_rx.recv().unwrap(), done_tx)
    }

    /// Runs `work` on a thread of its own fresh network namespace, which
    /// ends with it.
    pub fn in_fresh<T: Send>(work: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    unshare(CloneFlags::CLONE_NEWNET)
                        .expect("a new network namespace (tests run as root)");
                    work()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_is_reported_by_path() {
        let error = run_in(&named("baton-no-such-netns"), || ()).unwrap_err();
        assert!(matches!(error, NetnsError::Open { .. }), "{error}");
        assert!(error.to_string().contains("/run/netns/baton-no-such-netns"));
    }

    #[test]
    fn work_runs_and_returns_in_the_own_namespace() {
        // Joining the namespace the process is already in needs no privilege
        // beyond what setns checks, and shows the plumbing end to end.
        let own = Path::new("/proc/self/ns/net");
        match run_in(own, || 7) {
            Ok(value) => assert_eq!(value, 7),
            // Without CAP_SYS_ADMIN the kernel refuses even this.
            Err(NetnsError::Enter { source, .. }) => {
                assert_eq!(source.source.raw_os_error(), Some(libc::EPERM));
            }
            Err(other) => panic!("{other}"),
        }
    }
}
