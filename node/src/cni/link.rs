//! The host side effects of pod networking: a veth pair between the node's
//! namespace and the pod's, the pod's address and default route, and the
//! node's route to the pod. Behind [`PodLinks`] so the plugin's logic is
//! tested with [`fake::FakeLinks`]; [`Netlink`] does it for real.
//!
//! [`Netlink`] makes the route-netlink requests itself (`sys::rtnetlink`):
//! a pod's ADD is five requests from the node's namespace side and four
//! from a thread inside the pod's, and starts no process. The veth's MACs
//! are chosen here (derived from its name, locally administered) instead of
//! read back, and the host link's existence and index come from
//! `if_nametoindex`.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::sys::netns::{self, NetnsError};
use crate::sys::rtnetlink::{Rtnl, RtnlError, ipv4_route};

/// Prefix of host-side pod veths (as Cilium's `lxc…`).
pub const HOST_VETH_PREFIX: &str = "lxc";

/// A link operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Netlink(#[from] RtnlError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("no link {0}")]
    Missing(String),
    /// What a test's fake was told to answer.
    #[error("{0}")]
    Fake(String),
}

/// What [`PodLinks::setup`] is asked to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupRequest {
    /// The pod's network namespace (a path, `CNI_NETNS`).
    pub netns: PathBuf,
    /// The interface name inside the pod (`CNI_IFNAME`, `eth0`).
    pub pod_ifname: String,
    /// The host-side veth name.
    pub host_ifname: String,
    /// The pod's address (a /32 on the pod interface).
    pub address: Ipv4Addr,
    /// The pod's next hop, answered by the host veth.
    pub gateway: Ipv4Addr,
    pub mtu: u32,
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host_ifname: String,
    pub host_ifindex: u32,
    pub host_mac: String,
    pub pod_mac: String,
}

/// Host-side link operations of the plugin.
pub trait PodLinks {
    /// Creates the veth pair into the pod namespace and configures both
    /// ends. Replaces a half-built pair of the same name (a retried ADD).
    fn setup(&self, req: &SetupRequest) -> Result<Endpoint, LinkError>;
    /// Removes the pair by its host end (the pod end goes with it); a
    /// missing link is fine.
    fn teardown(&self, host_ifname: &str) -> Result<(), LinkError>;
    /// The addresses configured on `ifname` inside `netns`.
    fn pod_addresses(&self, netns: &Path, ifname: &str) -> Result<Vec<Ipv4Net>, LinkError>;
    /// Whether the host-side link exists.
    fn host_link_exists(&self, host_ifname: &str) -> Result<bool, LinkError>;
    /// Names of every host-side pod veth in the node's namespace.
    fn host_links(&self) -> Result<Vec<String>, LinkError>;
}

/// The host veth name of a container's interface: `lxc` + 12 hex digits
/// of SHA-256(container id / ifname), within IFNAMSIZ.
#[must_use]
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(format!("{container_id}/{ifname}"));
    format!("{HOST_VETH_PREFIX}{}", &hex::encode(digest)[..12])
}

/// The MAC of one end (`side`) of the veth named `host_ifname`: six bytes
/// of SHA-256(name/side), locally administered and unicast, so a retried
/// ADD builds the same pair and nothing has to be read back.
#[must_use]
pub fn veth_mac(host_ifname: &str, side: &str) -> [u8; 6] {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(format!("{host_ifname}/{side}"));
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// `aa:bb:cc:dd:ee:ff`.
#[must_use]
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The real implementation, over route netlink: the requests `ip` would
/// send, made by the plugin itself, so setting up a pod starts no process.
#[derive(Debug, Clone, Default)]
pub struct Netlink;

/// The index of a link of the calling thread's namespace, `None` when there
/// is no such link.
fn index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// A link message for a new veth end named `name`.
fn veth_end(name: &str, mtu: u32, mac: [u8; 6]) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.attributes = vec![
        LinkAttribute::IfName(name.to_owned()),
        LinkAttribute::Mtu(mtu),
        LinkAttribute::Address(mac.to_vec()),
    ];
    message
}

/// A request to bring link `index` up.
fn up(index: u32) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.header.flags = LinkFlags::Up;
    message.header.change_mask = LinkFlags::Up;
    message
}

