//! The object's programs by where they attach ([`Hook`]): loading them
//! into the kernel (the verifier checks every one at start), pinning the
//! pod program for other processes, and swapping them into the links an
//! earlier run pinned.

use std::{
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    programs::{CgroupSock, CgroupSockAddr, ProgramError, SchedClassifier},
};
use baton_abi::programs;

use super::links;
use crate::dataplane::DataplaneError;

/// A program of the object, named by where it attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// tc ingress on the node uplink.
    UplinkIngress,
    /// tc egress on the node uplink.
    UplinkEgress,
    /// tc ingress on a pod's host-side veth (what the pod sends).
    PodIngress,
    /// cgroup `connect4`.
    SockConnect4,
    /// cgroup `sendmsg4`.
    SockSendmsg4,
    /// cgroup `recvmsg4`.
    SockRecvmsg4,
    /// cgroup `getpeername4`.
    SockGetpeername4,
    /// cgroup `sock_release`.
    SockRelease,
}

/// The kind of program behind a hook, which decides how it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProgramKind {
    Tc,
    SockAddr,
    Sock,
}

impl Hook {
    /// Every program of the object.
    pub const ALL: [Self; 8] = [
        Self::UplinkIngress,
        Self::UplinkEgress,
        Self::PodIngress,
        Self::SockConnect4,
        Self::SockSendmsg4,
        Self::SockRecvmsg4,
        Self::SockGetpeername4,
        Self::SockRelease,
    ];

    /// The socket-LB programs, attached together to a cgroup.
    pub const SOCKET: [Self; 5] = [
        Self::SockConnect4,
        Self::SockSendmsg4,
        Self::SockRecvmsg4,
        Self::SockGetpeername4,
        Self::SockRelease,
    ];

    /// The program's name in the object.
    #[must_use]
    pub const fn program_name(self) -> &'static str {
        match self {
            Self::UplinkIngress => programs::UPLINK_INGRESS,
            Self::UplinkEgress => programs::UPLINK_EGRESS,
            Self::PodIngress => programs::POD_INGRESS,
            Self::SockConnect4 => programs::SOCK_CONNECT4,
            Self::SockSendmsg4 => programs::SOCK_SENDMSG4,
            Self::SockRecvmsg4 => programs::SOCK_RECVMSG4,
            Self::SockGetpeername4 => programs::SOCK_GETPEERNAME4,
            Self::SockRelease => programs::SOCK_RELEASE,
        }
    }

    const fn kind(self) -> ProgramKind {
        match self {
            Self::UplinkIngress | Self::UplinkEgress | Self::PodIngress => ProgramKind::Tc,
            Self::SockRelease => ProgramKind::Sock,
            Self::SockConnect4
            | Self::SockSendmsg4
            | Self::SockRecvmsg4
            | Self::SockGetpeername4 => ProgramKind::SockAddr,
        }
    }
}

/// Swaps this object's programs into every link pinned by an earlier run.
pub(crate) fn refresh_links(ebpf: &Ebpf, links: &links::Links) -> usize {
    let fds: Vec<(&str, aya::programs::ProgramFd)> = Hook::ALL
        .iter()
        .filter_map(|hook| {
            let name = hook.program_name();
            let fd = ebpf.program(name)?.fd().ok()?.try_clone().ok()?;
            Some((name, fd))
        })
        .collect();
    let borrowed: Vec<(&str, std::os::fd::BorrowedFd<'_>)> =
        fds.iter().map(|(name, fd)| (*name, fd.as_fd())).collect();
    links.refresh_all(&borrowed)
}

/// Where baton-node pins the pod program under its pin directory:
/// `<pin dir>/programs/pod_ingress`.
#[must_use]
pub fn pod_program_pin(pin_dir: &Path) -> PathBuf {
    pin_dir
        .join("programs")
        .join(Hook::PodIngress.program_name())
}

/// Pins the pod program at [`pod_program_pin`], replacing an earlier run's,
/// so a process other than baton-node can attach it to a pod's veth as a
/// pinned link (with [`links::Links`] and the endpoints map of
/// [`NodeState::from_pins`](crate::dataplane::NodeState::from_pins)); baton-node's next start swaps its programs
/// into such links as into its own.
pub(crate) fn pin_pod_program(ebpf: &mut Ebpf, dir: &Path) -> Result<(), DataplaneError> {
    let name = Hook::PodIngress.program_name();
    let path = pod_program_pin(dir);
    let io = |source: std::io::Error| {
        DataplaneError::Links(links::LinkPinError::Io {
            action: "replace program pin",
            path: path.clone(),
            source,
        })
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io(error)),
    }
    let program: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or(DataplaneError::MissingProgram { name })?
        .try_into()
        .map_err(|source| DataplaneError::Program {
            name,
            source: Box::new(source),
        })?;
    program
        .pin(&path)
        .map_err(|source| DataplaneError::ProgramPin {
            path,
            source: Box::new(source),
        })
}

/// Loads the program of `hook` into the kernel.
pub(crate) fn load_program(ebpf: &mut Ebpf, hook: Hook) -> Result<(), DataplaneError> {
    let name = hook.program_name();
    let program = ebpf
        .program_mut(name)
        .ok_or(DataplaneError::MissingProgram { name })?;
    let error = |source: ProgramError| DataplaneError::Program {
        name,
        source: Box::new(source),
    };
    match hook.kind() {
        ProgramKind::Tc => <&mut SchedClassifier>::try_from(program)
            .map_err(error)?
            .load()
            .map_err(error),
        ProgramKind::SockAddr => <&mut CgroupSockAddr>::try_from(program)
            .map_err(error)?
            .load()
            .map_err(error),
        ProgramKind::Sock => <&mut CgroupSock>::try_from(program)
            .map_err(error)?
            .load()
            .map_err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EBPF_OBJECT;

    fn object() -> aya_obj::Object {
        aya_obj::Object::parse(EBPF_OBJECT).unwrap()
    }

    #[test]
    fn embedded_object_has_every_program_the_node_loads() {
        let object = object();
        for hook in Hook::ALL {
            assert!(
                object.programs.contains_key(hook.program_name()),
                "no program {}",
                hook.program_name()
            );
        }
    }

    #[test]
    fn embedded_object_declares_a_gpl_compatible_license() {
        // Without it the kernel refuses GPL-only helpers at load time.
        assert_eq!(object().license.to_str().unwrap(), "Dual MIT/GPL");
    }
}
