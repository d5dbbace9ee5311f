//! What the maps hold, read back for people (`baton-node dataplane dump`,
//! like `cilium bpf lb list`, `cilium bpf ct list global` and `cilium bpf
//! metrics list`). Everything is read from the kernel's maps, not from the
//! agent's own bookkeeping, so a dump shows what the datapath uses.

use std::{collections::HashMap, fmt, net::Ipv4Addr, path::Path};

use baton_abi::{
    conntrack::CtState,
    lb::{
        Algorithm, BACKEND_CONNS_MAP_NAME, BACKEND_F_LOCAL, BACKEND_STATE_TERMINATING,
        BACKENDS_MAP_NAME, Backend, BackendConns, FrontendKind, SERVICE_F_AFFINITY,
        SERVICE_F_LOCAL_ONLY, SERVICE_F_TERMINATING_FALLBACK, SERVICE_F_TWO_SCOPES,
        SERVICES_MAP_NAME, SLOTS_MAP_NAME, ServiceKey, ServiceValue, SlotKey,
    },
};

use super::{
    conntrack::{self, CtFlow},
    metrics::{self, MetricsSnapshot, ServiceStatsSnapshot},
};
use crate::dataplane::{
    lb::services::describe_key,
    maps::{self, CtMaps, LbMaps, MapAccessError, NodeMaps, Source, is_not_found},
    node_state::{NodeState, PodEndpoint},
};

/// One frontend with the backends its view uses, in slot order.
#[derive(Debug, Clone)]
pub struct ServiceDump {
    pub key: ServiceKey,
    pub value: ServiceValue,
    /// The proxy's name for the service, when known to this process.
    pub name: Option<String>,
    pub backend_ids: Vec<u32>,
}

/// One backend with its active connections.
#[derive(Debug, Clone)]
pub struct BackendDump {
    pub id: u32,
    pub backend: Backend,
    pub conns: BackendConns,
}

/// Everything `baton-node dataplane dump` shows.
#[derive(Debug, Clone)]
pub struct Dump {
    pub services: Vec<ServiceDump>,
    pub backends: Vec<BackendDump>,
    pub conntrack: Vec<CtFlow>,
    pub metrics: MetricsSnapshot,
    pub service_stats: ServiceStatsSnapshot,
    pub endpoints: Vec<PodEndpoint>,
    pub local_addrs: Vec<Ipv4Addr>,
    /// The other nodes' addresses (never masqueraded to).
    pub node_addrs: Vec<Ipv4Addr>,
    /// `CLOCK_MONOTONIC` when the dump was taken, for conntrack lifetimes.
    pub now_ns: u64,
}

/// Reads the maps a node pinned under `dir` (its `--pin-dir`), without
/// loading any program: what `baton-node dataplane dump` shows for a running
/// node. Service names live only in the running agent, so services show by
/// id.
pub fn from_pins(dir: &Path) -> Result<Dump, MapAccessError> {
    let lb = LbMaps::open(Source::Pins(dir))?;
    let node = NodeState::new(NodeMaps::open(Source::Pins(dir))?);
    let ct = CtMaps::open(Source::Pins(dir))?;
    let metrics = metrics::read_map(&maps::pinned_metrics(dir)?).unwrap_or_default();
    collect(&lb, &node, &ct, metrics, &HashMap::new())
}

pub(crate) fn collect(
    lb: &LbMaps,
    node: &NodeState,
    ct: &CtMaps,
    metrics: MetricsSnapshot,
    labels: &HashMap<u32, String>,
) -> Result<Dump, MapAccessError> {
    let mut services = Vec::new();
    for (key, value) in maps::entries(&lb.services, SERVICES_MAP_NAME)? {
        let mut backend_ids = Vec::new();
        for slot in 1..=value.count {
            let slot_key = SlotKey {
                service_id: value.service_id,
                slot: value.slot_offset + slot,
                bank: value.bank,
                _pad: 0,
            };
            match lb.slots.get(&slot_key, 0) {
                Ok(slot) => backend_ids.push(slot.backend_id),
                Err(error) if is_not_found(&error) => backend_ids.push(0),
                Err(error) => return Err(MapAccessError::of(SLOTS_MAP_NAME, "lookup", error)),
            }
        }
        services.push(ServiceDump {
            key,
            value,
            name: labels.get(&value.service_id).cloned(),
            backend_ids,
        });
    }
    services.sort_by_key(|service| (service.value.service_id, service.key));

    let mut backends = Vec::new();
    for (id, backend) in maps::entries(&lb.backends, BACKENDS_MAP_NAME)? {
        let conns = lb
            .conns
            .get(&id, 0)
            .map_err(|error| MapAccessError::of(BACKEND_CONNS_MAP_NAME, "lookup", error))?;
        backends.push(BackendDump { id, backend, conns });
    }
    backends.sort_by_key(|backend| backend.id);

    Ok(Dump {
        services,
        backends,
        conntrack: conntrack::dump(ct)?,
        metrics,
        service_stats: metrics::read_services(&lb.stats)?,
        endpoints: node.endpoints().unwrap_or_default(),
        local_addrs: node.local_addresses().unwrap_or_default(),
        node_addrs: node.node_addresses().unwrap_or_default(),
        now_ns: conntrack::monotonic_now_ns(),
    })
}

