//! The proxy's command-line flags (shared by `baton-node run` and
//! `baton-node proxy`): the proxy's [`Config`] they make, and the dataplane
//! they load from its pin directory.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use clap::Args;
use ipnet::Ipv4Net;
use tracing::warn;

use super::{Config, NodeSetup, translate::parse_algorithm};
use crate::dataplane::{
    Algorithm, Capacities, Dataplane, DataplaneError, LoadOptions, SharedDataplane,
};

/// Flags of the service proxy and the dataplane it programs.
#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// bpffs directory where the maps and links are pinned, so a restart
    /// keeps every connection (e.g. /sys/fs/bpf/baton). Without it
    /// `baton-node run` runs without the eBPF dataplane and proxy.
    #[arg(long)]
    pub pin_dir: Option<PathBuf>,
    /// cgroup v2 directory whose processes get socket-level load balancing
    /// (ClusterIP connections go straight to a backend). `run` defaults to
    /// the pods' cgroup (`<cgroup2 mount><--cgroup-root>`); point it at the
    /// cgroup v2 root to balance host processes too.
    #[arg(long)]
    pub socket_lb_cgroup: Option<PathBuf>,
    /// The node's uplink, where NodePort/ExternalIP/LoadBalancer traffic
    /// arrives ("" to attach nothing).
    #[arg(long, default_value = "eth0")]
    pub uplink: String,
    /// CIDRs of the node addresses NodePorts answer on (comma-separated);
    /// default: every non-loopback IPv4 address of the node.
    #[arg(long, value_delimiter = ',')]
    pub nodeport_addresses: Vec<Ipv4Net>,
    /// Backend selection of services without the `lb.baton.dev/algorithm`
    /// annotation: random, maglev, round-robin or least-connections.
    #[arg(long, default_value = "random", value_parser = parse_algorithm)]
    pub default_lb_algorithm: Algorithm,
    /// Enable net.ipv4.ip_forward in the node's network namespace (the
    /// programs' FIB lookups need it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ip_forward: bool,
    /// Let the programs route pod traffic (redirect to local pods, FIB
    /// lookups to other nodes) and keep the routes to the other nodes'
    /// podCIDRs (from the Node objects).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub route_pods: bool,
    /// The cluster's pod range (kube-proxy's flag): pod traffic inside it
    /// keeps its source address.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: Ipv4Net,
    /// Masquerade pods' traffic to addresses outside `--cluster-cidr`, this
    /// node's and the other nodes' addresses to the node address, so that
    /// it finds its way back from networks that do not route pod addresses.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub masquerade_egress: bool,
    /// After a change, sync once no further change came for this long.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub sync_debounce: Duration,
    /// …or once the first change of a batch is this old.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub sync_max_delay: Duration,
    /// Recompute every service this often (only differences are written).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub sync_period: Duration,
    /// Remove expired conntrack entries this often.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub conntrack_gc_interval: Duration,
    /// Prometheus metrics address ("" for none).
    #[arg(long, default_value = "127.0.0.1:10249")]
    pub metrics_bind_address: String,
    /// Address of /healthz and /livez ("" for none).
    #[arg(long, default_value = "0.0.0.0:10256")]
    pub healthz_bind_address: String,
    /// Where the proxy keeps the names `baton-node dataplane dump` shows
    /// (default: `<root-dir>/proxy` for `run`, /var/lib/baton/node/proxy
    /// otherwise).
    #[arg(long)]
    pub proxy_state_dir: Option<PathBuf>,
    /// Capacity of the services (frontends) map.
    #[arg(long)]
    pub map_frontends: Option<u32>,
    /// Capacity of the backends map (and of the connection counts).
    #[arg(long)]
    pub map_backends: Option<u32>,
    /// Capacity of the backend-slots and memberships maps.
    #[arg(long)]
    pub map_slots: Option<u32>,
    /// Capacity of the conntrack map (two entries per flow).
    #[arg(long)]
    pub map_conntrack: Option<u32>,
    /// Capacity of the session-affinity map.
    #[arg(long)]
    pub map_affinity: Option<u32>,
}

