//! The node's own state in the maps: pod endpoints (for routing), local
//! addresses (for NodePorts) and node-wide settings (SNAT address and
//! ports, hairpin address, whether the programs route pods).
//!
//! baton-cni (through baton-node) registers a pod when its veth is up and
//! unregisters it when the pod goes; baton-node sets the local addresses
//! from the node's interfaces and the settings at start.

use std::{net::Ipv4Addr, ops::RangeInclusive, path::Path};

use aya::maps::{HashMap, MapData};
use baton_abi::{
    config::{
        CONFIG_F_MASQUERADE, CONFIG_F_ROUTE_PODS, CONFIG_MAP_NAME, Config, HAIRPIN_ADDR,
        SNAT_PORT_MAX, SNAT_PORT_MIN,
    },
    route::{
        ENDPOINTS_MAP_NAME, Endpoint, Ipv4Key, LOCAL_ADDRS_MAP_NAME, LocalAddr, NODE_ADDRS_MAP_NAME,
    },
};
use ipnet::Ipv4Net;
use tracing::debug;

use super::maps::{self, MapAccessError, NodeMaps, Source};

/// A pod of this node, as routing needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodEndpoint {
    /// The pod's IPv4 address.
    pub addr: Ipv4Addr,
    /// Interface index of the pod's host-side veth, in the node's network
    /// namespace.
    pub host_ifindex: u32,
    /// MAC address of the pod's interface (inside the pod).
    pub pod_mac: [u8; 6],
    /// MAC address of the host-side veth.
    pub host_mac: [u8; 6],
    /// Security identity (reserved for network policy; 0 = none).
    pub identity: u32,
}

impl PodEndpoint {
    fn value(&self) -> Endpoint {
        Endpoint {
            ifindex: self.host_ifindex,
            identity: self.identity,
            pod_mac: self.pod_mac,
            host_mac: self.host_mac,
            flags: 0,
        }
    }

    fn from_entry(key: &Ipv4Key, value: &Endpoint) -> Self {
        Self {
            addr: Ipv4Addr::from(key.addr),
            host_ifindex: value.ifindex,
            pod_mac: value.pod_mac,
            host_mac: value.host_mac,
            identity: value.identity,
        }
    }
}

/// Node-wide settings the programs read at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Node address that traffic from outside sent to a backend on another
    /// node is SNATed to (the node's fabric address). `None`: such traffic
    /// is dropped (`no_route`).
    pub snat_addr: Option<Ipv4Addr>,
    /// Source ports for that SNAT.
    pub snat_ports: RangeInclusive<u16>,
    /// Source address of hairpin traffic (a pod reaching itself through a
    /// service on the packet path).
    pub hairpin_addr: Ipv4Addr,
    /// The programs route pod traffic (`bpf_redirect_peer` to local pods,
    /// FIB lookups otherwise) instead of leaving it to the kernel stack.
    pub route_pods: bool,
    /// The cluster's pod range when pods' traffic to addresses outside it
    /// is masqueraded to `snat_addr`; `None`: pod traffic keeps its source.
    pub masquerade_outside: Option<Ipv4Net>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            snat_addr: None,
            snat_ports: SNAT_PORT_MIN..=SNAT_PORT_MAX,
            hairpin_addr: Ipv4Addr::from(HAIRPIN_ADDR),
            route_pods: false,
            masquerade_outside: None,
        }
    }
}

/// Changing the node's state failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeStateError {
    /// The settings cannot be used.
    #[error("invalid node config: {reason}")]
    InvalidConfig { reason: String },
    /// A map operation failed (`MapAccessError::Full` when the endpoints
    /// map is full).
    #[error(transparent)]
    Map(#[from] MapAccessError),
}

/// Pod endpoints, local addresses and settings.
#[derive(Debug)]
pub struct NodeState {
    maps: NodeMaps,
}

impl NodeState {
    pub(crate) fn new(maps: NodeMaps) -> Self {
        Self { maps }
    }

    /// The node maps a running baton-node pinned under `pin_dir`, opened
    /// from another process.
    pub fn from_pins(pin_dir: &Path) -> Result<Self, NodeStateError> {
        Ok(Self::new(NodeMaps::open(Source::Pins(pin_dir))?))
    }

    /// Registers (or updates) a pod of this node.
    pub fn register_endpoint(&mut self, endpoint: &PodEndpoint) -> Result<(), NodeStateError> {
        let key = Ipv4Key {
            addr: endpoint.addr.octets(),
        };
        maps::put(
            &mut self.maps.endpoints,
            ENDPOINTS_MAP_NAME,
            &key,
            &endpoint.value(),
        )?;
        debug!(addr = %endpoint.addr, ifindex = endpoint.host_ifindex, "pod endpoint registered");
        Ok(())
    }

    /// Removes a pod; removing one that is not registered is not an error.
    pub fn unregister_endpoint(&mut self, addr: Ipv4Addr) -> Result<(), NodeStateError> {
        maps::delete(
            &mut self.maps.endpoints,
            ENDPOINTS_MAP_NAME,
            &Ipv4Key {
                addr: addr.octets(),
            },
        )?;
        debug!(%addr, "pod endpoint unregistered");
        Ok(())
    }

    /// Every registered pod.
    pub fn endpoints(&self) -> Result<Vec<PodEndpoint>, NodeStateError> {
        let mut endpoints: Vec<PodEndpoint> =
            maps::entries(&self.maps.endpoints, ENDPOINTS_MAP_NAME)?
                .iter()
                .map(|(key, value)| PodEndpoint::from_entry(key, value))
                .collect();
        endpoints.sort_by_key(|endpoint| endpoint.addr);
        Ok(endpoints)
    }

