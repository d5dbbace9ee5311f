//! The desired state of one service port, as the proxy hands it to the
//! dataplane, and how it maps onto frontends and backend views — pure
//! functions, no maps.
//!
//! A Kubernetes Service port becomes one [`ServiceSpec`]: its frontends
//! (ClusterIP, NodePort, ExternalIPs, LoadBalancer ingress IPs, all with the
//! port's protocol) and the endpoints of its EndpointSlices as backends.
//!
//! # Views
//!
//! Which backends a frontend may use depends on where the traffic comes
//! from, as in kube-proxy:
//!
//! - ClusterIP traffic uses the **internal** policy: every endpoint, or only
//!   this node's with `internalTrafficPolicy: Local`.
//! - NodePort/ExternalIP/LoadBalancer traffic from outside uses the
//!   **external** policy: every endpoint, or only this node's with
//!   `externalTrafficPolicy: Local` (the client address is then kept).
//! - The same external frontends reached from inside the cluster use every
//!   endpoint (kube-proxy's short-circuit of in-cluster traffic to external
//!   destinations), through a second, internal-scope entry.
//!
//! Within a view, ready endpoints are used; only when none is ready are
//! terminating-but-serving ones used (Kubernetes' graceful-termination
//! fallback, KEP-1669). An endpoint neither ready nor serving must not be
//! passed in at all.

use std::{collections::BTreeSet, fmt, net::Ipv4Addr, time::Duration};

use baton_abi::{
    IPPROTO_TCP, IPPROTO_UDP,
    lb::{Algorithm, FrontendKind, SCOPE_DEFAULT, SCOPE_INTERNAL, ServiceKey},
};

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// IP protocol number.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => IPPROTO_TCP,
            Self::Udp => IPPROTO_UDP,
        }
    }

    /// The protocol with this IP protocol number.
    #[must_use]
    pub const fn from_number(number: u8) -> Option<Self> {
        match number {
            IPPROTO_TCP => Some(Self::Tcp),
            IPPROTO_UDP => Some(Self::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        })
    }
}

/// An address and port a service answers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    /// What kind of frontend it is.
    pub kind: FrontendKind,
    /// The address; `None` only for a NodePort, meaning every local node
    /// address (see [`crate::dataplane::NodeState::set_local_addresses`]).
    pub addr: Option<Ipv4Addr>,
    /// The port.
    pub port: u16,
}

impl Frontend {
    /// `spec.clusterIP:port`.
    #[must_use]
    pub const fn cluster_ip(addr: Ipv4Addr, port: u16) -> Self {
        Self {
            kind: FrontendKind::ClusterIp,
            addr: Some(addr),
            port,
        }
    }

    /// `nodePort` on every local node address.
    #[must_use]
    pub const fn node_port(port: u16) -> Self {
        Self {
            kind: FrontendKind::NodePort,
            addr: None,
            port,
        }
    }

    /// An entry of `spec.externalIPs` with the service port.
    #[must_use]
    pub const fn external_ip(addr: Ipv4Addr, port: u16) -> Self {
        Self {
            kind: FrontendKind::ExternalIp,
            addr: Some(addr),
            port,
        }
    }

    /// A `status.loadBalancer.ingress[].ip` with the service port.
    #[must_use]
    pub const fn load_balancer(addr: Ipv4Addr, port: u16) -> Self {
        Self {
            kind: FrontendKind::LoadBalancer,
            addr: Some(addr),
            port,
        }
    }

    /// The services-map key of this frontend in `scope`.
    #[must_use]
    pub fn key(&self, protocol: Protocol, scope: u8) -> ServiceKey {
        ServiceKey {
            addr: self.addr.unwrap_or(Ipv4Addr::UNSPECIFIED).octets(),
            port: self.port,
            proto: protocol.number(),
            scope,
        }
    }
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(addr) => write!(f, "{} {addr}:{}", self.kind.name(), self.port),
            None => write!(f, "{} *:{}", self.kind.name(), self.port),
        }
    }
}