/// Parses `500ms`, `5s`, `2m`, `1h` (or a bare number of seconds). Written
/// by hand: four units do not justify a dependency.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: not a duration (e.g. 500ms, 5s, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}

/// A flag's value cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--{flag} {value:?}: {reason}")]
pub struct FlagError {
    pub flag: &'static str,
    pub value: String,
    pub reason: String,
}

fn bind_address(flag: &'static str, text: &str) -> Result<Option<SocketAddr>, FlagError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim()
        .parse()
        .map(Some)
        .map_err(|error: std::net::AddrParseError| FlagError {
            flag,
            value: text.to_owned(),
            reason: format!("not an address:port ({error})"),
        })
}

impl ProxyArgs {
    /// The map sizes: the defaults with the flags' overrides.
    pub fn capacities(&self) -> Capacities {
        let mut capacities = Capacities::default();
        if let Some(size) = self.map_frontends {
            capacities.frontends = size;
        }
        if let Some(size) = self.map_backends {
            capacities.backends = size;
        }
        if let Some(size) = self.map_slots {
            capacities.slots = size;
        }
        if let Some(size) = self.map_conntrack {
            capacities.conntrack = size;
        }
        if let Some(size) = self.map_affinity {
            capacities.affinity = size;
        }
        capacities
    }

    /// Loads the dataplane from the pin directory (maps and links of an
    /// earlier run are reused).
    pub fn load_dataplane(&self, pin_dir: &Path) -> Result<SharedDataplane, DataplaneError> {
        let options = LoadOptions::new()
            .pin_dir(pin_dir)
            .capacities(self.capacities());
        let dataplane = Dataplane::load(&options)?;
        Ok(Arc::new(Mutex::new(dataplane)))
    }

    /// The proxy's configuration.
    pub fn config(
        &self,
        node_name: &str,
        node_ip: Ipv4Addr,
        default_cgroup: Option<PathBuf>,
        default_state_dir: PathBuf,
    ) -> Result<Config, FlagError> {
        let node = NodeSetup {
            node_ip,
            uplink: (!self.uplink.trim().is_empty()).then(|| self.uplink.trim().to_owned()),
            socket_lb_cgroup: self.socket_lb_cgroup.clone().or(default_cgroup),
            ip_forward: self.ip_forward,
            route_pods: self.route_pods,
            masquerade_outside: self.masquerade_egress.then_some(self.cluster_cidr),
            nodeport_addresses: self.nodeport_addresses.clone(),
        };
        let mut config = Config::new(node_name, node);
        config.default_algorithm = self.default_lb_algorithm;
        config.debounce = self.sync_debounce;
        config.max_delay = self.sync_max_delay;
        config.sync_period = self.sync_period;
        config.conntrack_gc_interval = self.conntrack_gc_interval;
        config.metrics_addr = bind_address("metrics-bind-address", &self.metrics_bind_address)?;
        config.healthz_addr = bind_address("healthz-bind-address", &self.healthz_bind_address)?;
        config.state_dir = Some(self.proxy_state_dir.clone().unwrap_or(default_state_dir));
        if config.node.socket_lb_cgroup.is_none() {
            warn!(
                "no --socket-lb-cgroup: connections from this node's processes are not balanced by socket hooks"
            );
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_kube_proxy_flags() {
        assert_eq!(parse_duration("5ms").unwrap(), Duration::from_millis(5));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn empty_bind_addresses_turn_servers_off() {
        assert_eq!(bind_address("x", "").unwrap(), None);
        assert_eq!(
            bind_address("x", "127.0.0.1:10249").unwrap(),
            Some("127.0.0.1:10249".parse().unwrap())
        );
        let error = bind_address("metrics-bind-address", "localhost").unwrap_err();
        assert!(
            error.to_string().starts_with("--metrics-bind-address"),
            "{error}"
        );
    }
}