    /// Makes `addrs` (address, interface index) the node's local addresses,
    /// on which NodePorts answer: adds the new ones, then removes the others.
    pub fn set_local_addresses(&mut self, addrs: &[(Ipv4Addr, u32)]) -> Result<(), NodeStateError> {
        let wanted: Vec<(Ipv4Addr, LocalAddr)> = addrs
            .iter()
            .map(|(addr, ifindex)| {
                (
                    *addr,
                    LocalAddr {
                        ifindex: *ifindex,
                        flags: 0,
                    },
                )
            })
            .collect();
        replace_addresses(&mut self.maps.local_addrs, LOCAL_ADDRS_MAP_NAME, &wanted)
    }

    /// Makes `addrs` the other nodes' addresses (pod traffic to them keeps
    /// its source when masquerading is on).
    pub fn set_node_addresses(&mut self, addrs: &[Ipv4Addr]) -> Result<(), NodeStateError> {
        let wanted: Vec<(Ipv4Addr, LocalAddr)> = addrs
            .iter()
            .map(|addr| (*addr, LocalAddr::default()))
            .collect();
        replace_addresses(&mut self.maps.node_addrs, NODE_ADDRS_MAP_NAME, &wanted)
    }

    /// The node's local addresses.
    pub fn local_addresses(&self) -> Result<Vec<Ipv4Addr>, NodeStateError> {
        addresses(&self.maps.local_addrs, LOCAL_ADDRS_MAP_NAME)
    }

    /// The other nodes' addresses.
    pub fn node_addresses(&self) -> Result<Vec<Ipv4Addr>, NodeStateError> {
        addresses(&self.maps.node_addrs, NODE_ADDRS_MAP_NAME)
    }

    /// Writes the node-wide settings.
    pub fn set_config(&mut self, config: &NodeConfig) -> Result<(), NodeStateError> {
        if config.snat_ports.is_empty() || *config.snat_ports.start() == 0 {
            return Err(NodeStateError::InvalidConfig {
                reason: format!("SNAT port range {:?}", config.snat_ports),
            });
        }
        let value = Config {
            snat_addr: config.snat_addr.unwrap_or(Ipv4Addr::UNSPECIFIED).octets(),
            hairpin_addr: config.hairpin_addr.octets(),
            snat_port_min: *config.snat_ports.start(),
            snat_port_max: *config.snat_ports.end(),
            flags: if config.route_pods {
                CONFIG_F_ROUTE_PODS
            } else {
                0
            } | if config.masquerade_outside.is_some() {
                CONFIG_F_MASQUERADE
            } else {
                0
            },
            cluster_cidr_addr: config
                .masquerade_outside
                .map_or([0; 4], |net| net.network().octets()),
            cluster_cidr_mask: config
                .masquerade_outside
                .map_or([0; 4], |net| net.netmask().octets()),
        };
        self.maps
            .config
            .set(0, value, 0)
            .map_err(|error| MapAccessError::of(CONFIG_MAP_NAME, "update", error))?;
        Ok(())
    }

    /// The node-wide settings as the programs see them.
    pub fn config(&self) -> Result<NodeConfig, NodeStateError> {
        let value = self
            .maps
            .config
            .get(&0, 0)
            .map_err(|error| MapAccessError::of(CONFIG_MAP_NAME, "lookup", error))?;
        let snat = Ipv4Addr::from(value.snat_addr);
        Ok(NodeConfig {
            snat_addr: (!snat.is_unspecified()).then_some(snat),
            snat_ports: value.snat_port_min..=value.snat_port_max,
            hairpin_addr: Ipv4Addr::from(value.hairpin_addr),
            route_pods: value.flags & CONFIG_F_ROUTE_PODS != 0,
            masquerade_outside: (value.flags & CONFIG_F_MASQUERADE != 0).then(|| {
                let mask = Ipv4Addr::from(value.cluster_cidr_mask);
                let prefix = u32::from(mask).leading_ones() as u8;
                Ipv4Net::new(Ipv4Addr::from(value.cluster_cidr_addr), prefix)
                    .expect("a prefix of at most 32 bits")
            }),
        })
    }
}

/// An address map's addresses, sorted.
fn addresses(
    map: &HashMap<MapData, Ipv4Key, LocalAddr>,
    name: &'static str,
) -> Result<Vec<Ipv4Addr>, NodeStateError> {
    let mut addrs: Vec<Ipv4Addr> = maps::entries(map, name)?
        .iter()
        .map(|(key, _)| Ipv4Addr::from(key.addr))
        .collect();
    addrs.sort();
    Ok(addrs)
}

/// Makes an address map hold exactly `wanted`: adds (or updates) those,
/// then removes the others, so a reader never misses a wanted address.
fn replace_addresses(
    map: &mut HashMap<MapData, Ipv4Key, LocalAddr>,
    name: &'static str,
    wanted: &[(Ipv4Addr, LocalAddr)],
) -> Result<(), NodeStateError> {
    for (addr, value) in wanted {
        maps::put(
            map,
            name,
            &Ipv4Key {
                addr: addr.octets(),
            },
            value,
        )?;
    }
    for addr in addresses(map, name)? {
        if !wanted.iter().any(|(w, _)| *w == addr) {
            maps::delete(
                map,
                name,
                &Ipv4Key {
                    addr: addr.octets(),
                },
            )?;
        }
    }
    Ok(())
}
