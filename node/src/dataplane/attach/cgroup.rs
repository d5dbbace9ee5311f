//! Attaching the socket-LB programs to a cgroup v2 directory.
//!
//! Every socket created by a process in that cgroup or below is translated
//! (socket hooks run for the socket's cgroup, recorded when the socket is
//! created). baton-node attaches them to the subtree holding its pods and
//! host processes (on this machine the cgroup v2 hierarchy is mounted at
//! `/sys/fs/cgroup/unified`).
//!
//! The programs are attached as BPF links, which the kernel always treats as
//! `BPF_F_ALLOW_MULTI` (and refuses any attach flag for: aya passes the
//! mode as link flags, so the mode given is the flagless `Single`): other
//! programs on the same hooks keep running, and an ancestor cgroup with the
//! same programs attached does no harm (the second pass sees a backend
//! address, which is no frontend). The dataplane holds the links (see
//! [`super::links`]): with a pin directory they stay attached while the
//! agent restarts and the next agent swaps its programs in; without one
//! they go with the dataplane. Established connections never depend on
//! them: they are connected to their backends directly.

use std::{
    fs::File,
    io,
    os::{fd::AsFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    programs::{
        CgroupAttachMode, CgroupSock, CgroupSockAddr, ProgramError,
        links::{FdLink, LinkError},
    },
};
use tracing::info;

use super::{
    links::{LinkAttachError, LinkPinError, LinkRef, Links},
    programs::Hook,
};

/// Attaching to or detaching from a cgroup failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The cgroup directory could not be opened.
    #[error("open cgroup {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The object lacks the program: the build is broken.
    #[error("the eBPF object has no program {name}")]
    MissingProgram { name: &'static str },
    /// The kernel refused the attachment.
    #[error("attach {name} to cgroup {path}: {source}")]
    Program {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: Box<ProgramError>,
    },
    /// The link could not be taken over from aya.
    #[error("take the link of {name} on cgroup {path}: {source}")]
    Link {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: Box<LinkError>,
    },
    /// The link could not be pinned, reused or unpinned.
    #[error(transparent)]
    Pin(#[from] LinkPinError),
}

/// The socket programs attached to one cgroup. Give it back to
/// [`crate::dataplane::Dataplane::detach_cgroup`], or drop the dataplane.
#[derive(Debug)]
#[must_use = "dropping the attachment handle keeps the programs attached until the dataplane is dropped"]
pub struct CgroupAttachment {
    path: PathBuf,
    links: Vec<LinkRef>,
}

impl CgroupAttachment {
    /// The cgroup directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn attach_hook(
    ebpf: &mut Ebpf,
    links: &mut Links,
    hook: Hook,
    cgroup: &File,
    path: &Path,
    target: &str,
) -> Result<LinkRef, CgroupError> {
    let name = hook.program_name();
    let program_error = |source: ProgramError| CgroupError::Program {
        name,
        path: path.to_owned(),
        source: Box::new(source),
    };
    let link_error = |source: LinkError| CgroupError::Link {
        name,
        path: path.to_owned(),
        source: Box::new(source),
    };
    let program = ebpf
        .program_mut(name)
        .ok_or(CgroupError::MissingProgram { name })?;
    let pin_name = format!("{name}@{target}");
    let attached = if hook == Hook::SockRelease {
        let program: &mut CgroupSock = program.try_into().map_err(program_error)?;
        let fd = program
            .fd()
            .and_then(|fd| fd.try_clone().map_err(ProgramError::from))
            .map_err(program_error)?;
        links.attach(&pin_name, fd.as_fd(), || {
            let id = program
                .attach(cgroup, CgroupAttachMode::Single)
                .map_err(program_error)?;
            let link = program.take_link(id).map_err(program_error)?;
            FdLink::try_from(link).map_err(link_error)
        })
    } else {
        let program: &mut CgroupSockAddr = program.try_into().map_err(program_error)?;
        let fd = program
            .fd()
            .and_then(|fd| fd.try_clone().map_err(ProgramError::from))
            .map_err(program_error)?;
        links.attach(&pin_name, fd.as_fd(), || {
            let id = program
                .attach(cgroup, CgroupAttachMode::Single)
                .map_err(program_error)?;
            let link = program.take_link(id).map_err(program_error)?;
            FdLink::try_from(link).map_err(link_error)
        })
    };
    attached.map_err(|error| match error {
        LinkAttachError::Attach(error) => error,
        LinkAttachError::Pin(error) => CgroupError::Pin(error),
    })
}

/// Attaches every socket program to the cgroup at `path`; on failure
/// nothing stays attached.
pub fn attach(
    ebpf: &mut Ebpf,
    links: &mut Links,
    path: &Path,
) -> Result<CgroupAttachment, CgroupError> {
    let open_error = |source: io::Error| CgroupError::Open {
        path: path.to_owned(),
        source,
    };
    let cgroup = File::open(path).map_err(open_error)?;
    // Pins are named by the cgroup's inode: unique while it exists, and the
    // same for the next agent attaching to it.
    let target = format!("cgroup-{}", cgroup.metadata().map_err(open_error)?.ino());
    let mut attachment = CgroupAttachment {
        path: path.to_owned(),
        links: Vec::new(),
    };
    for hook in Hook::SOCKET {
        match attach_hook(ebpf, links, hook, &cgroup, path, &target) {
            Ok(link) => attachment.links.push(link),
            Err(error) => {
                // Best effort: the attach error is the one to report.
                let _ = detach(links, attachment);
                return Err(error);
            }
        }
    }
    info!(cgroup = %path.display(), "socket programs attached");
    Ok(attachment)
}

/// Detaches every program of `attachment`.
pub fn detach(links: &mut Links, attachment: CgroupAttachment) -> Result<(), CgroupError> {
    let CgroupAttachment { path, links: held } = attachment;
    let mut first_error = None;
    for link in held {
        if let Err(error) = links.detach(link) {
            first_error.get_or_insert(CgroupError::Pin(error));
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => {
            info!(cgroup = %path.display(), "socket programs detached");
            Ok(())
        }
    }
}
