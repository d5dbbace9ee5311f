//! Native routes to the other nodes' podCIDRs.
//!
//! Pod traffic to another node leaves through the pod program's
//! `bpf_fib_lookup` + `bpf_redirect_neigh`, and NodePort traffic forwarded to
//! a remote backend through the uplink program's: both look up the node's
//! main routing table, which must send each other node's podCIDR to that
//! node's InternalIP (direct routing on a shared L2 segment, as Cilium's
//! `auto-direct-node-routes` and flannel's host-gw do — no overlay, no
//! bridge). This module keeps exactly those routes, from the Node objects:
//! one per other node with a podCIDR and an InternalIP, tagged with
//! [`ROUTE_PROTOCOL`] so routes of anyone else are never touched, and stale
//! ones (a node deleted or readdressed) removed.
//!
//! Routes are read and written over route netlink (`sys::rtnetlink`), the
//! requests `ip route show/replace/del … proto 156` make.
//!
//! The same watch keeps the other nodes' InternalIPs in the dataplane
//! (`baton_node_ip`): masquerading leaves pod traffic to them alone.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{FutureExt, StreamExt};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, reflector, watcher},
};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
};
use tracing::{info, warn};

use crate::dataplane::SharedDataplane;
use crate::sys::rtnetlink::{Rtnl, RtnlError, ipv4_route};

/// The routing protocol number baton's pod routes carry (`proto 156` in
/// `ip route`); anything else in the table is left alone.
pub const ROUTE_PROTOCOL: u8 = 156;
/// Routes are checked against the table this often even without a Node
/// change, so one removed by hand comes back.
const RESYNC: Duration = Duration::from_secs(30);
/// A failed write is retried after this long.
const RETRY: Duration = Duration::from_secs(1);
/// Changes arriving within this window are applied together.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// A route could not be read or written.
pub type RouteError = RtnlError;

/// Each other node's podCIDR → the address to reach it through.
pub type PodRoutes = BTreeMap<Ipv4Net, Ipv4Addr>;

/// The routes `own` (this node's name) needs for `nodes`: every other
/// node's IPv4 podCIDRs via its InternalIP.
#[must_use]
pub fn desired<'a>(nodes: impl IntoIterator<Item = &'a Node>, own: &str) -> PodRoutes {
    let mut routes = PodRoutes::new();
    for node in nodes {
        if node.metadata.name.as_deref() == Some(own) {
            continue;
        }
        let Some(via) = internal_ip(node) else {
            continue;
        };
        let Some(spec) = &node.spec else { continue };
        let cidrs = spec.pod_cidrs.iter().flatten().chain(spec.pod_cidr.iter());
        for cidr in cidrs.filter_map(|c| c.parse::<Ipv4Net>().ok()) {
            routes.insert(cidr.trunc(), via);
        }
    }
    routes
}

