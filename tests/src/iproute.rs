//! Links, addresses, routes and namespaces through iproute2's `ip`.
//!
//! The harness shells out to `ip` rather than speaking rtnetlink itself: the
//! harness is not on a hot path (a cluster takes a few dozen calls), every
//! call it makes is a line a developer can replay by hand, `ip -n <ns>` and
//! `ip -j` give namespace switching and machine-readable state for free, and
//! errors come with iproute2's own messages.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;

use crate::exec::{self, CommandError, HOST_COMMAND_TIMEOUT};

/// Routing protocol number stamped on every host route the harness adds
/// (unassigned in iproute2's `rt_protos`), so its routes are recognisable.
pub const ROUTE_PROTOCOL: u8 = 155;

/// Runs `ip [-n <netns>] <args>` and returns stdout.
pub(crate) fn ip(netns: Option<&str>, args: &[&str]) -> Result<String, CommandError> {
    let mut cmd = exec::command("ip", netns.map_or(Vec::new(), |ns| vec!["-n", ns]));
    cmd.args(args);
    exec::run_ok(&mut cmd)
}

/// Runs `ip` and reports only whether it succeeded (for existence checks).
fn ip_succeeds(netns: Option<&str>, args: &[&str]) -> bool {
    let mut cmd = exec::command("ip", netns.map_or(Vec::new(), |ns| vec!["-n", ns]));
    cmd.args(args);
    exec::run(&mut cmd, HOST_COMMAND_TIMEOUT).is_ok_and(|out| out.success())
}

// ---- namespaces ----

pub(crate) fn netns_add(name: &str) -> Result<(), CommandError> {
    ip(None, &["netns", "add", name]).map(drop)
}

pub(crate) fn netns_del(name: &str) -> Result<(), CommandError> {
    ip(None, &["netns", "del", name]).map(drop)
}

