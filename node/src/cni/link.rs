//! The host side effects of pod networking: a veth pair between the node's
//! namespace and the pod's, the pod's address and default route, and the
//! node's route to the pod. Behind [`PodLinks`] so the plugin's logic is
//! tested with [`fake::FakeLinks`]; [`IpRoute`] does it for real.
//!
//! [`IpRoute`] drives iproute2 (`ip`), the tool every node of ours already
//! has: the plugin is a short-lived process doing a handful of link
//! operations, and `ip` entering the pod namespace by path
//! (`nsenter --net=<path>`) keeps every namespace switch out of this
//! process. The commands of each side run as one `ip -batch` process, so
//! an ADD is two processes: the veth's MACs are chosen here (derived from
//! its name, locally administered) instead of read back, and the host
//! link's existence and index come from `if_nametoindex`, not from `ip`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ipnet::Ipv4Net;
use serde::Deserialize;

/// Prefix of host-side pod veths (as Cilium's `lxc…`).
pub const HOST_VETH_PREFIX: &str = "lxc";

/// A link operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("unexpected output of `{command}`: {detail}")]
    Parse { command: String, detail: String },
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
pub fn veth_mac(host_ifname: &str, side: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(format!("{host_ifname}/{side}"));
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The real implementation over iproute2.
#[derive(Debug, Clone, Default)]
pub struct IpRoute;

#[derive(Deserialize)]
struct LinkInfo {
    ifname: String,
}

#[derive(Deserialize)]
struct AddrInfo {
    #[serde(default)]
    addr_info: Vec<AddrEntry>,
}

#[derive(Deserialize)]
struct AddrEntry {
    family: String,
    local: String,
    prefixlen: u8,
}

impl IpRoute {
    fn run(cmd: &mut Command) -> Result<String, LinkError> {
        let command = format!("{cmd:?}").replace('"', "");
        let out = cmd.output().map_err(|source| LinkError::Spawn {
            command: command.clone(),
            source,
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(LinkError::Failed {
                command,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// The index of a link of this process's namespace, `None` when there
    /// is no such link (an ioctl, no process).
    fn index(name: &str) -> Option<u32> {
        nix::net::if_::if_nametoindex(name).ok()
    }

    fn ip(args: &[&str]) -> Result<String, LinkError> {
        Self::run(Command::new("ip").args(args))
    }

    /// Runs several `ip` commands in one process (`ip -batch -`), inside
    /// `netns` when given: one process per side of the veth instead of
    /// one per command keeps a pod's network setup short.
    fn batch(netns: Option<&Path>, commands: &[String]) -> Result<(), LinkError> {
        use std::io::Write as _;
        let mut cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("nsenter");
                cmd.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg("ip");
                cmd
            }
            None => Command::new("ip"),
        };
        cmd.args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let command = format!("ip -batch - <<< {commands:?}");
        let spawn_err = |source| LinkError::Spawn {
            command: command.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let input = commands.join("\n") + "\n";
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).map_err(spawn_err)?;
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(LinkError::Failed {
                command,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    fn ip_in(netns: &Path, args: &[&str]) -> Result<String, LinkError> {
        Self::run(
            Command::new("nsenter")
                .arg(format!("--net={}", netns.display()))
                .arg("--")
                .arg("ip")
                .args(args),
        )
    }
}

impl PodLinks for IpRoute {
    fn setup(&self, req: &SetupRequest) -> Result<Endpoint, LinkError> {
        // A retried ADD may find its earlier, half-configured pair.
        self.teardown(&req.host_ifname)?;
        let (host, pod) = (&req.host_ifname, &req.pod_ifname);
        let (address, gateway, mtu) = (req.address, req.gateway, req.mtu);
        let host_mac = veth_mac(host, "host");
        let pod_mac = veth_mac(host, "pod");
        let result = (|| {
            // Created with its peer directly inside the pod namespace
            // (iproute2 takes a path as `netns`), so no foreign interface
            // ever appears in the node namespace under the pod's name.
            Self::batch(
                None,
                &[
                    format!(
                        "link add {host} mtu {mtu} address {host_mac} type veth peer name {pod} mtu {mtu} address {pod_mac} netns {}",
                        req.netns.display()
                    ),
                    format!("link set dev {host} up"),
                    format!("route replace {address}/32 dev {host} scope link"),
                ],
            )?;
            let host_ifindex = Self::index(host).ok_or_else(|| LinkError::Parse {
                command: format!("if_nametoindex({host})"),
                detail: "the new host veth is missing".into(),
            })?;
            Self::batch(
                Some(&req.netns),
                &[
                    format!("addr add {address}/32 dev {pod}"),
                    format!("link set dev {pod} up"),
                    format!("neigh replace {gateway} lladdr {host_mac} dev {pod} nud permanent"),
                    format!("route replace {gateway} dev {pod} scope link"),
                    format!("route replace default via {gateway} dev {pod}"),
                ],
            )?;
            Ok(Endpoint {
                host_ifname: host.clone(),
                host_ifindex,
                host_mac: host_mac.clone(),
                pod_mac: pod_mac.clone(),
            })
        })();
        if result.is_err() {
            let _ = self.teardown(&req.host_ifname);
        }
        result
    }

    fn teardown(&self, host_ifname: &str) -> Result<(), LinkError> {
        if !self.host_link_exists(host_ifname)? {
            return Ok(());
        }
        match Self::ip(&["link", "del", "dev", host_ifname]) {
            Ok(_) => Ok(()),
            // Gone meanwhile (its namespace was removed).
            Err(_) if !self.host_link_exists(host_ifname)? => Ok(()),
            Err(err) => Err(err),
        }
    }

    fn pod_addresses(&self, netns: &Path, ifname: &str) -> Result<Vec<Ipv4Net>, LinkError> {
        let out = Self::ip_in(netns, &["-j", "addr", "show", "dev", ifname])?;
        let infos: Vec<AddrInfo> = serde_json::from_str(&out).map_err(|err| LinkError::Parse {
            command: format!("ip -j addr show dev {ifname}"),
            detail: err.to_string(),
        })?;
        Ok(infos
            .into_iter()
            .flat_map(|i| i.addr_info)
            .filter(|a| a.family == "inet")
            .filter_map(|a| Ipv4Net::new(a.local.parse().ok()?, a.prefixlen).ok())
            .collect())
    }

    fn host_link_exists(&self, host_ifname: &str) -> Result<bool, LinkError> {
        Ok(Self::index(host_ifname).is_some())
    }

    fn host_links(&self) -> Result<Vec<String>, LinkError> {
        let out = Self::ip(&["-j", "link", "show", "type", "veth"])?;
        let links: Vec<LinkInfo> = serde_json::from_str(&out).map_err(|err| LinkError::Parse {
            command: "ip -j link show type veth".into(),
            detail: err.to_string(),
        })?;
        Ok(links
            .into_iter()
            .map(|l| l.ifname)
            .filter(|n| n.starts_with(HOST_VETH_PREFIX))
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
            if let Some(stderr) = self.fail_setup.borrow_mut().take() {
                return Err(LinkError::Failed {
                    command: "fake setup".into(),
                    stderr,
                });
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
        for mac in [&host, &pod] {
            let bytes: Vec<u8> = mac
                .split(':')
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect();
            assert_eq!(bytes.len(), 6, "{mac}");
            assert_eq!(bytes[0] & 0x03, 0x02, "locally administered unicast: {mac}");
        }
    }
}
