//! The node's edge to the kernel: the system calls that neither aya nor a
//! safe wrapper crate covers, and the thin safe wrappers the node needs around
//! namespaces and mounts. This is the only module of baton-node allowed to use
//! `unsafe`; every block carries a `SAFETY:` comment.

pub mod ifflags;
pub mod link;
pub mod mount;
pub mod netns;
pub mod rtnetlink;
pub mod test_run;

use std::io;

/// A system call failed; `call` names it the way the kernel documents it.
#[derive(Debug, thiserror::Error)]
#[error("{call} failed: {source}")]
pub struct SyscallError {
    /// The call, e.g. `bpf(BPF_PROG_TEST_RUN)` or `setns(CLONE_NEWNET)`.
    pub call: &'static str,
    /// The error the kernel returned.
    #[source]
    pub source: io::Error,
}

impl SyscallError {
    /// The error `errno` left by the call that just failed.
    pub(crate) fn last(call: &'static str) -> Self {
        Self {
            call,
            source: io::Error::last_os_error(),
        }
    }

    pub(crate) fn from_errno(call: &'static str, errno: nix::errno::Errno) -> Self {
        Self {
            call,
            source: io::Error::from(errno),
        }
    }
}
