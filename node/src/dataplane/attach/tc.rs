//! Attaching tc programs to a device: the node uplink (ingress and egress)
//! and pods' host-side veths (ingress).
//!
//! Two kernel interfaces exist. **tcx** (Linux 6.6+) attaches a program as a
//! BPF link: several programs chain in a defined order, and the link goes
//! away with its last reference. The dataplane holds the link (see
//! [`super::links`]): without a pin directory a crashed agent leaves
//! nothing behind; with one, the link is pinned so the programs keep
//! working while the agent restarts, and the next agent swaps its programs
//! into the same links. The **netlink** interface (`tc filter add ... bpf
//! da`) needs a `clsact` qdisc on the device and installs filters that
//! outlive the process until someone deletes them. [`TcMode::Auto`] takes
//! tcx where the kernel has it and falls back to netlink, adding `clsact`
//! first.
//!
//! Everything here acts in the network namespace of the calling thread
//! (device names are resolved there). A netlink attachment is also removed
//! there: detach it from the same namespace it was attached in (tcx links
//! carry their device and can be detached from anywhere).

use std::os::fd::AsFd;

use aya::{
    Ebpf,
    programs::{
        LinkOrder, ProgramError, SchedClassifier, TcAttachType,
        links::{FdLink, LinkError},
        tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions, TcError},
    },
    util::KernelVersion,
};
use tracing::info;

use super::{
    links::{LinkAttachError, LinkPinError, LinkRef, Links},
    programs::Hook,
};

/// Which kernel interface to attach through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcMode {
    /// tcx if the kernel has it (6.6+), netlink with `clsact` otherwise.
    #[default]
    Auto,
    /// tcx only; fails on kernels without it.
    Tcx,
    /// A netlink `clsact` filter, even where tcx exists.
    Netlink,
}

/// The interface an attachment went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcBackend {
    /// BPF links of type tcx.
    Tcx,
    /// Direct-action filters under the device's `clsact` qdisc.
    Netlink,
}