/// Readiness of an endpoint, from its EndpointSlice conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendState {
    /// `ready`: gets new connections.
    Ready,
    /// `terminating` and `serving`: gets new connections only when its view
    /// has no ready backend; existing connections continue.
    Terminating,
}

/// One endpoint of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendSpec {
    /// Endpoint address.
    pub addr: Ipv4Addr,
    /// Target port.
    pub port: u16,
    /// Readiness.
    pub state: BackendState,
    /// Runs on this node (`nodeName` is this node): used by Local traffic
    /// policies, and reached without SNAT from outside.
    pub node_local: bool,
    /// Relative share of new connections, 1 for an ordinary endpoint; 0
    /// keeps existing connections but sends no new ones.
    pub weight: u16,
}

impl BackendSpec {
    /// A ready endpoint with weight 1.
    #[must_use]
    pub const fn ready(addr: Ipv4Addr, port: u16, node_local: bool) -> Self {
        Self {
            addr,
            port,
            state: BackendState::Ready,
            node_local,
            weight: 1,
        }
    }

    /// A terminating-but-serving endpoint with weight 1.
    #[must_use]
    pub const fn terminating(addr: Ipv4Addr, port: u16, node_local: bool) -> Self {
        Self {
            addr,
            port,
            state: BackendState::Terminating,
            node_local,
            weight: 1,
        }
    }
}

/// `externalTrafficPolicy` / `internalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrafficPolicy {
    /// Any endpoint in the cluster.
    #[default]
    Cluster,
    /// Only endpoints on this node; none means the frontend refuses.
    Local,
}

/// Longest ClientIP affinity Kubernetes accepts (`timeoutSeconds` ≤ 86400).
pub const MAX_AFFINITY_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The desired state of one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Identity of the service port, e.g. `default/web:http`. Updates and
    /// deletes name it; it is not written to the maps.
    pub name: String,
    /// Protocol of every frontend and backend.
    pub protocol: Protocol,
    /// Addresses and ports it answers on (at least one).
    pub frontends: Vec<Frontend>,
    /// Endpoints.
    pub backends: Vec<BackendSpec>,
    /// Backend selection for new connections.
    pub algorithm: Algorithm,
    /// ClientIP session affinity with this timeout, or none.
    pub session_affinity: Option<Duration>,
    /// `externalTrafficPolicy`.
    pub external_policy: TrafficPolicy,
    /// `internalTrafficPolicy`.
    pub internal_policy: TrafficPolicy,
}

impl ServiceSpec {
    /// A service named `name` with these frontends, no backends, random
    /// selection, no affinity and Cluster policies.
    #[must_use]
    pub fn new(name: impl Into<String>, protocol: Protocol, frontends: Vec<Frontend>) -> Self {
        Self {
            name: name.into(),
            protocol,
            frontends,
            backends: Vec::new(),
            algorithm: Algorithm::Random,
            session_affinity: None,
            external_policy: TrafficPolicy::Cluster,
            internal_policy: TrafficPolicy::Cluster,
        }
    }

    /// Replaces the backends.
    #[must_use]
    pub fn with_backends(mut self, backends: Vec<BackendSpec>) -> Self {
        self.backends = backends;
        self
    }

    /// Sets the selection algorithm.
    #[must_use]
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets ClientIP session affinity.
    #[must_use]
    pub fn with_affinity(mut self, timeout: Duration) -> Self {
        self.session_affinity = Some(timeout);
        self
    }

    /// Sets the traffic policies.
    #[must_use]
    pub fn with_policies(mut self, external: TrafficPolicy, internal: TrafficPolicy) -> Self {
        self.external_policy = external;
        self.internal_policy = internal;
        self
    }

