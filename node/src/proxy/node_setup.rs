//! The node side of the proxy at start: node settings in the maps (SNAT
//! address, pod routing), IPv4 forwarding, the node's local addresses (the
//! addresses NodePorts answer on, refreshed while running), socket LB on the
//! node's cgroup subtree and the uplink programs.

use std::{
    collections::BTreeMap,
    io,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use ipnet::Ipv4Net;
use tracing::info;

use crate::dataplane::{
    AttachError, CgroupAttachment, CgroupError, Dataplane, NodeConfig, NodeStateError, TcMode,
    UplinkAttachment,
};

/// Where the cgroup v2 hierarchy is mounted: `/sys/fs/cgroup/unified` on a
/// hybrid layout, else `/sys/fs/cgroup`.
#[must_use]
pub fn cgroup2_mount() -> PathBuf {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if unified.join("cgroup.procs").exists() {
        unified.to_owned()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// How the node is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSetup {
    /// The node's InternalIP: the SNAT address of traffic from outside
    /// forwarded to another node's backend.
    pub node_ip: Ipv4Addr,
    /// The node's uplink (tc programs for NodePort/ExternalIP/LoadBalancer
    /// traffic from outside); `None`: not attached.
    pub uplink: Option<String>,
    /// cgroup v2 directory whose processes get socket LB; `None`: not
    /// attached.
    pub socket_lb_cgroup: Option<PathBuf>,
    /// Enable `net.ipv4.ip_forward` in the node's network namespace (the
    /// FIB lookups of pod routing and NodePort forwarding need it).
    pub ip_forward: bool,
    /// The programs route pod traffic.
    pub route_pods: bool,
    /// The cluster's pod range, when pods' traffic to addresses outside it
    /// leaves with the node address.
    pub masquerade_outside: Option<Ipv4Net>,
    /// Addresses NodePorts answer on: the node's addresses inside these
    /// ranges; empty: every non-loopback IPv4 address.
    pub nodeport_addresses: Vec<Ipv4Net>,
}

/// Setting the node up failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeSetupError {
    #[error("node settings: {0}")]
    Config(#[source] NodeStateError),
    #[error("local addresses: {0}")]
    Addresses(#[source] NodeStateError),
    #[error("list the node's addresses: {0}")]
    ListAddresses(#[source] nix::Error),
    #[error("enable IPv4 forwarding ({path}): {source}")]
    Forwarding {
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("create cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Attach(#[from] CgroupError),
    #[error(transparent)]
    Uplink(#[from] AttachError),
}

/// What [`NodeSetup::apply`] attached; held for the life of the agent
/// (with a pin directory the links outlive it anyway).
#[derive(Debug, Default)]
pub struct Attachments {
    pub cgroup: Option<CgroupAttachment>,
    pub uplink: Option<UplinkAttachment>,
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

impl NodeSetup {
    /// Writes the settings, enables forwarding, sets the local addresses
    /// and attaches the programs.
    pub fn apply(&self, dataplane: &mut Dataplane) -> Result<Attachments, NodeSetupError> {
        dataplane
            .node()
            .set_config(&NodeConfig {
                snat_addr: Some(self.node_ip),
                route_pods: self.route_pods,
                masquerade_outside: self.masquerade_outside,
                ..NodeConfig::default()
            })
            .map_err(NodeSetupError::Config)?;
        if self.ip_forward {
            // /proc/sys/net is the calling process's network namespace:
            // the node's, never the host's when run inside a node namespace.
            std::fs::write(IP_FORWARD, "1").map_err(|source| NodeSetupError::Forwarding {
                path: IP_FORWARD,
                source,
            })?;
        }
        self.refresh_addresses(dataplane)?;
        let mut attachments = Attachments::default();
        if let Some(path) = &self.socket_lb_cgroup {
            std::fs::create_dir_all(path).map_err(|source| NodeSetupError::Cgroup {
                path: path.clone(),
                source,
            })?;
            attachments.cgroup = Some(dataplane.attach_cgroup(path)?);
            info!(cgroup = %path.display(), "socket load balancing attached");
        }
        if let Some(uplink) = &self.uplink {
            attachments.uplink = Some(dataplane.attach_uplink(uplink, TcMode::Auto)?);
            info!(%uplink, "uplink programs attached");
        }
        Ok(attachments)
    }

    /// Writes the node's current addresses as its local addresses (where
    /// NodePorts answer). Returns whether they changed.
    pub fn refresh_addresses(&self, dataplane: &mut Dataplane) -> Result<bool, NodeSetupError> {
        let wanted = self.local_addresses()?;
        let current = dataplane
            .node()
            .local_addresses()
            .map_err(NodeSetupError::Addresses)?;
        let wanted_addrs: Vec<Ipv4Addr> = wanted.keys().copied().collect();
        if wanted_addrs == current {
            return Ok(false);
        }
        let list: Vec<(Ipv4Addr, u32)> = wanted.into_iter().collect();
        dataplane
            .node()
            .set_local_addresses(&list)
            .map_err(NodeSetupError::Addresses)?;
        info!(addresses = ?wanted_addrs, "node addresses for NodePorts");
        Ok(true)
    }

    /// The node's IPv4 addresses NodePorts answer on, with the index of
    /// their interface.
    fn local_addresses(&self) -> Result<BTreeMap<Ipv4Addr, u32>, NodeSetupError> {
        let mut out = BTreeMap::new();
        for ifaddr in nix::ifaddrs::getifaddrs().map_err(NodeSetupError::ListAddresses)? {
            let Some(addr) = ifaddr
                .address
                .as_ref()
                .and_then(|addr| addr.as_sockaddr_in())
                .map(|addr| addr.ip())
            else {
                continue;
            };
            let wanted = if self.nodeport_addresses.is_empty() {
                !addr.is_loopback()
            } else {
                self.nodeport_addresses
                    .iter()
                    .any(|net| net.contains(&addr))
            };
            if !wanted {
                continue;
            }
            let ifindex =
                nix::net::if_::if_nametoindex(ifaddr.interface_name.as_str()).unwrap_or(0);
            out.insert(addr, ifindex);
        }
        Ok(out)
    }
}
