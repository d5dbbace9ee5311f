//! The shape of a cluster on the host — which namespaces, links, addresses
//! and routes it has — and building, checking and destroying it.
//!
//! ```text
//!  host ns: <host link> 172.28.S.1/24 ──┐
//!                                      │ veth
//!  fabric ns: bridge "fabric" ── ports: host, control, client, node-1 … node-N
//!                                      │ veth (each)
//!  control ns: eth0 .2   client ns: eth0 .3   node-i ns: eth0 .(10+i)
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::addressing::{Addressing, PERSISTENT_SLOT, Slot};
use crate::exec::{self, CommandError};
use crate::host;
use crate::iproute;
use crate::netns::Netns;
use crate::process;
use crate::safety;

/// The bridge inside the fabric namespace.
pub const FABRIC_BRIDGE: &str = "fabric";
/// Every member namespace's link to the fabric.
pub const UPLINK: &str = "eth0";
/// The fabric-side port of the host's veth.
const HOST_PORT: &str = "host";

/// How long a new cluster's links get to report carrier.
const CARRIER_TIMEOUT: Duration = Duration::from_secs(5);

/// Names of the persistent cluster (`cargo xtask up`).
pub const PERSISTENT_NAME: &str = "baton";
const PERSISTENT_HOST_LINK: &str = "baton-host";

/// What a cluster consists of on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Topology {
    /// `baton` (persistent) or `baton-<pid>-<slot>` (tests); every namespace
    /// name starts with it.
    pub name: String,
    pub addressing: Addressing,
    pub fabric: Netns,
    pub control: Netns,
    pub client: Netns,
    pub nodes: Vec<Netns>,
    /// The host's veth into the fabric.
    pub host_link: String,
    /// Per-cluster directory (node directories, mounts); removed at teardown.
    pub run_dir: PathBuf,
}

impl Topology {
    /// A test cluster's names: they carry the owning PID and the slot.
    pub fn ephemeral(pid: u32, slot: Slot, nodes: usize, run_root: &Path) -> Self {
        let name = ephemeral_name(pid, slot);
        Self::named(
            &name,
            Addressing::for_slot(slot),
            nodes,
            format!("bt{pid}-{slot}"),
            run_root.join(&name),
        )
    }

    /// The persistent cluster's fixed names: `baton-control`,
    /// `baton-node-1`…, `baton-client`, `baton-fabric`; host link `baton-host`.
    pub fn persistent(nodes: usize, run_dir: PathBuf) -> Self {
        Self::named(
            PERSISTENT_NAME,
            Addressing::for_slot(PERSISTENT_SLOT),
            nodes,
            PERSISTENT_HOST_LINK.to_owned(),
            run_dir,
        )
    }

    fn named(
        name: &str,
        addressing: Addressing,
        nodes: usize,
        host_link: String,
        run_dir: PathBuf,
    ) -> Self {
        let ns = |role: &str| Netns::new(format!("{name}-{role}"));
        Self {
            name: name.to_owned(),
            addressing,
            fabric: ns("fabric"),
            control: ns("control"),
            client: ns("client"),
            nodes: (1..=nodes).map(|i| ns(&format!("node-{i}"))).collect(),
            host_link,
            run_dir,
        }
    }

    /// Member namespaces with their fabric port name and address.
    pub fn members(&self) -> Vec<(&Netns, String, Ipv4Addr)> {
        let a = &self.addressing;
        let mut members = vec![
            (&self.control, "control".to_owned(), a.control_address()),
            (&self.client, "client".to_owned(), a.client_address()),
        ];
        members.extend(
            self.nodes
                .iter()
                .enumerate()
                .map(|(i, ns)| (ns, format!("node-{}", i + 1), a.node_address(i + 1))),
        );
        members
    }

    /// Every namespace, members first, the fabric last.
    pub fn all_netns(&self) -> Vec<&Netns> {
        let mut all: Vec<&Netns> = self.members().into_iter().map(|(ns, _, _)| ns).collect();
        all.push(&self.fabric);
        all
    }