    /// Checks what the API server cannot have checked for us.
    pub fn validate(&self) -> Result<(), String> {
        if self.frontends.is_empty() {
            return Err("no frontend".into());
        }
        let mut keys = BTreeSet::new();
        for frontend in &self.frontends {
            if frontend.port == 0 {
                return Err(format!("{frontend}: port 0"));
            }
            match (frontend.kind, frontend.addr) {
                (FrontendKind::NodePort, _) => {}
                (_, None) => return Err(format!("{frontend}: needs an address")),
                (_, Some(addr)) if addr.is_unspecified() => {
                    return Err(format!("{frontend}: address 0.0.0.0"));
                }
                _ => {}
            }
            if !keys.insert(frontend.key(self.protocol, SCOPE_DEFAULT)) {
                return Err(format!("{frontend}: listed twice"));
            }
        }
        if let Some(timeout) = self.session_affinity
            && (timeout.is_zero() || timeout > MAX_AFFINITY_TIMEOUT)
        {
            return Err(format!(
                "session affinity timeout {timeout:?} outside 1s..=86400s"
            ));
        }
        let mut seen = BTreeSet::new();
        for backend in &self.backends {
            if backend.port == 0 {
                return Err(format!("backend {}: port 0", backend.addr));
            }
            if !seen.insert((backend.addr, backend.port)) {
                return Err(format!(
                    "backend {}:{} listed twice",
                    backend.addr, backend.port
                ));
            }
        }
        for view in [View::All, View::Local] {
            let slots: u32 = self
                .view_backends(view)
                .0
                .iter()
                .map(|backend| u32::from(backend.weight))
                .sum();
            if slots > u32::from(u16::MAX) / 2 {
                return Err(format!(
                    "{slots} backend slots (weights summed) in one view"
                ));
            }
        }
        Ok(())
    }

    /// Backends of `view` in slot order (sorted, so the order is stable
    /// whatever order the proxy lists them in), and whether they are the
    /// terminating fallback.
    #[must_use]
    pub fn view_backends(&self, view: View) -> (Vec<BackendSpec>, bool) {
        let in_view = |backend: &&BackendSpec| {
            backend.weight > 0 && (view == View::All || backend.node_local)
        };
        let mut ready: Vec<BackendSpec> = self
            .backends
            .iter()
            .filter(in_view)
            .filter(|backend| backend.state == BackendState::Ready)
            .copied()
            .collect();
        let fallback = ready.is_empty();
        if fallback {
            ready = self
                .backends
                .iter()
                .filter(in_view)
                .filter(|backend| backend.state == BackendState::Terminating)
                .copied()
                .collect();
        }
        ready.sort_by_key(|backend| (backend.addr, backend.port));
        let fallback = fallback && !ready.is_empty();
        (ready, fallback)
    }

    /// The services-map entries this spec needs: for each, the key, the
    /// frontend kind, the view it uses, and whether it is the external
    /// entry of a two-scope frontend.
    #[must_use]
    pub fn frontend_entries(&self) -> Vec<FrontendEntry> {
        let mut entries = Vec::new();
        for frontend in &self.frontends {
            let default_key = frontend.key(self.protocol, SCOPE_DEFAULT);
            if frontend.kind == FrontendKind::ClusterIp {
                entries.push(FrontendEntry {
                    key: default_key,
                    kind: frontend.kind,
                    view: View::of(self.internal_policy),
                    two_scopes: false,
                });
                continue;
            }
            let external = View::of(self.external_policy);
            let two_scopes = external != View::All;
            entries.push(FrontendEntry {
                key: default_key,
                kind: frontend.kind,
                view: external,
                two_scopes,
            });
            if two_scopes {
                entries.push(FrontendEntry {
                    key: frontend.key(self.protocol, SCOPE_INTERNAL),
                    kind: frontend.kind,
                    view: View::All,
                    two_scopes: false,
                });
            }
        }
        entries
    }
}

/// Which backends a frontend entry may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    /// Every endpoint of the service.
    All,
    /// Endpoints on this node.
    Local,
}

impl View {
    /// The view of a traffic policy.
    #[must_use]
    pub const fn of(policy: TrafficPolicy) -> Self {
        match policy {
            TrafficPolicy::Cluster => Self::All,
            TrafficPolicy::Local => Self::Local,
        }
    }
}

