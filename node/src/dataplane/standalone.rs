//! Programming a node's pods from another process through the node's pins:
//! what baton-cni needs when containerd runs it for a new pod, while
//! baton-node holds the loaded dataplane.
//!
//! baton-node pins the pod program at `<pin dir>/programs/pod_ingress` and
//! the endpoints map with the other maps. [`register_pod`] writes the pod's
//! endpoint and attaches the pinned program to the pod's host-side veth as a
//! tcx link pinned under `<pin dir>/links/`, exactly as
//! [`super::Dataplane::attach_pod`] would, so the link outlives the calling
//! process and a restarted baton-node swaps its programs into it.
//! [`unregister_pod`] undoes both (deleting the veth also ends the link; the
//! next baton-node start prunes its pin).

use std::{
    net::Ipv4Addr,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::programs::{
    LinkOrder, ProgramError, SchedClassifier, TcAttachType, links::FdLink, tc::TcAttachOptions,
};

use super::{
    Hook,
    endpoints::{NodeState, NodeStateError, PodEndpoint},
    links::{LINKS_DIR, LinkAttachError, LinkPinError, Links},
    maps::{NodeMaps, Source},
};

/// Where baton-node pins the pod program under its pin directory.
#[must_use]
pub fn pod_program_pin(pin_dir: &Path) -> PathBuf {
    pin_dir
        .join("programs")
        .join(Hook::PodIngress.program_name())
}

/// Registering or unregistering a pod through the pins failed.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    /// The endpoints map could not be opened or written.
    #[error(transparent)]
    Node(#[from] NodeStateError),
    /// The pinned pod program could not be opened or attached.
    #[error("{action} the pod program for {iface}: {source}")]
    Program {
        action: &'static str,
        iface: String,
        #[source]
        source: Box<ProgramError>,
    },
    /// The link could not be taken over from aya.
    #[error("take the link of the pod program on {iface}: {source}")]
    Link {
        iface: String,
        #[source]
        source: Box<aya::programs::links::LinkError>,
    },
    /// The link could not be pinned or its pin removed.
    #[error(transparent)]
    Pin(#[from] LinkPinError),
}

/// The node's endpoints (and other node maps) opened through its pins.
pub fn node_state(pin_dir: &Path) -> Result<NodeState, StandaloneError> {
    let maps = NodeMaps::open(Source::Pins(pin_dir)).map_err(NodeStateError::from)?;
    Ok(NodeState::new(maps))
}

/// Registers `endpoint` and attaches the pod program to `host_iface` (in
/// the calling thread's network namespace, the node's).
pub fn register_pod(
    pin_dir: &Path,
    endpoint: &PodEndpoint,
    host_iface: &str,
) -> Result<(), StandaloneError> {
    node_state(pin_dir)?.register_endpoint(endpoint)?;
    let program_error = |action: &'static str| {
        move |source: ProgramError| StandaloneError::Program {
            action,
            iface: host_iface.to_owned(),
            source: Box::new(source),
        }
    };
    let mut program =
        SchedClassifier::from_pin(pod_program_pin(pin_dir)).map_err(program_error("open"))?;
    let fd = program
        .fd()
        .and_then(|fd| fd.try_clone().map_err(ProgramError::from))
        .map_err(program_error("open"))?;
    let mut links = Links::new(Some(pin_dir));
    let name = format!("{}@{host_iface}", Hook::PodIngress.program_name());
    links
        .attach(&name, fd.as_fd(), || {
            let id = program
                .attach_with_options(
                    host_iface,
                    TcAttachType::Ingress,
                    TcAttachOptions::TcxOrder(LinkOrder::default()),
                )
                .map_err(program_error("attach"))?;
            let link = program.take_link(id).map_err(program_error("attach"))?;
            FdLink::try_from(link).map_err(|source| StandaloneError::Link {
                iface: host_iface.to_owned(),
                source: Box::new(source),
            })
        })
        .map_err(|error| match error {
            LinkAttachError::Attach(error) => error,
            LinkAttachError::Pin(error) => StandaloneError::Pin(error),
        })?;
    // `links` goes out of scope here: the pin keeps the link attached.
    Ok(())
}

/// Unregisters the pod `addr` and detaches the pod program from
/// `host_iface` (removing its link pin). Both are idempotent.
pub fn unregister_pod(
    pin_dir: &Path,
    addr: Ipv4Addr,
    host_iface: &str,
) -> Result<(), StandaloneError> {
    node_state(pin_dir)?.unregister_endpoint(addr)?;
    let pin = pin_dir
        .join(LINKS_DIR)
        .join(format!("{}@{host_iface}", Hook::PodIngress.program_name()));
    match std::fs::remove_file(&pin) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StandaloneError::Pin(LinkPinError::Io {
            action: "remove link pin",
            path: pin,
            source,
        })),
    }
}