/// Every other node's InternalIP.
#[must_use]
pub fn other_node_addresses<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    own: &str,
) -> Vec<Ipv4Addr> {
    let mut addrs: Vec<Ipv4Addr> = nodes
        .into_iter()
        .filter(|node| node.metadata.name.as_deref() != Some(own))
        .filter_map(internal_ip)
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

/// The routes of ours in the main table of this network namespace.
pub fn installed() -> Result<PodRoutes, RouteError> {
    let mut request = RouteMessage::default();
    request.header.address_family = netlink_packet_route::AddressFamily::Inet;
    let answer = Rtnl::open()?.dump("list routes", RouteNetlinkMessage::GetRoute(request))?;
    Ok(answer
        .into_iter()
        .filter_map(|message| match message {
            RouteNetlinkMessage::NewRoute(route) => Some(route),
            _ => None,
        })
        .filter(|route| {
            route.header.table == RouteHeader::RT_TABLE_MAIN
                && u8::from(route.header.protocol) == ROUTE_PROTOCOL
        })
        .filter_map(|route| {
            let (mut destination, mut gateway) = (Ipv4Addr::UNSPECIFIED, None);
            for attribute in &route.attributes {
                match attribute {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => destination = *ip,
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
                    _ => {}
                }
            }
            let cidr = Ipv4Net::new(destination, route.header.destination_prefix_length).ok()?;
            Some((cidr, gateway?))
        })
        .collect())
}

/// Makes the routes of ours equal to `want`; returns how many routes were
/// added or changed and removed.
pub fn reconcile(want: &PodRoutes) -> Result<(usize, usize), RouteError> {
    let have = installed()?;
    let mut rtnl = Rtnl::open()?;
    let protocol = RouteProtocol::from(ROUTE_PROTOCOL);
    let mut written = 0;
    for (cidr, via) in want {
        if have.get(cidr) != Some(via) {
            rtnl.request(
                "write a pod route",
                RouteNetlinkMessage::NewRoute(ipv4_route(*cidr, Some(*via), None, protocol)),
                NLM_F_CREATE | NLM_F_REPLACE,
            )?;
            written += 1;
        }
    }
    let mut removed = 0;
    for cidr in have.keys().filter(|c| !want.contains_key(c)) {
        // As `ip route del <cidr> proto 156`: any scope and type.
        let mut route = ipv4_route(*cidr, None, None, protocol);
        route.header.scope = RouteScope::NoWhere;
        route.header.kind = netlink_packet_route::route::RouteType::Unspec;
        rtnl.request(
            "remove a pod route",
            RouteNetlinkMessage::DelRoute(route),
            0,
        )?;
        removed += 1;
    }
    Ok((written, removed))
}

/// Keeps, from the Node objects and until the process ends, the pod routes
/// of node `own` (when `keep_routes`) and the other nodes' addresses in
/// `dataplane`.
pub async fn run(client: Client, own: String, dataplane: SharedDataplane, keep_routes: bool) {
    let mut written_addrs: Option<Vec<Ipv4Addr>> = None;
    let (store, writer) = reflector::store::<Node>();
    let stream = reflector(
        writer,
        watcher(Api::<Node>::all(client), watcher::Config::default()).default_backoff(),
    );
    let mut stream = std::pin::pin!(stream);
    let mut next_resync = Instant::now() + RESYNC;
    loop {
        // Wait for a Node change (then let a burst settle) or the resync;
        // the stream must be polled for the store to fill.
        match tokio::time::timeout_at(next_resync.into(), stream.next()).await {
            Ok(None) => return,
            Ok(Some(Err(error))) => {
                warn!(%error, "watching Nodes; retrying");
                continue;
            }
            Ok(Some(Ok(_))) => {
                tokio::time::sleep(DEBOUNCE).await;
                while let Some(Some(_)) = stream.next().now_or_never() {}
            }
            Err(_) => next_resync = Instant::now() + RESYNC,
        }
        // Nothing is removed before the first complete list.
        if store.wait_until_ready().now_or_never().is_none() {
            continue;
        }
        let nodes: Vec<Arc<Node>> = store.state();
        let addrs = other_node_addresses(nodes.iter().map(AsRef::as_ref), &own);
        if written_addrs.as_ref() != Some(&addrs) {
            let result = dataplane
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .node()
                .set_node_addresses(&addrs);
            match result {
                Ok(()) => {
                    info!(nodes = addrs.len(), "other nodes' addresses");
                    written_addrs = Some(addrs);
                }
                Err(error) => {
                    warn!(%error, "other nodes' addresses; retrying");
                    next_resync = Instant::now() + RETRY;
                }
            }
        }
        if !keep_routes {
            continue;
        }
        let want = desired(nodes.iter().map(AsRef::as_ref), &own);
        match tokio::task::spawn_blocking(move || reconcile(&want).map(|n| (n, want.len()))).await {
            Ok(Ok(((written, removed), routes))) if written + removed > 0 => {
                info!(routes, written, removed, "pod routes to other nodes");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                warn!(%error, "pod routes; retrying");
                next_resync = Instant::now() + RETRY;
            }
            Err(error) => warn!(%error, "pod routes task"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": cidr.map(|c| serde_json::json!({"podCIDR": c, "podCIDRs": [c]})),
            "status": {"addresses": ip.map(|a| vec![
                serde_json::json!({"type": "Hostname", "address": name}),
                serde_json::json!({"type": "InternalIP", "address": a}),
            ])},
        }))
        .unwrap()
    }

    #[test]
    fn every_other_node_with_a_cidr_and_an_address_gets_a_route() {
        let nodes = [
            node("n1", Some("10.244.1.0/24"), Some("172.28.5.11")),
            node("n2", Some("10.244.2.0/24"), Some("172.28.5.12")),
            node("n3", None, Some("172.28.5.13")),
            node("n4", Some("10.244.4.0/24"), None),
            node("n5", Some("fd00::/64"), Some("172.28.5.15")),
        ];
        let routes = desired(&nodes, "n1");
        assert_eq!(
            routes,
            PodRoutes::from([(
                "10.244.2.0/24".parse().unwrap(),
                "172.28.5.12".parse().unwrap()
            )])
        );
        // From n2's side, n1 is the one remote node.
        let routes = desired(&nodes, "n2");
        assert_eq!(routes.len(), 1);
        assert_eq!(
            routes.get(&"10.244.1.0/24".parse().unwrap()),
            Some(&"172.28.5.11".parse().unwrap())
        );
    }

    #[test]
    fn the_other_nodes_addresses_are_their_internal_ips() {
        let nodes = [
            node("a", Some("10.244.1.0/24"), Some("172.28.0.11")),
            node("b", None, Some("172.28.0.12")),
            node("c", Some("10.244.3.0/24"), None),
            node("d", Some("10.244.4.0/24"), Some("172.28.0.12")),
        ];
        assert_eq!(
            other_node_addresses(&nodes, "a"),
            ["172.28.0.12".parse::<Ipv4Addr>().unwrap()],
            "no podCIDR needed; this node's own and address-less nodes left out"
        );
    }

    #[test]
    fn a_cidr_with_host_bits_is_routed_as_its_network() {
        let nodes = [node("n2", Some("10.244.2.7/24"), Some("172.28.5.12"))];
        let routes = desired(&nodes, "n1");
        assert!(routes.contains_key(&"10.244.2.0/24".parse().unwrap()));
    }

    /// `ip` in the calling thread's namespace.
    fn ip(args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn reconcile_writes_replaces_and_removes_only_routes_of_ours() {
        crate::sys::netns::testing::in_fresh(|| {
            // A link to route through, and a route of someone else's.
            ip(&[
                "link", "add", "uplink", "type", "veth", "peer", "name", "peer",
            ]);
            ip(&["addr", "add", "172.28.5.11/24", "dev", "uplink"]);
            ip(&["link", "set", "uplink", "up"]);
            ip(&["route", "add", "10.9.0.0/16", "via", "172.28.5.1"]);
            let cidr = |c: &str| c.parse::<Ipv4Net>().unwrap();
            let addr = |a: &str| a.parse::<Ipv4Addr>().unwrap();

            let want = PodRoutes::from([
                (cidr("10.244.2.0/24"), addr("172.28.5.12")),
                (cidr("10.244.3.0/24"), addr("172.28.5.13")),
            ]);
            assert_eq!(reconcile(&want).unwrap(), (2, 0));
            assert_eq!(installed().unwrap(), want);
            let table = ip(&["-4", "route", "show"]);
            assert!(
                table.contains("10.244.2.0/24 via 172.28.5.12 dev uplink proto 156"),
                "{table}"
            );
            assert_eq!(reconcile(&want).unwrap(), (0, 0), "nothing to change");

            // Node 3 readdressed, node 2 gone.
            let want = PodRoutes::from([(cidr("10.244.3.0/24"), addr("172.28.5.23"))]);
            assert_eq!(reconcile(&want).unwrap(), (1, 1));
            assert_eq!(installed().unwrap(), want);
            let table = ip(&["-4", "route", "show"]);
            assert!(!table.contains("10.244.2.0/24"), "{table}");
            assert!(table.contains("10.244.3.0/24 via 172.28.5.23"), "{table}");
            assert!(table.contains("10.9.0.0/16 via 172.28.5.1"), "{table}");

            assert_eq!(reconcile(&PodRoutes::new()).unwrap(), (0, 1));
            let table = ip(&["-4", "route", "show"]);
            assert!(table.contains("10.9.0.0/16 via 172.28.5.1"), "{table}");
            assert!(installed().unwrap().is_empty(), "{table}");
        });
    }
}