fn flag_names(flags: u16) -> String {
    let mut names = Vec::new();
    for (bit, name) in [
        (SERVICE_F_LOCAL_ONLY, "local-only"),
        (SERVICE_F_AFFINITY, "affinity"),
        (SERVICE_F_TWO_SCOPES, "two-scopes"),
        (SERVICE_F_TERMINATING_FALLBACK, "terminating-fallback"),
    ] {
        if flags & bit != 0 {
            names.push(name);
        }
    }
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

fn backend_text(backend: &Backend) -> String {
    let mut text = format!("{}:{}", Ipv4Addr::from(backend.addr), backend.port);
    if backend.state == BACKEND_STATE_TERMINATING {
        text.push_str(" (terminating)");
    }
    if backend.flags & BACKEND_F_LOCAL != 0 {
        text.push_str(" (local)");
    }
    text
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "SERVICES")?;
        writeln!(
            f,
            "{:<5} {:<28} {:<13} {:<18} {:<26} {:<8} BACKENDS",
            "ID", "FRONTEND", "KIND", "ALGORITHM", "FLAGS", "AFFINITY"
        )?;
        for service in &self.services {
            let value = &service.value;
            let kind = FrontendKind::from_u8(value.kind).map_or("?", FrontendKind::name);
            let algorithm = Algorithm::from_u8(value.algorithm).map_or("?", Algorithm::name);
            let affinity = if value.flags & SERVICE_F_AFFINITY != 0 {
                format!("{}s", value.affinity_timeout_s)
            } else {
                "-".into()
            };
            let backends: Vec<String> = service
                .backend_ids
                .iter()
                .map(|id| {
                    self.backends
                        .iter()
                        .find(|backend| backend.id == *id)
                        .map_or_else(
                            || format!("#{id}?"),
                            |backend| backend_text(&backend.backend),
                        )
                })
                .collect();
            let name = service
                .name
                .as_deref()
                .map(|name| format!(" [{name}]"))
                .unwrap_or_default();
            writeln!(
                f,
                "{:<5} {:<28} {:<13} {:<18} {:<26} {:<8} {}{name}",
                value.service_id,
                describe_key(&service.key),
                kind,
                algorithm,
                flag_names(value.flags),
                affinity,
                if backends.is_empty() {
                    "(none: refused)".into()
                } else {
                    backends.join(", ")
                },
            )?;
        }

        writeln!(f, "\nBACKENDS")?;
        writeln!(
            f,
            "{:<6} {:<32} {:>8} {:>8}",
            "ID", "ADDRESS", "SOCKETS", "FLOWS"
        )?;
        for backend in &self.backends {
            writeln!(
                f,
                "{:<6} {:<32} {:>8} {:>8}",
                backend.id,
                backend_text(&backend.backend),
                backend.conns.sockets,
                backend.conns.flows
            )?;
        }

        writeln!(f, "\nCONNTRACK")?;
        writeln!(
            f,
            "{:<8} {:<4} {:<44} {:<44} {:<12} EXPIRES",
            "DIR", "PROTO", "TUPLE", "REWRITTEN TO", "STATE"
        )?;
        for flow in &self.conntrack {
            let state = flow.state().map_or("?", CtState::name);
            let remaining = flow.remaining(self.now_ns);
            writeln!(
                f,
                "{:<8} {:<4} {:<44} {:<44} {:<12} {}",
                if flow.is_original() {
                    "original"
                } else {
                    "reply"
                },
                flow.key.proto,
                flow.tuple(),
                flow.rewritten(),
                state,
                if remaining.is_zero() {
                    "expired".to_owned()
                } else {
                    format!("{}s", remaining.as_secs())
                }
            )?;
        }

        writeln!(f, "\nSERVICE COUNTERS")?;
        writeln!(
            f,
            "{:<5} {:>12} {:>10} {:>12} {:>14}",
            "ID", "NEW FLOWS", "REFUSED", "PACKETS", "BYTES"
        )?;
        for (id, stats) in self.service_stats.iter() {
            writeln!(
                f,
                "{:<5} {:>12} {:>10} {:>12} {:>14}",
                id, stats.new_flows, stats.refused, stats.packets, stats.bytes
            )?;
        }

        writeln!(f, "\nPOD ENDPOINTS")?;
        for endpoint in &self.endpoints {
            writeln!(
                f,
                "{:<16} ifindex {:<6} mac {}",
                endpoint.addr,
                endpoint.host_ifindex,
                mac(endpoint.pod_mac)
            )?;
        }
        for (title, addrs) in [
            ("LOCAL ADDRESSES", &self.local_addrs),
            ("OTHER NODES", &self.node_addrs),
        ] {
            let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            writeln!(f, "\n{title} {}", addrs.join(" "))?;
        }

        writeln!(f, "\nMETRICS")?;
        write!(f, "{}", self.metrics)
    }
}

fn mac(bytes: [u8; 6]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
