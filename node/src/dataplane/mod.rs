//! Loads baton's eBPF object, attaches its programs and programs its maps.
//!
//! The object is embedded in the binary ([`crate::EBPF_OBJECT`]). Loading
//! creates (or, with a pin directory, reopens) the maps of the ABI crate,
//! sized by [`Capacities`], loads every program into the kernel (so the
//! verifier checks all of them at start), and takes the maps into three
//! typed layers:
//!
//! - [`LoadBalancer`] (services, backends, Maglev tables): what the proxy
//!   programs, with [`ServiceSpec`]s;
//! - [`NodeState`] (pod endpoints, local addresses, node settings): what
//!   pod networking and the node set-up program;
//! - conntrack, read and garbage-collected by [`Dataplane::conntrack_gc`].
//!
//! Attaching is a separate step per attach point: the uplink
//! ([`Dataplane::attach_uplink`]), a pod's host-side veth
//! ([`Dataplane::attach_pod`]) and a cgroup for socket LB
//! ([`Dataplane::attach_cgroup`]). Dropping the [`Dataplane`] detaches what
//! it attached and unloads the programs; pinned maps stay in bpffs.
//!
//! The parts, one folder per job, under this facade:
//!
//! - [`lb`]: load balancing — services and their backends as
//!   [`ServiceSpec`]s, Maglev tables, id allocation, and the load
//!   balancer's map operations (on the kernel's maps, or in memory for
//!   unit tests);
//! - [`attach`]: the programs and where they attach — loading, tc, cgroups,
//!   pinned links, the pin directory;
//! - [`observe`]: what the datapath reports — counters, conntrack (read and
//!   garbage-collected), the dump of every map;
//! - beside them, what they share: the typed map handles ([`maps`]), the
//!   map sizes ([`capacity`]) and the node's own state ([`node_state`]).

pub mod attach;
pub mod capacity;
pub mod lb;
pub mod maps;
pub mod node_state;
pub mod observe;

use std::{
    os::fd::AsFd,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    programs::{ProgramError, SchedClassifier},
};
use baton_abi::{PINNED_MAPS, globals};
use tracing::info;

use self::attach::{cgroup, links, pins, programs, tc};
use self::observe::{conntrack, dump, metrics};
pub use self::{
    attach::{
        cgroup::{CgroupAttachment, CgroupError},
        pins::PinError,
        programs::{Hook, pod_program_pin},
        tc::{AttachError, PodAttachment, TcBackend, TcMode, UplinkAttachment},
    },
    capacity::{Capacities, CapacityError},
    lb::{
        services::{Applied, LbError, LoadBalancer, ReconcileReport},
        spec::{BackendSpec, BackendState, Frontend, Protocol, ServiceSpec, TrafficPolicy},
    },
    maps::MapAccessError,
    node_state::{NodeConfig, NodeState, NodeStateError, PodEndpoint},
    observe::{
        conntrack::{CtFlow, GcReport},
        metrics::{MetricsError, MetricsSnapshot, ServiceStatsSnapshot},
    },
};
use crate::{
    EBPF_OBJECT,
    sys::test_run::{TestRun, TestRunError, TestRunOutput, prog_test_run},
};
pub use baton_abi::lb::{Algorithm, FrontendKind};

/// The node's dataplane, shared by the proxy, the metrics endpoint and pod
/// networking.
pub type SharedDataplane = Arc<Mutex<Dataplane>>;

/// How to load the dataplane.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LoadOptions {
    pin_dir: Option<PathBuf>,
    capacities: Capacities,
}

impl LoadOptions {
    /// Maps live as long as the [`Dataplane`]; nothing is pinned; default
    /// capacities.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pin the maps of [`baton_abi::PINNED_MAPS`] as `<dir>/<map name>` and
    /// reuse pins already there, so their contents survive a restart of the
    /// process; pin the links of tcx and cgroup attachments under
    /// `<dir>/links/`, so the programs stay attached while the process is
    /// down and the next one swaps its programs in without a gap. `dir`
    /// must be on a bpffs mount; it is created if missing.
    pub fn pin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pin_dir = Some(dir.into());
        self
    }

    /// Map sizes (see [`Capacities`]).
    pub fn capacities(mut self, capacities: Capacities) -> Self {
        self.capacities = capacities;
        self
    }
}