    /// The directory of node `index` (1-based) under the run directory.
    pub fn node_dir(&self, index: usize) -> PathBuf {
        self.run_dir.join(format!("node-{index}"))
    }

    fn with_prefix(&self, addr: Ipv4Addr) -> Ipv4Net {
        Ipv4Net::new(addr, self.addressing.fabric().prefix_len()).expect("fabric prefix is valid")
    }

    /// Creates namespaces, bridge, veths and addresses. The safety routes
    /// must already be installed.
    pub fn build(&self, host_link_alias: &str) -> Result<(), CommandError> {
        tracing::info!(cluster = %self.name, fabric = %self.addressing.fabric(), nodes = self.nodes.len(), "creating namespaces");
        let fabric = self.fabric.name();
        iproute::netns_add(fabric)?;
        disable_ipv6(&self.fabric)?;
        iproute::link_up(Some(fabric), "lo")?;
        iproute::add_bridge(fabric, FABRIC_BRIDGE)?;
        iproute::link_up(Some(fabric), FABRIC_BRIDGE)?;

        for (netns, port, addr) in self.members() {
            let ns = netns.name();
            iproute::netns_add(ns)?;
            disable_ipv6(netns)?;
            iproute::link_up(Some(ns), "lo")?;
            iproute::add_veth(Some(ns), UPLINK, &port, fabric)?;
            iproute::addr_add(Some(ns), UPLINK, self.with_prefix(addr))?;
            iproute::link_up(Some(ns), UPLINK)?;
            iproute::set_master(fabric, &port, FABRIC_BRIDGE)?;
            iproute::link_up(Some(fabric), &port)?;
        }

        iproute::add_veth(None, &self.host_link, HOST_PORT, fabric)?;
        iproute::set_alias(None, &self.host_link, host_link_alias)?;
        // Before the link comes up, so it never gets an IPv6 address.
        let host_ipv6 = format!("net.ipv6.conf.{}.disable_ipv6=1", self.host_link);
        if ipv6_present() {
            exec::run_ok(&mut exec::command(
                "sysctl",
                ["-q", "-w", host_ipv6.as_str()],
            ))?;
        }
        iproute::addr_add(
            None,
            &self.host_link,
            self.with_prefix(self.addressing.host_address()),
        )?;
        iproute::link_up(None, &self.host_link)?;
        iproute::set_master(fabric, HOST_PORT, FABRIC_BRIDGE)?;
        iproute::link_up(Some(fabric), HOST_PORT)?;
        self.wait_for_carrier()
    }