/// One services-map entry a spec needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontendEntry {
    pub key: ServiceKey,
    pub kind: FrontendKind,
    pub view: View,
    /// The default-scope entry of a frontend that also has an internal
    /// entry.
    pub two_scopes: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, 1, last)
    }

    #[test]
    fn terminating_backends_are_used_only_without_ready_ones() {
        let spec = ServiceSpec::new("web", Protocol::Tcp, vec![Frontend::cluster_ip(VIP, 80)])
            .with_backends(vec![
                BackendSpec::ready(ip(2), 8080, false),
                BackendSpec::terminating(ip(1), 8080, true),
            ]);
        let (all, fallback) = spec.view_backends(View::All);
        assert_eq!(all, vec![BackendSpec::ready(ip(2), 8080, false)]);
        assert!(!fallback);
        // The only local endpoint is terminating: the Local view falls back
        // to it.
        let (local, fallback) = spec.view_backends(View::Local);
        assert_eq!(local, vec![BackendSpec::terminating(ip(1), 8080, true)]);
        assert!(fallback);
    }

    #[test]
    fn views_are_sorted_and_skip_weight_zero() {
        let mut drained = BackendSpec::ready(ip(1), 80, false);
        drained.weight = 0;
        let spec = ServiceSpec::new("web", Protocol::Tcp, vec![Frontend::cluster_ip(VIP, 80)])
            .with_backends(vec![
                BackendSpec::ready(ip(9), 80, false),
                drained,
                BackendSpec::ready(ip(3), 80, false),
            ]);
        let (all, _) = spec.view_backends(View::All);
        let addrs: Vec<_> = all.iter().map(|backend| backend.addr).collect();
        assert_eq!(addrs, [ip(3), ip(9)]);
    }

    #[test]
    fn external_local_policy_adds_an_internal_entry_using_every_endpoint() {
        let spec = ServiceSpec::new(
            "web",
            Protocol::Tcp,
            vec![Frontend::cluster_ip(VIP, 80), Frontend::node_port(30080)],
        )
        .with_policies(TrafficPolicy::Local, TrafficPolicy::Cluster);
        let entries = spec.frontend_entries();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].view, View::All);
        assert_eq!(entries[0].kind, FrontendKind::ClusterIp);
        assert_eq!(
            (entries[1].view, entries[1].two_scopes),
            (View::Local, true)
        );
        assert_eq!(entries[1].key.addr, [0; 4]);
        assert_eq!(entries[2].key.scope, SCOPE_INTERNAL);
        assert_eq!(entries[2].view, View::All);
    }

    #[test]
    fn internal_local_policy_applies_to_the_cluster_ip_only() {
        let spec = ServiceSpec::new(
            "web",
            Protocol::Udp,
            vec![
                Frontend::cluster_ip(VIP, 53),
                Frontend::external_ip(Ipv4Addr::new(192, 0, 2, 1), 53),
            ],
        )
        .with_policies(TrafficPolicy::Cluster, TrafficPolicy::Local);
        let entries = spec.frontend_entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].view, View::Local);
        assert_eq!(entries[1].view, View::All);
        assert!(!entries[1].two_scopes);
        assert_eq!(entries[1].key.proto, IPPROTO_UDP);
    }

    #[test]
    fn invalid_specs_are_refused_with_a_reason() {
        let base = ServiceSpec::new("web", Protocol::Tcp, vec![Frontend::cluster_ip(VIP, 80)]);
        let cases = [
            ServiceSpec {
                frontends: vec![],
                ..base.clone()
            },
            ServiceSpec {
                frontends: vec![Frontend::cluster_ip(VIP, 0)],
                ..base.clone()
            },
            ServiceSpec {
                frontends: vec![Frontend::cluster_ip(VIP, 80), Frontend::cluster_ip(VIP, 80)],
                ..base.clone()
            },
            base.clone().with_affinity(Duration::from_secs(86_401)),
            base.clone().with_backends(vec![
                BackendSpec::ready(ip(1), 80, false),
                BackendSpec::ready(ip(1), 80, true),
            ]),
            ServiceSpec {
                frontends: vec![Frontend {
                    kind: FrontendKind::ExternalIp,
                    addr: None,
                    port: 80,
                }],
                ..base.clone()
            },
        ];
        for case in cases {
            assert!(case.validate().is_err(), "{case:?}");
        }
        base.validate().unwrap();
    }
}