/// Configures the pod's end, from a thread inside the pod's namespace: its
/// address, a permanent neighbour entry for the gateway (the host end's
/// MAC, so the pod never has to resolve it) and the routes through it.
fn configure_pod_end(req: &SetupRequest, host_mac: [u8; 6]) -> Result<(), LinkError> {
    let pod = &req.pod_ifname;
    let pod_index = index(pod).ok_or_else(|| LinkError::Missing(format!("{pod} in the pod")))?;
    let mut rtnl = Rtnl::open()?;
    rtnl.request(
        "bring the pod's link up",
        RouteNetlinkMessage::SetLink(up(pod_index)),
        0,
    )?;

    let mut address = AddressMessage::default();
    address.header.family = AddressFamily::Inet;
    address.header.prefix_len = 32;
    address.header.index = pod_index;
    address.attributes = vec![
        AddressAttribute::Local(req.address.into()),
        AddressAttribute::Address(req.address.into()),
    ];
    rtnl.request(
        "add the pod's address",
        RouteNetlinkMessage::NewAddress(address),
        NLM_F_CREATE | NLM_F_REPLACE,
    )?;

    let mut neighbour = NeighbourMessage::default();
    neighbour.header.family = AddressFamily::Inet;
    neighbour.header.ifindex = pod_index;
    neighbour.header.state = NeighbourState::Permanent;
    neighbour.attributes = vec![
        NeighbourAttribute::Destination(NeighbourAddress::Inet(req.gateway)),
        NeighbourAttribute::LinkLayerAddress(host_mac.to_vec()),
    ];
    rtnl.request(
        "add the gateway's neighbour entry",
        RouteNetlinkMessage::NewNeighbour(neighbour),
        NLM_F_CREATE | NLM_F_REPLACE,
    )?;

    for (op, message) in [
        (
            "add the route to the gateway",
            ipv4_route(
                req.gateway.into(),
                None,
                Some(pod_index),
                RouteProtocol::Boot,
            ),
        ),
        (
            "add the default route",
            ipv4_route(
                Ipv4Net::default(),
                Some(req.gateway),
                Some(pod_index),
                RouteProtocol::Boot,
            ),
        ),
    ] {
        rtnl.request(
            op,
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )?;
    }
    Ok(())
}

impl PodLinks for Netlink {
    fn setup(&self, req: &SetupRequest) -> Result<Endpoint, LinkError> {
        // A retried ADD may find its earlier, half-configured pair.
        self.teardown(&req.host_ifname)?;
        let host = &req.host_ifname;
        let host_mac = veth_mac(host, "host");
        let pod_mac = veth_mac(host, "pod");
        let result = (|| {
            let netns = File::open(&req.netns).map_err(|source| NetnsError::Open {
                path: req.netns.clone(),
                source,
            })?;
            let mut rtnl = Rtnl::open()?;
            // The peer is created directly inside the pod namespace, so no
            // foreign interface ever appears in the node namespace under
            // the pod's name. The host end comes up with its creation; the
            // peer cannot (the kernel opens it before the pair is joined,
            // ENOTCONN), so the pod side brings it up.
            let mut peer = veth_end(&req.pod_ifname, req.mtu, pod_mac);
            peer.attributes
                .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
            let mut pair = veth_end(host, req.mtu, host_mac);
            pair.header.flags = LinkFlags::Up;
            pair.header.change_mask = LinkFlags::Up;
            pair.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]));
            rtnl.request(
                "create the veth pair",
                RouteNetlinkMessage::NewLink(pair),
                NLM_F_CREATE | NLM_F_EXCL,
            )?;
            let host_ifindex = index(host)
                .ok_or_else(|| LinkError::Missing(format!("the new host veth {host}")))?;
            rtnl.request(
                "add the node's route to the pod",
                RouteNetlinkMessage::NewRoute(ipv4_route(
                    req.address.into(),
                    None,
                    Some(host_ifindex),
                    RouteProtocol::Boot,
                )),
                NLM_F_CREATE | NLM_F_REPLACE,
            )?;
            netns::run_in(&req.netns, || configure_pod_end(req, host_mac))??;
            Ok(Endpoint {
                host_ifname: host.clone(),
                host_ifindex,
                host_mac: format_mac(host_mac),
                pod_mac: format_mac(pod_mac),
            })
        })();
        if result.is_err() {
            let _ = self.teardown(&req.host_ifname);
        }
        result
    }

    fn teardown(&self, host_ifname: &str) -> Result<(), LinkError> {
        let Some(host_index) = index(host_ifname) else {
            return Ok(());
        };
        let mut link = LinkMessage::default();
        link.header.index = host_index;
        let mut rtnl = Rtnl::open()?;
        match rtnl.request(
            "delete the veth pair",
            RouteNetlinkMessage::DelLink(link),
            0,
        ) {
            // Gone meanwhile (its namespace was removed).
            Err(err) if err.errno() == Some(libc::ENODEV) => Ok(()),
            other => Ok(other?),
        }
    }

    fn pod_addresses(&self, netns: &Path, ifname: &str) -> Result<Vec<Ipv4Net>, LinkError> {
        netns::run_in(netns, || {
            let pod_index =
                index(ifname).ok_or_else(|| LinkError::Missing(format!("{ifname} in the pod")))?;
            let mut request = AddressMessage::default();
            request.header.family = AddressFamily::Inet;
            let answer = Rtnl::open().and_then(|mut rtnl| {
                rtnl.dump(
                    "list the pod's addresses",
                    RouteNetlinkMessage::GetAddress(request),
                )
            })?;
            Ok(answer
                .into_iter()
                .filter_map(|message| match message {
                    RouteNetlinkMessage::NewAddress(a) if a.header.index == pod_index => Some(a),
                    _ => None,
                })
                .filter_map(|a| {
                    let local = a.attributes.iter().find_map(|attribute| match attribute {
                        AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                        _ => None,
                    })?;
                    Ipv4Net::new(local, a.header.prefix_len).ok()
                })
                .collect())
        })?
    }

    fn host_link_exists(&self, host_ifname: &str) -> Result<bool, LinkError> {
        Ok(index(host_ifname).is_some())
    }

    fn host_links(&self) -> Result<Vec<String>, LinkError> {
        let answer = Rtnl::open().and_then(|mut rtnl| {
            rtnl.dump(
                "list the node's links",
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
            )
        })?;
        Ok(answer
            .into_iter()
            .filter_map(|message| match message {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })
            .filter(|link| {
                link.attributes.iter().any(|attribute| {
                    matches!(attribute, LinkAttribute::LinkInfo(infos)
                        if infos.contains(&LinkInfo::Kind(InfoKind::Veth)))
                })
            })
            .filter_map(|link| {
                link.attributes
                    .into_iter()
                    .find_map(|attribute| match attribute {
                        LinkAttribute::IfName(name) => Some(name),
                        _ => None,
                    })
            })
            .filter(|name| name.starts_with(HOST_VETH_PREFIX))
            .collect())
    }
}

