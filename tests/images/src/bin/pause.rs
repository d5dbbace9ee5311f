//! The pod sandbox's process: holds the pod's namespaces open, reaps
//! zombies (it is PID 1 of the pod when the PID namespace is shared), and
//! exits on SIGTERM or SIGINT, like Kubernetes' `pause`.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

fn main() {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        set.add(signal);
    }
    // Blocked signals stay pending until `wait` takes them, so none is
    // lost between two waits (and PID 1 gets them at all: the kernel drops
    // signals to PID 1 that it neither handles nor waits for).
    if let Err(err) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("pause: sigprocmask: {err}");
        std::process::exit(1);
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => reap(),
            Ok(_) => std::process::exit(0),
            Err(err) => {
                eprintln!("pause: sigwait: {err}");
                std::process::exit(1);
            }
        }
    }
}

/// Reaps every child that has exited.
fn reap() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}
