//! The namespace cluster harness: a whole baton cluster on one machine, in
//! network namespaces, for end-to-end tests, `cargo xtask up` and benchmarks.
//!
//! A fabric namespace holds a bridge (the "physical network"); the control
//! plane, every node and an outside client each get a namespace whose `eth0`
//! is a port of that bridge, and the host gets one veth into it too, so host
//! tools (kubectl) reach the API server. Host routes keep pod and service
//! addresses from ever leaving through the host's uplink. See
//! docs/cluster-harness.md for the address plan, names and cleanup rules.
//!
//! - [`Cluster::create`]: a test cluster with unique names, torn down on drop
//!   (also on panic); leftovers of killed runs are removed first.
//! - [`Cluster::up`] / [`Cluster::open`] / [`Cluster::status`] /
//!   [`Cluster::down`]: the persistent cluster of `cargo xtask up`, found
//!   again through its state file.
#![forbid(unsafe_code)]

pub mod addressing;
pub mod binaries;
pub mod cgroup;
mod cluster;
pub mod containerd;
pub mod control_plane;
pub mod exec;
pub mod host;
pub mod images;
pub mod iproute;
pub mod kubectl;
pub mod layers;
mod leftovers;
pub mod netns;
pub mod netns_pods;
pub mod node_cgroup;
pub mod nodes;
mod owner;
mod persistent;
pub mod probe;
pub mod process;
mod quiet;
pub mod ready;
mod registry;
pub mod safety;
pub mod scratch;
pub mod snapshot;
pub mod stack;
mod topology;

pub use addressing::Addressing;
pub use binaries::Binaries;
pub use cluster::{Cluster, ClusterError, ClusterSpec, Member, Node};
pub use control_plane::ControlPlane;
pub use exec::{CommandError, Output};
pub use host::{assert_root, log_to_test_output, require_root};
pub use iproute::Route;
pub use kubectl::Kubectl;
pub use netns::{Netns, OwnedNetns};
pub use owner::{ProcStat, ProcessId, proc_stat};
pub use persistent::{ClusterStatus, DownReport, ProcessStatus, StateError, UpOutcome};
pub use process::{ProcessRecord, ProcessSpec};
pub use quiet::wait_until_quiet;
pub use registry::DEFAULT_RUN_ROOT;
pub use snapshot::HostSnapshot;
pub use stack::Stack;
pub use topology::{FABRIC_BRIDGE, UPLINK};
