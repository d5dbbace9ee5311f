//! The address plan of a namespace cluster (see docs/cluster-harness.md).
//!
//! - Fabric ("physical network"): `172.28.<slot>.0/24`. Slot 0 is the
//!   persistent `cargo xtask up` cluster; test clusters take a free slot in
//!   1..=255. In the fabric: `.1` the host, `.2` the control plane, `.3` the
//!   outside client, `.10 + i` node `i` (1-based).
//! - Pods `10.244.0.0/16`, node `i` gets `10.244.i.0/24`; services
//!   `10.96.0.0/12`; NodePorts 30000–32767 (the Kubernetes defaults). These
//!   are the same in every cluster: they exist only inside its namespaces.
//! - Host safety routes of slot `s` use metric `47000 + s`.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// A cluster's slot: picks its fabric subnet and its safety-route metric.
pub type Slot = u8;

/// The slot of the persistent cluster (`cargo xtask up`).
pub const PERSISTENT_SLOT: Slot = 0;

/// Most nodes a cluster can have (fabric addresses `.11`–`.210`).
pub const MAX_NODES: usize = 200;

/// Metric of slot 0's safety routes; slot `s` uses `base + s`.
pub const SAFETY_METRIC_BASE: u32 = 47_000;

const FABRIC_FIRST_OCTETS: [u8; 2] = [172, 28];
const NODE_HOST_OFFSET: u8 = 10;

/// The cluster-wide pod range, `10.244.0.0/16`.
#[must_use]
pub fn pod_cidr() -> Ipv4Net {
    net([10, 244, 0, 0], 16)
}

/// The service (ClusterIP) range, `10.96.0.0/12`.
#[must_use]
pub fn service_cidr() -> Ipv4Net {
    net([10, 96, 0, 0], 12)
}

/// The NodePort range, 30000–32767.
#[must_use]
pub fn node_port_range() -> RangeInclusive<u16> {
    30000..=32767
}

/// The ClusterIP of the `kubernetes` service: the first address of the
/// service range, `10.96.0.1`.
#[must_use]
pub fn kubernetes_service_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 96, 0, 1)
}

/// The podCIDR of node `index` (1-based): `10.244.<index>.0/24`.
///
/// # Panics
/// If `index` is 0 or above [`MAX_NODES`].
#[must_use]
pub fn node_pod_cidr(index: usize) -> Ipv4Net {
    net([10, 244, node_octet(index), 0], 24)
}

/// The addresses of one cluster, determined by its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addressing {
    slot: Slot,
}

impl Addressing {
    #[must_use]
    pub fn for_slot(slot: Slot) -> Self {
        Self { slot }
    }

    #[must_use]
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// The fabric subnet, `172.28.<slot>.0/24`.
    #[must_use]
    pub fn fabric(&self) -> Ipv4Net {
        net(self.fabric_addr(0).octets(), 24)
    }

    /// The host's address on the fabric (`.1`): how host tools (kubectl)
    /// reach the cluster.
    #[must_use]
    pub fn host_address(&self) -> Ipv4Addr {
        self.fabric_addr(1)
    }

    /// The control-plane namespace's address (`.2`): etcd and the API server.
    #[must_use]
    pub fn control_address(&self) -> Ipv4Addr {
        self.fabric_addr(2)
    }

    /// The outside client's address (`.3`).
    #[must_use]
    pub fn client_address(&self) -> Ipv4Addr {
        self.fabric_addr(3)
    }

    /// Node `index`'s (1-based) address: `.10 + index`.
    ///
    /// # Panics
    /// If `index` is 0 or above [`MAX_NODES`].
    #[must_use]
    pub fn node_address(&self, index: usize) -> Ipv4Addr {
        self.fabric_addr(NODE_HOST_OFFSET + node_octet(index))
    }

    /// Metric of this cluster's host safety routes: unique per slot, so two
    /// clusters' routes for the same ranges coexist and each removes only
    /// its own.
    #[must_use]
    pub fn safety_metric(&self) -> u32 {
        SAFETY_METRIC_BASE + u32::from(self.slot)
    }

    fn fabric_addr(&self, host: u8) -> Ipv4Addr {
        let [a, b] = FABRIC_FIRST_OCTETS;
        Ipv4Addr::new(a, b, self.slot, host)
    }
}

/// The slot whose safety routes carry `metric`, if it is one of ours.
#[must_use]
pub fn slot_of_metric(metric: u32) -> Option<Slot> {
    metric
        .checked_sub(SAFETY_METRIC_BASE)
        .and_then(|s| Slot::try_from(s).ok())
}

fn node_octet(index: usize) -> u8 {
    assert!(
        (1..=MAX_NODES).contains(&index),
        "node index {index} outside 1..={MAX_NODES}"
    );
    u8::try_from(index).expect("MAX_NODES fits in an octet")
}

fn net(octets: [u8; 4], prefix: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::from(octets), prefix).expect("prefix length is at most 32")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_of_a_test_slot() {
        let a = Addressing::for_slot(7);
        assert_eq!(a.fabric().to_string(), "172.28.7.0/24");
        assert_eq!(a.host_address(), Ipv4Addr::new(172, 28, 7, 1));
        assert_eq!(a.control_address(), Ipv4Addr::new(172, 28, 7, 2));
        assert_eq!(a.client_address(), Ipv4Addr::new(172, 28, 7, 3));
        assert_eq!(a.node_address(1), Ipv4Addr::new(172, 28, 7, 11));
        assert_eq!(a.node_address(MAX_NODES), Ipv4Addr::new(172, 28, 7, 210));
        assert_eq!(a.safety_metric(), 47_007);
        assert_eq!(slot_of_metric(47_007), Some(7));
        assert_eq!(slot_of_metric(46_999), None);
        assert_eq!(slot_of_metric(47_256), None);
    }

    #[test]
    fn every_address_is_inside_the_fabric_and_distinct() {
        let a = Addressing::for_slot(PERSISTENT_SLOT);
        let mut all = vec![a.host_address(), a.control_address(), a.client_address()];
        all.extend((1..=MAX_NODES).map(|i| a.node_address(i)));
        assert!(all.iter().all(|ip| a.fabric().contains(ip)));
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        assert!(all.iter().all(|ip| *ip != a.fabric().broadcast()));
    }

    #[test]
    fn kubernetes_defaults() {
        assert_eq!(pod_cidr().to_string(), "10.244.0.0/16");
        assert_eq!(service_cidr().to_string(), "10.96.0.0/12");
        assert_eq!(node_pod_cidr(3).to_string(), "10.244.3.0/24");
        assert!(pod_cidr().contains(&node_pod_cidr(MAX_NODES)));
        assert!(service_cidr().contains(&kubernetes_service_ip()));
        assert_eq!(node_port_range(), 30000..=32767);
    }

    #[test]
    #[should_panic(expected = "outside 1..=200")]
    fn node_zero_is_not_a_node() {
        let _ = node_pod_cidr(0);
    }
}