/// Loading the dataplane or running one of its programs failed.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The capacities cannot be used.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
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
    /// A map could not be taken over or initialised.
    #[error(transparent)]
    Map(#[from] MapAccessError),
    /// The node settings could not be initialised.
    #[error(transparent)]
    Node(#[from] NodeStateError),
    /// The pod program could not be pinned for other processes.
    #[error("pin program at {path}: {source}")]
    ProgramPin {
        path: PathBuf,
        #[source]
        source: Box<aya::pin::PinError>,
    },
    /// Pinned links could not be inspected or pruned.
    #[error(transparent)]
    Links(#[from] links::LinkPinError),
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
    capacities: Capacities,
    lb: LoadBalancer,
    node: NodeState,
    ct: maps::CtMaps,
    links: links::Links,
}

impl Dataplane {
    /// Loads the embedded object: creates or reopens the maps, loads
    /// (verifies) every program, and restores the load balancer's state
    /// from the maps. Needs CAP_BPF and CAP_NET_ADMIN (or root).
    pub fn load(options: &LoadOptions) -> Result<Self, DataplaneError> {
        let capacities = options.capacities;
        capacities.validate()?;
        let mut loader = EbpfLoader::new();
        let sizes = capacities.map_sizes();
        for (name, size) in &sizes {
            loader.map_max_entries(name, *size);
        }
        let maglev_size = capacities.maglev_table_size;
        loader.override_global(globals::MAGLEV_TABLE_SIZE, &maglev_size, true);
        let pins: Vec<(&str, PathBuf)> = match &options.pin_dir {
            Some(dir) => {
                pins::prepare(dir)?;
                pins::check_compatible(dir, EBPF_OBJECT, &capacities)?;
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
            programs::load_program(&mut ebpf, hook)?;
        }

        let lb = LoadBalancer::restore(
            maps::LbMaps::open(maps::Source::Object(&mut ebpf))?,
            capacities,
        )?;
        let mut node = NodeState::new(maps::NodeMaps::open(maps::Source::Object(&mut ebpf))?);
        // A fresh config map is all zero; a pinned one keeps what the last
        // run wrote.
        if node.config()?.snat_ports.start() == &0 {
            node.set_config(&NodeConfig::default())?;
        }
        let ct = maps::CtMaps::open(maps::Source::Object(&mut ebpf))?;
        let links = links::Links::new(options.pin_dir.as_deref());
        let pruned = links.prune_defunct()?;
        let refreshed = programs::refresh_links(&ebpf, &links);
        if let Some(dir) = &options.pin_dir {
            programs::pin_pod_program(&mut ebpf, dir)?;
        }
        info!(
            pin_dir = ?options.pin_dir,
            pruned_links = pruned,
            refreshed_links = refreshed,
            "dataplane loaded"
        );
        Ok(Self {
            ebpf,
            pin_dir: options.pin_dir.clone(),
            capacities,
            lb,
            node,
            ct,
            links,
        })
    }

    /// Where the maps are pinned, if they are.
    #[must_use]
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pin_dir.as_deref()
    }

    /// The capacities the maps were created with.
    pub fn capacities(&self) -> &Capacities {
        &self.capacities
    }

    /// Services and backends: the proxy's API.
    pub fn load_balancer(&mut self) -> &mut LoadBalancer {
        &mut self.lb
    }

    /// Pod endpoints, local addresses and node settings.
    pub fn node(&mut self) -> &mut NodeState {
        &mut self.node
    }

    /// Attaches the uplink programs (ingress and egress) to `iface`, in the
    /// network namespace of the calling thread. See [`tc`] for the modes.
    pub fn attach_uplink(
        &mut self,
        iface: &str,
        mode: TcMode,
    ) -> Result<UplinkAttachment, AttachError> {
        tc::attach_uplink(&mut self.ebpf, &mut self.links, iface, mode)
    }

    /// Detaches what [`Self::attach_uplink`] attached.
    pub fn detach_uplink(&mut self, attachment: UplinkAttachment) -> Result<(), AttachError> {
        tc::detach_uplink(&mut self.ebpf, &mut self.links, attachment)
    }

    /// Attaches the pod program to the ingress of `iface`, a pod's
    /// host-side veth, in the calling thread's network namespace.
    pub fn attach_pod(&mut self, iface: &str, mode: TcMode) -> Result<PodAttachment, AttachError> {
        tc::attach_pod(&mut self.ebpf, &mut self.links, iface, mode)
    }

    /// Detaches what [`Self::attach_pod`] attached.
    pub fn detach_pod(&mut self, attachment: PodAttachment) -> Result<(), AttachError> {
        tc::detach_pod(&mut self.ebpf, &mut self.links, attachment)
    }

    /// Attaches the socket-LB programs to the cgroup v2 directory `path`.
    pub fn attach_cgroup(&mut self, path: &Path) -> Result<CgroupAttachment, CgroupError> {
        cgroup::attach(&mut self.ebpf, &mut self.links, path)
    }

    /// Detaches what [`Self::attach_cgroup`] attached.
    pub fn detach_cgroup(&mut self, attachment: CgroupAttachment) -> Result<(), CgroupError> {
        cgroup::detach(&mut self.links, attachment)
    }

    /// Current counters of the metrics map, summed over CPUs.
    pub fn metrics(&self) -> Result<MetricsSnapshot, MetricsError> {
        metrics::read(&self.ebpf)
    }

    /// Per-service counters, summed over CPUs.
    pub fn service_stats(&self) -> Result<ServiceStatsSnapshot, MapAccessError> {
        metrics::read_services(&self.lb.maps().stats)
    }

    /// Every conntrack entry.
    pub fn conntrack(&self) -> Result<Vec<CtFlow>, MapAccessError> {
        conntrack::dump(&self.ct)
    }

    /// Removes expired conntrack entries (and uncounts their flows).
    pub fn conntrack_gc(&mut self) -> Result<GcReport, MapAccessError> {
        let now = conntrack::monotonic_now_ns();
        conntrack::gc(&mut self.ct, self.lb.maps_mut(), now)
    }

    /// Dumps of services, backends, conntrack and counters, for `baton-node
    /// dataplane dump`. (A tool without a loaded dataplane reads a node's
    /// pins with [`dump::from_pins`].)
    pub fn dump(&self) -> Result<dump::Dump, MapAccessError> {
        dump::collect(
            self.lb.maps(),
            &self.node,
            &self.ct,
            self.metrics().unwrap_or_default(),
            &self.lb.labels(),
        )
    }

    /// Kernel id of a loaded program, as `bpftool prog` and tcx queries
    /// report it.
    pub fn program_id(&self, hook: Hook) -> Result<u32, DataplaneError> {
        let name = hook.program_name();
        let program = self
            .ebpf
            .program(name)
            .ok_or(DataplaneError::MissingProgram { name })?;
        program
            .info()
            .map(|info| info.id())
            .map_err(|source| DataplaneError::Program {
                name,
                source: Box::new(source),
            })
    }

    /// Runs a tc program on a crafted packet with `BPF_PROG_TEST_RUN`. The
    /// run updates the real maps, exactly as a packet on the wire would.
    pub fn test_run(&self, hook: Hook, run: &TestRun<'_>) -> Result<TestRunOutput, DataplaneError> {
        let name = hook.program_name();
        let program: &SchedClassifier = self
            .ebpf
            .program(name)
            .ok_or(DataplaneError::MissingProgram { name })?
            .try_into()
            .map_err(|source| DataplaneError::Program {
                name,
                source: Box::new(source),
            })?;
        let fd = program.fd().map_err(|source| DataplaneError::Program {
            name,
            source: Box::new(source),
        })?;
        prog_test_run(fd.as_fd(), run).map_err(|source| DataplaneError::TestRun { name, source })
    }
}
