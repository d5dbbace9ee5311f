//! Loads baton's eBPF object, attaches its programs and reads its maps.
//!
//! The object is embedded in the binary ([`crate::EBPF_OBJECT`]). Loading
//! creates (or, with a pin directory, reopens) the maps of the ABI crate and
//! loads every program into the kernel; attaching is a separate step per
//! device ([`Dataplane::attach_uplink`]). Dropping the [`Dataplane`] detaches
//! what it attached and unloads the programs; pinned maps stay in bpffs.

pub mod metrics;
pub mod pins;
pub mod tc;

use std::{
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    programs::{ProgramError, SchedClassifier},
};
use baton_abi::{PINNED_MAPS, programs};
use tracing::info;

pub use self::{
    metrics::{MetricsError, MetricsSnapshot},
    pins::PinError,
    tc::{AttachError, TcBackend, TcMode, UplinkAttachment},
};
use crate::{
    EBPF_OBJECT,
    sys::test_run::{TestRun, TestRunError, TestRunOutput, prog_test_run},
};

/// A program of the object, named by where it attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// tc ingress on the node uplink.
    UplinkIngress,
    /// tc egress on the node uplink.
    UplinkEgress,
}

impl Hook {
    /// Every program of the object.
    pub const ALL: [Self; 2] = [Self::UplinkIngress, Self::UplinkEgress];

    /// The program's name in the object.
    #[must_use]
    pub const fn program_name(self) -> &'static str {
        match self {
            Self::UplinkIngress => programs::UPLINK_INGRESS,
            Self::UplinkEgress => programs::UPLINK_EGRESS,
        }
    }
}

/// How to load the dataplane.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LoadOptions {
    pin_dir: Option<PathBuf>,
}

impl LoadOptions {
    /// Maps live as long as the [`Dataplane`]; nothing is pinned.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pin the maps of [`baton_abi::PINNED_MAPS`] as `<dir>/<map name>` and
    /// reuse pins already there, so their contents survive a restart of the
    /// process. `dir` must be on a bpffs mount; it is created if missing.
    pub fn pin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pin_dir = Some(dir.into());
        self
    }
}

/// Loading the dataplane or running one of its programs failed.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The pin directory is not usable.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The kernel refused the object (map creation, relocation, ...).
    #[error("load the eBPF object: {0}")]
    Load(#[source] Box<EbpfError>),
    /// The object lacks a program the node expects: the build is broken.
    #[error("the eBPF object has no program {name}")]
    MissingProgram { name: &'static str },
    /// The verifier or the kernel refused a program.
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("test run of {name}: {source}")]
    TestRun {
        name: &'static str,
        #[source]
        source: TestRunError,
    },
}

/// baton's eBPF programs and maps, loaded into the kernel.
#[derive(Debug)]
pub struct Dataplane {
    ebpf: Ebpf,
    pin_dir: Option<PathBuf>,
}

impl Dataplane {
    /// Loads the embedded object: creates or reopens the maps, then loads
    /// (verifies) every program. Needs CAP_BPF and CAP_NET_ADMIN (or root).
    pub fn load(options: &LoadOptions) -> Result<Self, DataplaneError> {
        let mut loader = EbpfLoader::new();
        let pins: Vec<(&str, PathBuf)> = match &options.pin_dir {
            Some(dir) => {
                pins::prepare(dir)?;
                pins::check_compatible(dir, EBPF_OBJECT)?;
                PINNED_MAPS
                    .iter()
                    .map(|name| (*name, dir.join(name)))
                    .collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader
            .load(EBPF_OBJECT)
            .map_err(|error| DataplaneError::Load(Box::new(error)))?;

        for hook in Hook::ALL {
            let name = hook.program_name();
            let program: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or(DataplaneError::MissingProgram { name })?
                .try_into()
                .map_err(|source| DataplaneError::Program {
                    name,
                    source: Box::new(source),
                })?;
            program.load().map_err(|source| DataplaneError::Program {
                name,
                source: Box::new(source),
            })?;
        }
        info!(pin_dir = ?options.pin_dir, "dataplane loaded");
        Ok(Self {
            ebpf,
            pin_dir: options.pin_dir.clone(),
        })
    }

    /// Where the maps are pinned, if they are.
    #[must_use]
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pin_dir.as_deref()
    }

    /// Attaches the uplink programs (ingress and egress) to `iface`, in the
    /// network namespace of the calling thread. See [`tc`] for the modes.
    pub fn attach_uplink(
        &mut self,
        iface: &str,
        mode: TcMode,
    ) -> Result<UplinkAttachment, AttachError> {
        tc::attach_uplink(&mut self.ebpf, iface, mode)
    }

    /// Detaches what [`Self::attach_uplink`] attached.
    pub fn detach_uplink(&mut self, attachment: UplinkAttachment) -> Result<(), AttachError> {
        tc::detach_uplink(&mut self.ebpf, attachment)
    }

    /// Current counters of the metrics map, summed over CPUs.
    pub fn metrics(&self) -> Result<MetricsSnapshot, MetricsError> {
        metrics::read(&self.ebpf)
    }

    /// Kernel id of a loaded program, as `bpftool prog` and tcx queries
    /// report it.
    pub fn program_id(&self, hook: Hook) -> Result<u32, DataplaneError> {
        let name = hook.program_name();
        let program = self.classifier(hook)?;
        program
            .info()
            .map(|info| info.id())
            .map_err(|source| DataplaneError::Program {
                name,
                source: Box::new(source),
            })
    }

    /// Runs a program on a crafted packet with `BPF_PROG_TEST_RUN`. The run
    /// updates the real maps, exactly as a packet on the wire would.
    pub fn test_run(&self, hook: Hook, run: &TestRun<'_>) -> Result<TestRunOutput, DataplaneError> {
        let name = hook.program_name();
        let program = self.classifier(hook)?;
        let fd = program.fd().map_err(|source| DataplaneError::Program {
            name,
            source: Box::new(source),
        })?;
        prog_test_run(fd.as_fd(), run).map_err(|source| DataplaneError::TestRun { name, source })
    }

    fn classifier(&self, hook: Hook) -> Result<&SchedClassifier, DataplaneError> {
        let name = hook.program_name();
        self.ebpf
            .program(name)
            .ok_or(DataplaneError::MissingProgram { name })?
            .try_into()
            .map_err(|source| DataplaneError::Program {
                name,
                source: Box::new(source),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
