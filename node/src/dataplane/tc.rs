//! Attaching tc programs to a device.
//!
//! Two kernel interfaces exist. **tcx** (Linux 6.6+) attaches a program as a
//! BPF link owned by a file descriptor: several programs chain in a defined
//! order, and the link goes away with the fd, so a crashed agent leaves
//! nothing behind. The **netlink** interface (`tc filter add ... bpf da`)
//! needs a `clsact` qdisc on the device and installs filters that outlive the
//! process until someone deletes them. [`TcMode::Auto`] takes tcx where the
//! kernel has it and falls back to netlink, adding `clsact` first.
//!
//! Everything here acts in the network namespace of the calling thread
//! (device names are resolved there). A netlink attachment is also removed
//! there: detach it from the same namespace it was attached in (tcx links
//! carry their device and can be detached from anywhere).

use aya::{
    Ebpf,
    programs::{
        LinkOrder, ProgramError, SchedClassifier, TcAttachType,
        tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions, TcError},
    },
    util::KernelVersion,
};
use tracing::info;

use super::Hook;

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
}

/// The uplink programs attached to one device. Give it back to
/// [`super::Dataplane::detach_uplink`] to detach, or drop the dataplane.
#[derive(Debug)]
#[must_use = "dropping the attachment handle keeps the programs attached until the dataplane is dropped"]
pub struct UplinkAttachment {
    iface: String,
    backend: TcBackend,
    ingress: SchedClassifierLinkId,
    egress: SchedClassifierLinkId,
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

fn attach_one(
    ebpf: &mut Ebpf,
    hook: Hook,
    iface: &str,
    attach_type: TcAttachType,
    backend: TcBackend,
) -> Result<SchedClassifierLinkId, AttachError> {
    let options = match backend {
        // Appended after programs already on the hook; ours return
        // TC_ACT_UNSPEC (TCX_NEXT), so later ones still run.
        TcBackend::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
        TcBackend::Netlink => TcAttachOptions::Netlink(NlOptions::default()),
    };
    let name = hook.program_name();
    classifier(ebpf, hook)?
        .attach_with_options(iface, attach_type, options)
        .map_err(|source| AttachError::Program {
            action: "attach",
            name,
            iface: iface.to_owned(),
            backend,
            source: Box::new(source),
        })
}

/// Attaches both uplink programs to `iface`; on failure nothing stays
/// attached.
pub fn attach_uplink(
    ebpf: &mut Ebpf,
    iface: &str,
    mode: TcMode,
) -> Result<UplinkAttachment, AttachError> {
    let backend = match mode {
        TcMode::Auto if kernel_has_tcx() => TcBackend::Tcx,
        TcMode::Auto | TcMode::Netlink => TcBackend::Netlink,
        TcMode::Tcx => TcBackend::Tcx,
    };
    if backend == TcBackend::Netlink {
        ensure_clsact(iface)?;
    }
    let ingress = attach_one(
        ebpf,
        Hook::UplinkIngress,
        iface,
        TcAttachType::Ingress,
        backend,
    )?;
    let egress = match attach_one(
        ebpf,
        Hook::UplinkEgress,
        iface,
        TcAttachType::Egress,
        backend,
    ) {
        Ok(egress) => egress,
        Err(error) => {
            if let Ok(program) = classifier(ebpf, Hook::UplinkIngress) {
                // Best effort: the attach error is the one to report.
                let _ = program.detach(ingress);
            }
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
pub fn detach_uplink(ebpf: &mut Ebpf, attachment: UplinkAttachment) -> Result<(), AttachError> {
    let UplinkAttachment {
        iface,
        backend,
        ingress,
        egress,
    } = attachment;
    let mut first_error = None;
    for (hook, link) in [(Hook::UplinkIngress, ingress), (Hook::UplinkEgress, egress)] {
        let name = hook.program_name();
        let result = classifier(ebpf, hook).and_then(|program| {
            program.detach(link).map_err(|source| AttachError::Program {
                action: "detach",
                name,
                iface: iface.clone(),
                backend,
                source: Box::new(source),
            })
        });
        if let Err(error) = result {
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