/// A recording fake of [`PodLinks`] for tests of the plugin's logic.
pub mod fake {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;

    /// What the fake was asked to do, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        Setup(SetupRequest),
        Teardown(String),
    }

    /// Keeps links in memory; `fail_setup` makes the next setup fail.
    #[derive(Debug, Default)]
    pub struct FakeLinks {
        pub calls: RefCell<Vec<Call>>,
        /// host ifname → (netns, pod ifname, address)
        pub links: RefCell<BTreeMap<String, (PathBuf, String, Ipv4Addr)>>,
        pub fail_setup: RefCell<Option<String>>,
    }

    impl PodLinks for FakeLinks {
        fn setup(&self, req: &SetupRequest) -> Result<Endpoint, LinkError> {
            self.calls.borrow_mut().push(Call::Setup(req.clone()));
            if let Some(message) = self.fail_setup.borrow_mut().take() {
                return Err(LinkError::Fake(message));
            }
            self.links.borrow_mut().insert(
                req.host_ifname.clone(),
                (req.netns.clone(), req.pod_ifname.clone(), req.address),
            );
            let index = u32::try_from(self.links.borrow().len()).unwrap_or(u32::MAX) + 10;
            Ok(Endpoint {
                host_ifname: req.host_ifname.clone(),
                host_ifindex: index,
                host_mac: "02:00:00:00:00:01".into(),
                pod_mac: "02:00:00:00:00:02".into(),
            })
        }

        fn teardown(&self, host_ifname: &str) -> Result<(), LinkError> {
            self.calls
                .borrow_mut()
                .push(Call::Teardown(host_ifname.to_owned()));
            self.links.borrow_mut().remove(host_ifname);
            Ok(())
        }

        fn pod_addresses(&self, netns: &Path, ifname: &str) -> Result<Vec<Ipv4Net>, LinkError> {
            Ok(self
                .links
                .borrow()
                .values()
                .filter(|(ns, name, _)| ns == netns && name == ifname)
                .map(|(_, _, ip)| Ipv4Net::from(*ip))
                .collect())
        }

        fn host_link_exists(&self, host_ifname: &str) -> Result<bool, LinkError> {
            Ok(self.links.borrow().contains_key(host_ifname))
        }

        fn host_links(&self) -> Result<Vec<String>, LinkError> {
            Ok(self.links.borrow().keys().cloned().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_fit_ifnamsiz_and_differ_per_container() {
        let a = host_ifname("0123456789abcdef", "eth0");
        let b = host_ifname("0123456789abcdeg", "eth0");
        assert!(a.starts_with("lxc") && a.len() == 15, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, host_ifname("0123456789abcdef", "eth0"));
    }

    #[test]
    fn veth_macs_are_local_unicast_and_differ_per_side() {
        let host = veth_mac("lxc0123456789ab", "host");
        let pod = veth_mac("lxc0123456789ab", "pod");
        assert_ne!(host, pod);
        assert_eq!(host, veth_mac("lxc0123456789ab", "host"));
        for mac in [host, pod] {
            assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast: {mac:?}");
        }
        assert_eq!(format_mac([0x02, 0, 0xab, 1, 2, 0xff]), "02:00:ab:01:02:ff");
    }

    /// What `ip` shows of a namespace (`None`: the node's), for checking
    /// the netlink requests against the tool users would read them with.
    fn ip(netns: Option<&Path>, args: &[&str]) -> String {
        let mut command = match netns {
            Some(ns) => {
                let mut command = std::process::Command::new("nsenter");
                command.arg(format!("--net={}", ns.display())).arg("ip");
                command
            }
            None => std::process::Command::new("ip"),
        };
        let out = command.args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn netlink_builds_the_pair_routes_and_neighbour_and_removes_them() {
        let (pod_ns, _pod_ns_alive) = netns::testing::hold_fresh();
        let pod_ns = pod_ns.as_path();
        netns::testing::in_fresh(|| {
            let host = host_ifname("netlink-test", "eth0");
            let req = SetupRequest {
                netns: pod_ns.to_owned(),
                pod_ifname: "eth0".into(),
                host_ifname: host.clone(),
                address: Ipv4Addr::new(10, 244, 1, 7),
                gateway: Ipv4Addr::new(169, 254, 1, 1),
                mtu: 1450,
            };
            let endpoint = Netlink.setup(&req).unwrap();
            // A retried ADD replaces the pair and gets the same one.
            let again = Netlink.setup(&req).unwrap();
            assert_eq!(endpoint.host_mac, again.host_mac);
            let endpoint = again;
            assert_eq!(Some(endpoint.host_ifindex), index(&host));
            assert_eq!(endpoint.host_mac, format_mac(veth_mac(&host, "host")));

            let host_link = ip(None, &["-d", "link", "show", "dev", &host]);
            assert!(
                host_link.contains("mtu 1450") && host_link.contains("state UP")
                    || host_link.contains(",UP"),
                "{host_link}"
            );
            assert!(
                host_link.contains(&endpoint.host_mac) && host_link.contains("veth"),
                "{host_link}"
            );
            let node_routes = ip(None, &["-4", "route", "show"]);
            assert!(
                node_routes.contains(&format!("10.244.1.7 dev {host} scope link")),
                "{node_routes}"
            );

            let pod_link = ip(Some(pod_ns), &["link", "show", "dev", "eth0"]);
            assert!(
                pod_link.contains("mtu 1450")
                    && pod_link.contains(",UP")
                    && pod_link.contains(&endpoint.pod_mac),
                "{pod_link}"
            );
            let pod_routes = ip(Some(pod_ns), &["-4", "route", "show"]);
            assert!(
                pod_routes.contains("default via 169.254.1.1 dev eth0"),
                "{pod_routes}"
            );
            assert!(
                pod_routes.contains("169.254.1.1 dev eth0 scope link"),
                "{pod_routes}"
            );
            let neighbours = ip(Some(pod_ns), &["neigh", "show", "dev", "eth0"]);
            assert!(
                neighbours.contains(&format!(
                    "169.254.1.1 lladdr {} PERMANENT",
                    endpoint.host_mac
                )),
                "{neighbours}"
            );
            assert_eq!(
                Netlink.pod_addresses(pod_ns, "eth0").unwrap(),
                ["10.244.1.7/32".parse::<Ipv4Net>().unwrap()]
            );
            assert_eq!(Netlink.host_links().unwrap(), vec![host.clone()]);

            Netlink.teardown(&host).unwrap();
            assert!(!Netlink.host_link_exists(&host).unwrap());
            assert!(Netlink.host_links().unwrap().is_empty());
            assert!(!ip(Some(pod_ns), &["link", "show"]).contains("eth0"));
            // DEL is idempotent.
            Netlink.teardown(&host).unwrap();
        });
    }
}