/// Attaching or detaching failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The object lacks the program: the build is broken.
    #[error("the eBPF object has no program {name}")]
    MissingProgram { name: &'static str },
    /// The `clsact` qdisc could not be added to the device.
    #[error("add clsact qdisc to {iface}: {source}")]
    Clsact {
        iface: String,
        #[source]
        source: Box<TcError>,
    },
    /// The kernel refused the attachment or the detachment.
    #[error("{action} {name} on {iface} via {backend:?}: {source}")]
    Program {
        action: &'static str,
        name: &'static str,
        iface: String,
        backend: TcBackend,
        #[source]
        source: Box<ProgramError>,
    },
    /// The tcx link could not be taken over from aya.
    #[error("take the tcx link of {name} on {iface}: {source}")]
    Link {
        name: &'static str,
        iface: String,
        #[source]
        source: Box<LinkError>,
    },
    /// The link could not be pinned, reused or unpinned.
    #[error(transparent)]
    Pin(#[from] LinkPinError),
}

/// One attached program.
#[derive(Debug)]
enum TcLink {
    /// A tcx link held by the dataplane.
    Tcx(LinkRef),
    /// A netlink filter owned by the aya program.
    Netlink(SchedClassifierLinkId),
}

/// The uplink programs attached to one device. Give it back to
/// [`crate::dataplane::Dataplane::detach_uplink`] to detach, or drop the dataplane.
#[derive(Debug)]
#[must_use = "dropping the attachment handle keeps the programs attached until the dataplane is dropped"]
pub struct UplinkAttachment {
    iface: String,
    backend: TcBackend,
    ingress: TcLink,
    egress: TcLink,
}

impl UplinkAttachment {
    /// The device the programs are attached to.
    #[must_use]
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// How they are attached.
    #[must_use]
    pub fn backend(&self) -> TcBackend {
        self.backend
    }
}

/// The pod program attached to one pod's host-side veth. Give it back to
/// [`crate::dataplane::Dataplane::detach_pod`], or drop the dataplane. Deleting the
/// veth (the pod going away) also removes it.
#[derive(Debug)]
#[must_use = "dropping the attachment handle keeps the program attached until the dataplane is dropped"]
pub struct PodAttachment {
    iface: String,
    backend: TcBackend,
    ingress: TcLink,
}

impl PodAttachment {
    /// The host-side veth.
    #[must_use]
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// How the program is attached.
    #[must_use]
    pub fn backend(&self) -> TcBackend {
        self.backend
    }
}

/// Whether this kernel has tcx (Linux 6.6+, the same test aya applies).
#[must_use]
pub fn kernel_has_tcx() -> bool {
    KernelVersion::current().is_ok_and(|version| version >= KernelVersion::new(6, 6, 0))
}

fn classifier(ebpf: &mut Ebpf, hook: Hook) -> Result<&mut SchedClassifier, AttachError> {
    let name = hook.program_name();
    ebpf.program_mut(name)
        .and_then(|program| program.try_into().ok())
        .ok_or(AttachError::MissingProgram { name })
}

/// Adds the `clsact` qdisc unless the device already has one.
fn ensure_clsact(iface: &str) -> Result<(), AttachError> {
    match tc::qdisc_add_clsact(iface) {
        Ok(()) => Ok(()),
        Err(TcError::NetlinkError(error)) if error.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(source) => Err(AttachError::Clsact {
            iface: iface.to_owned(),
            source: Box::new(source),
        }),
    }
}

fn backend_for(mode: TcMode) -> TcBackend {
    match mode {
        TcMode::Auto if kernel_has_tcx() => TcBackend::Tcx,
        TcMode::Auto | TcMode::Netlink => TcBackend::Netlink,
        TcMode::Tcx => TcBackend::Tcx,
    }
}

fn attach_one(
    ebpf: &mut Ebpf,
    links: &mut Links,
    hook: Hook,
    iface: &str,
    attach_type: TcAttachType,
    backend: TcBackend,
) -> Result<TcLink, AttachError> {
    let name = hook.program_name();
    let program = classifier(ebpf, hook)?;
    let program_error = |source: ProgramError| AttachError::Program {
        action: "attach",
        name,
        iface: iface.to_owned(),
        backend,
        source: Box::new(source),
    };
    match backend {
        TcBackend::Netlink => program
            .attach_with_options(
                iface,
                attach_type,
                TcAttachOptions::Netlink(NlOptions::default()),
            )
            .map(TcLink::Netlink)
            .map_err(program_error),
        TcBackend::Tcx => {
            let fd = program
                .fd()
                .and_then(|fd| fd.try_clone().map_err(ProgramError::from))
                .map_err(program_error)?;
            let link = links
                .attach(&format!("{name}@{iface}"), fd.as_fd(), || {
                    // Appended after programs already on the hook; ours
                    // return TC_ACT_UNSPEC (TCX_NEXT) for what they do not
                    // handle, so later ones still run.
                    let id = program
                        .attach_with_options(
                            iface,
                            attach_type,
                            TcAttachOptions::TcxOrder(LinkOrder::default()),
                        )
                        .map_err(program_error)?;
                    let link = program.take_link(id).map_err(program_error)?;
                    FdLink::try_from(link).map_err(|source| AttachError::Link {
                        name,
                        iface: iface.to_owned(),
                        source: Box::new(source),
                    })
                })
                .map_err(|error| match error {
                    LinkAttachError::Attach(error) => error,
                    LinkAttachError::Pin(error) => AttachError::Pin(error),
                })?;
            Ok(TcLink::Tcx(link))
        }
    }
}

fn detach_one(
    ebpf: &mut Ebpf,
    links: &mut Links,
    hook: Hook,
    link: TcLink,
    iface: &str,
    backend: TcBackend,
) -> Result<(), AttachError> {
    match link {
        TcLink::Tcx(link) => Ok(links.detach(link)?),
        TcLink::Netlink(id) => {
            let name = hook.program_name();
            classifier(ebpf, hook)?
                .detach(id)
                .map_err(|source| AttachError::Program {
                    action: "detach",
                    name,
                    iface: iface.to_owned(),
                    backend,
                    source: Box::new(source),
                })
        }
    }
}

/// Attaches the pod program to the ingress of `iface` (a pod's host-side
/// veth: its ingress is what the pod sends).
pub fn attach_pod(
    ebpf: &mut Ebpf,
    links: &mut Links,
    iface: &str,
    mode: TcMode,
) -> Result<PodAttachment, AttachError> {
    let backend = backend_for(mode);
    if backend == TcBackend::Netlink {
        ensure_clsact(iface)?;
    }
    let ingress = attach_one(
        ebpf,
        links,
        Hook::PodIngress,
        iface,
        TcAttachType::Ingress,
        backend,
    )?;
    info!(iface, ?backend, "pod program attached");
    Ok(PodAttachment {
        iface: iface.to_owned(),
        backend,
        ingress,
    })
}

/// Detaches the pod program of `attachment`.
pub fn detach_pod(
    ebpf: &mut Ebpf,
    links: &mut Links,
    attachment: PodAttachment,
) -> Result<(), AttachError> {
    let PodAttachment {
        iface,
        backend,
        ingress,
    } = attachment;
    detach_one(ebpf, links, Hook::PodIngress, ingress, &iface, backend)?;
    info!(iface, ?backend, "pod program detached");
    Ok(())
}

/// Attaches both uplink programs to `iface`; on failure nothing stays
/// attached.
pub fn attach_uplink(
    ebpf: &mut Ebpf,
    links: &mut Links,
    iface: &str,
    mode: TcMode,
) -> Result<UplinkAttachment, AttachError> {
    let backend = backend_for(mode);
    if backend == TcBackend::Netlink {
        ensure_clsact(iface)?;
    }
    let ingress = attach_one(
        ebpf,
        links,
        Hook::UplinkIngress,
        iface,
        TcAttachType::Ingress,
        backend,
    )?;
    let egress = match attach_one(
        ebpf,
        links,
        Hook::UplinkEgress,
        iface,
        TcAttachType::Egress,
        backend,
    ) {
        Ok(egress) => egress,
        Err(error) => {
            // Best effort: the attach error is the one to report.
            let _ = detach_one(ebpf, links, Hook::UplinkIngress, ingress, iface, backend);
            return Err(error);
        }
    };
    info!(iface, ?backend, "uplink programs attached");
    Ok(UplinkAttachment {
        iface: iface.to_owned(),
        backend,
        ingress,
        egress,
    })
}

/// Detaches both uplink programs of `attachment`.
pub fn detach_uplink(
    ebpf: &mut Ebpf,
    links: &mut Links,
    attachment: UplinkAttachment,
) -> Result<(), AttachError> {
    let UplinkAttachment {
        iface,
        backend,
        ingress,
        egress,
    } = attachment;
    let mut first_error = None;
    for (hook, link) in [(Hook::UplinkIngress, ingress), (Hook::UplinkEgress, egress)] {
        if let Err(error) = detach_one(ebpf, links, hook, link, &iface, backend) {
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => {
            info!(iface, ?backend, "uplink programs detached");
            Ok(())
        }
    }
}