    /// Waits until every veth of the cluster has carrier (the kernel
    /// raises it shortly after both ends are up), so traffic can flow the
    /// moment the cluster is handed out.
    fn wait_for_carrier(&self) -> Result<(), CommandError> {
        let deadline = Instant::now() + CARRIER_TIMEOUT;
        let mut places: Vec<(Option<&str>, String)> = self
            .members()
            .into_iter()
            .map(|(ns, _, _)| (Some(ns.name()), UPLINK.to_owned()))
            .collect();
        places.push((None, self.host_link.clone()));
        for (netns, dev) in places {
            loop {
                let links = iproute::links(netns)?;
                if links.iter().any(|l| l.ifname == dev && l.has_carrier()) {
                    break;
                }
                if Instant::now() >= deadline {
                    tracing::warn!(netns = netns.unwrap_or("host"), %dev, "no carrier yet");
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }

    /// What differs from a healthy cluster of this shape (empty: healthy).
    /// Reads state only.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for ns in self.all_netns() {
            if !ns.exists() {
                problems.push(format!("namespace {ns} is missing"));
            }
        }
        if !problems.is_empty() {
            return problems;
        }
        let fabric = self.fabric.name();
        match iproute::links(Some(fabric)) {
            Ok(links) => {
                let mut ports: Vec<String> = self
                    .members()
                    .into_iter()
                    .map(|(_, port, _)| port)
                    .collect();
                ports.push(HOST_PORT.to_owned());
                match links.iter().find(|l| l.ifname == FABRIC_BRIDGE) {
                    Some(bridge) if bridge.is_up() => {}
                    _ => problems.push(format!(
                        "bridge {FABRIC_BRIDGE} in {fabric} missing or down"
                    )),
                }
                for port in ports {
                    let ok = links.iter().any(|l| {
                        l.ifname == port && l.is_up() && l.master.as_deref() == Some(FABRIC_BRIDGE)
                    });
                    if !ok {
                        problems.push(format!(
                            "fabric port {port} missing, down or not on the bridge"
                        ));
                    }
                }
            }
            Err(err) => problems.push(format!("cannot list links of {fabric}: {err}")),
        }
        for (netns, _, addr) in self.members() {
            check_uplink(
                Some(netns.name()),
                UPLINK,
                self.with_prefix(addr),
                &mut problems,
            );
        }
        check_uplink(
            None,
            &self.host_link,
            self.with_prefix(self.addressing.host_address()),
            &mut problems,
        );
        match safety::installed(&self.addressing) {
            Ok(true) => {}
            Ok(false) => problems.push(format!(
                "host safety routes (metric {}) missing",
                self.addressing.safety_metric()
            )),
            Err(err) => problems.push(format!("cannot read host routes: {err}")),
        }
        problems
    }

    /// Removes everything of this cluster that exists, best effort: kills
    /// what still runs in its namespaces, deletes the host link and the
    /// namespaces, then the safety routes (last, so they outlive all
    /// traffic), then unmounts and removes the run directory. Returns what
    /// could not be removed.
    pub fn destroy(&self) -> Vec<String> {
        tracing::info!(cluster = %self.name, "removing namespaces, links and routes");
        let mut problems = Vec::new();
        let mut note = |what: String| {
            tracing::warn!("{what}");
            problems.push(what);
        };
        for ns in self.all_netns() {
            if ns.exists() {
                match ns.pids() {
                    Ok(pids) => {
                        if let Err(err) = process::kill_all(&pids) {
                            note(format!("processes in {ns}: {err}"));
                        }
                    }
                    Err(err) => note(format!("listing processes in {ns}: {err}")),
                }
            }
        }
        // Deleted explicitly: deleting the fabric namespace would destroy it
        // too, but asynchronously.
        if iproute::link_exists(None, &self.host_link)
            && let Err(err) = iproute::link_del(None, &self.host_link)
        {
            note(err.to_string());
        }
        for ns in self.all_netns() {
            if ns.exists()
                && let Err(err) = iproute::netns_del(ns.name())
            {
                note(err.to_string());
            }
        }
        if let Err(err) = safety::remove_metric(self.addressing.safety_metric()) {
            note(err.to_string());
        }
        if let Err(err) = host::remove_run_dir(&self.run_dir) {
            note(err.to_string());
        }
        problems
    }
}

/// The cluster is IPv4 (like the Kubernetes defaults it uses): IPv6 is
/// disabled in its namespaces, for every interface created there, so the
/// fabric carries no IPv6 chatter (duplicate address detection, router
/// solicitations, MLD) that would blur packet counts in datapath tests.
fn disable_ipv6(netns: &Netns) -> Result<(), CommandError> {
    if !ipv6_present() {
        return Ok(());
    }
    let mut cmd = netns.command("sysctl");
    cmd.args([
        "-q",
        "-w",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    exec::run_ok(&mut cmd).map(drop)
}

fn ipv6_present() -> bool {
    Path::new("/proc/sys/net/ipv6").exists()
}

fn check_uplink(netns: Option<&str>, dev: &str, want: Ipv4Net, problems: &mut Vec<String>) {
    let place = netns.unwrap_or("the host");
    match iproute::links(netns) {
        Ok(links) => match links.iter().find(|l| l.ifname == dev) {
            Some(link) if link.is_up() => {}
            Some(_) => problems.push(format!("{dev} in {place} is down")),
            None => {
                problems.push(format!("{dev} in {place} is missing"));
                return;
            }
        },
        Err(err) => {
            problems.push(format!("cannot list links of {place}: {err}"));
            return;
        }
    }
    if !iproute::addresses(netns, dev).contains(&want) {
        problems.push(format!("{dev} in {place} lacks address {want}"));
    }
    if let Some(ns) = netns {
        let lo_up = iproute::links(Some(ns))
            .map(|links| links.iter().any(|l| l.ifname == "lo" && l.is_up()))
            .unwrap_or(false);
        if !lo_up {
            problems.push(format!("loopback in {ns} is down"));
        }
    }
}

/// `baton-<pid>-<slot>`.
pub(crate) fn ephemeral_name(pid: u32, slot: Slot) -> String {
    format!("baton-{pid}-{slot}")
}

/// Parses the owner PID and slot out of a test cluster's names:
/// `baton-<pid>-<slot>[-role]` (namespaces, run directories) or
/// `bt<pid>-<slot>` (host links). The persistent cluster's names never match.
pub(crate) fn parse_ephemeral(name: &str) -> Option<(u32, Slot)> {
    let rest = name
        .strip_prefix("baton-")
        .or_else(|| name.strip_prefix("bt"))?;
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?.parse().ok()?;
    let slot = parts.next()?.parse().ok()?;
    Some((pid, slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_names_carry_pid_and_slot() {
        let t = Topology::ephemeral(4242, 7, 2, Path::new("/run/baton-e2e"));
        assert_eq!(t.name, "baton-4242-7");
        assert_eq!(t.control.name(), "baton-4242-7-control");
        assert_eq!(t.nodes[1].name(), "baton-4242-7-node-2");
        assert_eq!(t.fabric.name(), "baton-4242-7-fabric");
        assert_eq!(t.host_link, "bt4242-7");
        assert_eq!(t.run_dir, Path::new("/run/baton-e2e/baton-4242-7"));
        for name in [t.name.as_str(), t.client.name(), t.host_link.as_str()] {
            assert_eq!(parse_ephemeral(name), Some((4242, 7)), "{name}");
        }
        // Linux interface names are at most 15 bytes, even for the largest PID.
        let widest = Topology::ephemeral(4_194_304, 255, 1, Path::new("/r"));
        assert!(widest.host_link.len() <= 15);
    }

    #[test]
    fn persistent_names_are_fixed_and_never_parse_as_test_names() {
        let t = Topology::persistent(3, PathBuf::from("target/baton/run"));
        let names: Vec<&str> = t.all_netns().iter().map(|n| n.name()).collect();
        assert_eq!(
            names,
            [
                "baton-control",
                "baton-client",
                "baton-node-1",
                "baton-node-2",
                "baton-node-3",
                "baton-fabric"
            ]
        );
        for name in names.iter().copied().chain([t.host_link.as_str()]) {
            assert_eq!(parse_ephemeral(name), None, "{name}");
        }
        assert_eq!(t.addressing.slot(), PERSISTENT_SLOT);
    }

    #[test]
    fn members_get_their_fabric_addresses() {
        let t = Topology::ephemeral(1, 9, 2, Path::new("/r"));
        let members: Vec<(String, String)> = t
            .members()
            .into_iter()
            .map(|(_, port, addr)| (port, addr.to_string()))
            .collect();
        assert_eq!(
            members,
            [
                ("control".to_owned(), "172.28.9.2".to_owned()),
                ("client".to_owned(), "172.28.9.3".to_owned()),
                ("node-1".to_owned(), "172.28.9.11".to_owned()),
                ("node-2".to_owned(), "172.28.9.12".to_owned()),
            ]
        );
    }
}