/// Names of all named network namespaces (`ip netns list`).
pub fn netns_list() -> Result<Vec<String>, CommandError> {
    let out = ip(None, &["netns", "list"])?;
    // Lines look like `name` or `name (id: 3)`.
    Ok(out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// PIDs of processes whose network namespace is `name` (`ip netns pids`).
pub(crate) fn netns_pids(name: &str) -> Result<Vec<u32>, CommandError> {
    let out = ip(None, &["netns", "pids", name])?;
    Ok(out.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

// ---- links ----

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LinkInfo {
    pub ifname: String,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub master: Option<String>,
    #[serde(default)]
    pub ifalias: Option<String>,
}

impl LinkInfo {
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// The link has carrier (`LOWER_UP`): for a veth, both ends are up.
    pub fn has_carrier(&self) -> bool {
        self.flags.iter().any(|f| f == "LOWER_UP")
    }
}

pub(crate) fn links(netns: Option<&str>) -> Result<Vec<LinkInfo>, CommandError> {
    let out = ip(netns, &["-j", "link", "show"])?;
    Ok(parse_json(&out))
}

pub(crate) fn link_exists(netns: Option<&str>, name: &str) -> bool {
    ip_succeeds(netns, &["link", "show", "dev", name])
}

pub(crate) fn link_del(netns: Option<&str>, name: &str) -> Result<(), CommandError> {
    ip(netns, &["link", "del", "dev", name]).map(drop)
}

pub(crate) fn link_up(netns: Option<&str>, name: &str) -> Result<(), CommandError> {
    ip(netns, &["link", "set", "dev", name, "up"]).map(drop)
}

pub(crate) fn add_bridge(netns: &str, name: &str) -> Result<(), CommandError> {
    // No STP: ports forward at once; the fabric is a single switch.
    ip(
        Some(netns),
        &[
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ],
    )
    .map(drop)
}

/// Creates a veth pair with end `name` in `netns` (`None`: the host) and end
/// `peer` directly in `peer_netns`, so no end ever appears under a
/// conflicting name in the host namespace.
pub(crate) fn add_veth(
    netns: Option<&str>,
    name: &str,
    peer: &str,
    peer_netns: &str,
) -> Result<(), CommandError> {
    ip(
        netns,
        &[
            "link", "add", name, "type", "veth", "peer", "name", peer, "netns", peer_netns,
        ],
    )
    .map(drop)
}

pub(crate) fn set_master(netns: &str, port: &str, bridge: &str) -> Result<(), CommandError> {
    ip(Some(netns), &["link", "set", "dev", port, "master", bridge]).map(drop)
}

pub(crate) fn set_alias(netns: Option<&str>, name: &str, alias: &str) -> Result<(), CommandError> {
    ip(netns, &["link", "set", "dev", name, "alias", alias]).map(drop)
}

// ---- addresses ----

#[derive(Debug, Deserialize)]
struct AddrLink {
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Debug, Deserialize)]
struct AddrInfo {
    local: Ipv4Addr,
    prefixlen: u8,
}

pub(crate) fn addr_add(netns: Option<&str>, dev: &str, addr: Ipv4Net) -> Result<(), CommandError> {
    ip(netns, &["addr", "add", &addr.to_string(), "dev", dev]).map(drop)
}

/// IPv4 addresses on `dev` (empty if the device does not exist).
pub(crate) fn addresses(netns: Option<&str>, dev: &str) -> Vec<Ipv4Net> {
    let Ok(out) = ip(netns, &["-j", "-4", "addr", "show", "dev", dev]) else {
        return Vec::new();
    };
    parse_json::<AddrLink>(&out)
        .into_iter()
        .flat_map(|l| l.addr_info)
        .filter_map(|a| Ipv4Net::new(a.local, a.prefixlen).ok())
        .collect()
}

// ---- routes ----

/// A route as `ip -j route` prints it (only the fields the harness reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RouteInfo {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub dst: String,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dev: Option<String>,
    #[serde(default)]
    pub metric: Option<u32>,
}

/// IPv4 routes of the main table with the harness's protocol number.
pub(crate) fn harness_host_routes() -> Result<Vec<RouteInfo>, CommandError> {
    let proto = ROUTE_PROTOCOL.to_string();
    let out = ip(
        None,
        &[
            "-j", "-4", "route", "show", "table", "main", "proto", &proto,
        ],
    )?;
    Ok(parse_json(&out))
}

/// All IPv4 routes of the host's main table.
pub(crate) fn host_routes() -> Result<Vec<RouteInfo>, CommandError> {
    let out = ip(None, &["-j", "-4", "route", "show", "table", "main"])?;
    Ok(parse_json(&out))
}

pub(crate) fn add_unreachable(dst: Ipv4Net, metric: u32) -> Result<(), CommandError> {
    let (dst, metric, proto) = (
        dst.to_string(),
        metric.to_string(),
        ROUTE_PROTOCOL.to_string(),
    );
    ip(
        None,
        &[
            "route",
            "add",
            "unreachable",
            &dst,
            "metric",
            &metric,
            "proto",
            &proto,
        ],
    )
    .map(drop)
}

pub(crate) fn del_unreachable(dst: &str, metric: u32) -> Result<(), CommandError> {
    let (metric, proto) = (metric.to_string(), ROUTE_PROTOCOL.to_string());
    ip(
        None,
        &[
            "route",
            "del",
            "unreachable",
            dst,
            "metric",
            &metric,
            "proto",
            &proto,
        ],
    )
    .map(drop)
}

/// A route inside a cluster namespace (tests use these, e.g. pod-CIDR routes
/// before baton-node maintains them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Net,
    /// Next hop; `None` for a route straight out of `dev`.
    pub via: Option<Ipv4Addr>,
    /// Output device; `None` lets the kernel pick it from `via`.
    pub dev: Option<String>,
}

impl Route {
    /// `dst via gateway`.
    #[must_use]
    pub fn via(dst: Ipv4Net, gateway: Ipv4Addr) -> Self {
        Self {
            dst,
            via: Some(gateway),
            dev: None,
        }
    }

    /// `dst dev device` (on-link).
    #[must_use]
    pub fn dev(dst: Ipv4Net, device: impl Into<String>) -> Self {
        Self {
            dst,
            via: None,
            dev: Some(device.into()),
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![self.dst.to_string()];
        if let Some(via) = self.via {
            args.extend(["via".to_owned(), via.to_string()]);
        }
        if let Some(dev) = &self.dev {
            args.extend(["dev".to_owned(), dev.clone()]);
        }
        args
    }
}

pub(crate) fn route_add(netns: &str, route: &Route) -> Result<(), CommandError> {
    route_change(netns, "add", route)
}

pub(crate) fn route_replace(netns: &str, route: &Route) -> Result<(), CommandError> {
    route_change(netns, "replace", route)
}

pub(crate) fn route_del(netns: &str, route: &Route) -> Result<(), CommandError> {
    route_change(netns, "del", route)
}

fn route_change(netns: &str, verb: &str, route: &Route) -> Result<(), CommandError> {
    let args = route.args();
    let mut all = vec!["route", verb];
    all.extend(args.iter().map(String::as_str));
    ip(Some(netns), &all).map(drop)
}

/// `ip -4 route show` inside a namespace, as parsed routes.
pub(crate) fn routes_in(netns: &str) -> Result<Vec<RouteInfo>, CommandError> {
    let out = ip(Some(netns), &["-j", "-4", "route", "show"])?;
    Ok(parse_json(&out))
}

/// `ip` prints an empty string instead of `[]` in some versions when there
/// is nothing to show; anything unparsable is treated as empty too, since
/// callers only look for entries they expect.
fn parse_json<T: for<'de> Deserialize<'de>>(text: &str) -> Vec<T> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str(text).unwrap_or_else(|err| {
        tracing::warn!(%err, "unparsable `ip -j` output");
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_arguments() {
        let r = Route::via(
            "10.244.2.0/24".parse().unwrap(),
            Ipv4Addr::new(172, 28, 1, 12),
        );
        assert_eq!(r.args(), ["10.244.2.0/24", "via", "172.28.1.12"]);
        let r = Route::dev("10.0.0.0/8".parse().unwrap(), "eth0");
        assert_eq!(r.args(), ["10.0.0.0/8", "dev", "eth0"]);
    }

    #[test]
    fn parses_route_json() {
        let routes: Vec<RouteInfo> = parse_json(
            r#"[{"type":"unreachable","dst":"10.244.0.0/16","metric":47001,"flags":[]},
                {"dst":"172.28.1.0/24","dev":"bt1-1","protocol":"kernel","flags":[]}]"#,
        );
        assert_eq!(routes[0].kind.as_deref(), Some("unreachable"));
        assert_eq!(routes[0].metric, Some(47001));
        assert_eq!(routes[1].dev.as_deref(), Some("bt1-1"));
        assert!(parse_json::<RouteInfo>("").is_empty());
    }
}
