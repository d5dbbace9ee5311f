//! Kubernetes Service + EndpointSlices → dataplane [`ServiceSpec`]s: pure
//! functions, no I/O, following kube-proxy's rules (`pkg/proxy/serviceport.go`,
//! `endpointslicecache.go`, `topology.go`):
//!
//! - A Service is skipped when it has no IPv4 cluster IP (`None`, empty,
//!   IPv6 only) or is of type `ExternalName` (`ShouldSkipService`).
//! - Each port of `spec.ports` is one [`ServiceSpec`], named like
//!   kube-proxy's `ServicePortName`: `<namespace>/<name>:<port name>`, or
//!   `<namespace>/<name>` for an unnamed port ([`spec_name`]). Its frontends
//!   are the cluster IP, the NodePort (when non-zero), every IPv4 of
//!   `spec.externalIPs` and every IPv4 `status.loadBalancer.ingress[].ip`
//!   whose `ipMode` is not `Proxy`, all with the port's protocol. SCTP ports
//!   are not supported by the datapath and are skipped with a warning.
//! - Endpoints come from every EndpointSlice labelled with the service's
//!   name, merged: an IPv4 slice port with the same name and protocol as the
//!   service port gives the target port (`nil` name means `""`, `nil`
//!   protocol TCP, the API's defaults); each endpoint's first address is
//!   the backend. `ready` (absent = true) makes a ready backend; otherwise
//!   `serving` (absent = true) and `terminating` make a terminating one,
//!   used only when its view has no ready backend; anything else is left
//!   out. The same address and port in several slices counts once,
//!   preferring the node-local copy (as kube-proxy) and then the ready one.
//!   `nodeName` equal to this node's name marks a backend node-local.
//! - `externalTrafficPolicy: Local` applies to externally reachable services
//!   (NodePort, LoadBalancer, or ClusterIP with externalIPs);
//!   `internalTrafficPolicy: Local` to the cluster IP. Session affinity
//!   `ClientIP` uses `sessionAffinityConfig.clientIP.timeoutSeconds`
//!   (default 10800).
//! - The backend selection algorithm comes from the annotation
//!   [`ALGORITHM_ANNOTATION`] (`random`, `maglev`, `round-robin`,
//!   `least-connections`), else the node's default.
//! - A LoadBalancer service with `externalTrafficPolicy: Local` gets a
//!   health check on `spec.healthCheckNodePort`, reporting the number of
//!   node-local ready endpoints summed over its ports (kube-proxy's
//!   `LocalReadyEndpoints`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::Ipv4Addr,
    time::Duration,
};

use k8s_openapi::api::{
    core::v1::{Service, ServicePort},
    discovery::v1::{Endpoint, EndpointSlice},
};

use crate::dataplane::{
    Algorithm, BackendSpec, BackendState, Frontend, Protocol, ServiceSpec, TrafficPolicy,
};

/// The annotation selecting a service's backend selection algorithm.
pub const ALGORITHM_ANNOTATION: &str = "lb.baton.dev/algorithm";
/// Label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// ClientIP affinity timeout when the Service does not give one (3 hours,
/// Kubernetes' default).
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10_800);

/// A Service's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl ServiceRef {
    #[must_use]
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The service of `service`'s metadata (`default` namespace if unset).
    #[must_use]
    pub fn of_service(service: &Service) -> Self {
        Self::new(
            service.metadata.namespace.as_deref().unwrap_or("default"),
            service.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// The service an EndpointSlice belongs to (its
    /// `kubernetes.io/service-name` label), if it names one.
    #[must_use]
    pub fn of_slice(slice: &EndpointSlice) -> Option<Self> {
        let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
        if name.is_empty() {
            return None;
        }
        Some(Self::new(
            slice.metadata.namespace.as_deref().unwrap_or("default"),
            name.as_str(),
        ))
    }
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The name of the [`ServiceSpec`] of a service port, as kube-proxy prints
/// a `ServicePortName`: `ns/name:port` (`ns/name` for an unnamed port).
#[must_use]
pub fn spec_name(service: &ServiceRef, port_name: &str) -> String {
    if port_name.is_empty() {
        service.to_string()
    } else {
        format!("{service}:{port_name}")
    }
}

/// Splits a spec name made by [`spec_name`] into namespace, name and port
/// name.
#[must_use]
pub fn parse_spec_name(spec: &str) -> Option<(&str, &str, &str)> {
    let (namespace, rest) = spec.split_once('/')?;
    let (name, port) = rest.split_once(':').unwrap_or((rest, ""));
    Some((namespace, name, port))
}

/// What the translation needs to know about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeContext {
    /// This node's name (`nodeName` of local endpoints).
    pub node_name: String,
    /// Algorithm of services without the annotation.
    pub default_algorithm: Algorithm,
}

/// The health check a Local-policy LoadBalancer service needs on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// `spec.healthCheckNodePort`.
    pub port: u16,
    /// Ready endpoints on this node, summed over the service's ports.
    pub local_endpoints: usize,
}

/// One Service translated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translation {
    /// One spec per supported service port, in `spec.ports` order.
    pub specs: Vec<ServiceSpec>,
    /// The health check this node serves for the service, if any.
    pub health_check: Option<HealthCheck>,
    /// Parts of the Service that could not be used, for an Event.
    pub warnings: Vec<String>,
}

/// Parses the [`ALGORITHM_ANNOTATION`] value.
pub fn parse_algorithm(value: &str) -> Result<Algorithm, String> {
    [
        Algorithm::Random,
        Algorithm::Maglev,
        Algorithm::RoundRobin,
        Algorithm::LeastConnections,
    ]
    .into_iter()
    .find(|algorithm| algorithm.name() == value.trim())
    .ok_or_else(|| {
        format!(
            "annotation {ALGORITHM_ANNOTATION}: unknown algorithm {value:?} \
             (random, maglev, round-robin or least-connections)"
        )
    })
}

/// Translates `service` and its EndpointSlices for this node.
#[must_use]
pub fn translate<'a>(
    service: &Service,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: &NodeContext,
) -> Translation {
    let mut translation = Translation::default();
    let Some(spec) = &service.spec else {
        return translation;
    };
    let service_ref = ServiceRef::of_service(service);
    let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    if service_type == "ExternalName" {
        return translation;
    }
    let Some(cluster_ip) = cluster_ipv4(service) else {
        // Headless (`None`), not allocated yet, or IPv6 only.
        return translation;
    };

    let algorithm = match service
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(ALGORITHM_ANNOTATION))
    {
        Some(value) => parse_algorithm(value).unwrap_or_else(|warning| {
            translation.warnings.push(warning);
            node.default_algorithm
        }),
        None => node.default_algorithm,
    };
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let seconds = spec
            .session_affinity_config
            .as_ref()
            .and_then(|config| config.client_ip.as_ref())
            .and_then(|client_ip| client_ip.timeout_seconds)
            .and_then(|seconds| u64::try_from(seconds).ok())
            .filter(|seconds| *seconds > 0)
            .map_or(DEFAULT_AFFINITY_TIMEOUT, Duration::from_secs);
        seconds.min(crate::dataplane::lb::spec::MAX_AFFINITY_TIMEOUT)
    });
    let external_ips = ipv4_list(
        spec.external_ips.iter().flatten().map(String::as_str),
        "spec.externalIPs",
        &mut translation.warnings,
    );
    let lb_ips: Vec<Ipv4Addr> = {
        let ingress = service
            .status
            .as_ref()
            .and_then(|status| status.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        let vips = ingress
            .into_iter()
            .flatten()
            .filter(|ingress| ingress.ip_mode.as_deref() != Some("Proxy"))
            .filter_map(|ingress| ingress.ip.as_deref());
        ipv4_list(
            vips,
            "status.loadBalancer.ingress",
            &mut translation.warnings,
        )
    };
    if spec
        .load_balancer_source_ranges
        .as_ref()
        .is_some_and(|ranges| !ranges.is_empty())
    {
        translation
            .warnings
            .push("spec.loadBalancerSourceRanges is not enforced by the eBPF datapath".into());
    }
    let externally_accessible = service_type == "NodePort"
        || service_type == "LoadBalancer"
        || (service_type == "ClusterIP" && !external_ips.is_empty());
    let external_policy =
        if externally_accessible && spec.external_traffic_policy.as_deref() == Some("Local") {
            TrafficPolicy::Local
        } else {
            TrafficPolicy::Cluster
        };
    let internal_policy = if spec.internal_traffic_policy.as_deref() == Some("Local") {
        TrafficPolicy::Local
    } else {
        TrafficPolicy::Cluster
    };

    let endpoints = EndpointsByPort::collect(slices, node);
    let mut local_ready = 0;
    for port in spec.ports.iter().flatten() {
        let port_name = port.name.as_deref().unwrap_or_default();
        let name = spec_name(&service_ref, port_name);
        let Some(protocol) = protocol_of(port.protocol.as_deref()) else {
            translation.warnings.push(format!(
                "port {}/{}: protocol not supported by the eBPF datapath",
                port.port,
                port.protocol.as_deref().unwrap_or_default()
            ));
            continue;
        };
        let Some(service_port) = port_number(port.port) else {
            translation
                .warnings
                .push(format!("port {}: not a valid port", port.port));
            continue;
        };
        let frontends = frontends(
            port,
            service_port,
            cluster_ip,
            &external_ips,
            &lb_ips,
            &mut translation.warnings,
        );
        let backends = endpoints.backends(port_name, protocol);
        local_ready += backends
            .iter()
            .filter(|backend| backend.node_local && backend.state == BackendState::Ready)
            .count();
        let mut spec = ServiceSpec::new(name, protocol, frontends)
            .with_backends(backends)
            .with_algorithm(algorithm)
            .with_policies(external_policy, internal_policy);
        if let Some(timeout) = affinity {
            spec = spec.with_affinity(timeout);
        }
        translation.specs.push(spec);
    }

    if service_type == "LoadBalancer" && external_policy == TrafficPolicy::Local {
        match spec.health_check_node_port.and_then(port_number) {
            Some(port) => {
                translation.health_check = Some(HealthCheck {
                    port,
                    local_endpoints: local_ready,
                });
            }
            None => translation
                .warnings
                .push("externalTrafficPolicy Local without a healthCheckNodePort".into()),
        }
    }
    translation
}

/// The service's IPv4 cluster IP: the first IPv4 of `spec.clusterIPs`, else
/// `spec.clusterIP`.
fn cluster_ipv4(service: &Service) -> Option<Ipv4Addr> {
    let spec = service.spec.as_ref()?;
    spec.cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .find_map(|ip| ip.trim().parse::<Ipv4Addr>().ok())
        .filter(|ip| !ip.is_unspecified())
}

/// The IPv4 addresses of `ips`, deduplicated in order; IPv6 addresses are
/// skipped silently (this datapath is IPv4), anything else with a warning.
fn ipv4_list<'a>(
    ips: impl Iterator<Item = &'a str>,
    field: &str,
    warnings: &mut Vec<String>,
) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for ip in ips {
        match ip.trim().parse::<Ipv4Addr>() {
            Ok(ip) if ip.is_unspecified() => {
                warnings.push(format!("{field}: address 0.0.0.0 ignored"));
            }
            Ok(ip) => {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
            Err(_) if ip.trim().parse::<std::net::Ipv6Addr>().is_ok() => {}
            Err(_) => warnings.push(format!("{field}: {ip:?} is not an IP address")),
        }
    }
    out
}

fn protocol_of(protocol: Option<&str>) -> Option<Protocol> {
    match protocol.unwrap_or("TCP") {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        _ => None,
    }
}

fn port_number(port: i32) -> Option<u16> {
    u16::try_from(port).ok().filter(|port| *port != 0)
}

/// The frontends of one service port. An address already used by an
/// earlier frontend of the same port (an ExternalIP that is also the
/// cluster IP or an LB ingress IP) is left out.
fn frontends(
    port: &ServicePort,
    service_port: u16,
    cluster_ip: Ipv4Addr,
    external_ips: &[Ipv4Addr],
    lb_ips: &[Ipv4Addr],
    warnings: &mut Vec<String>,
) -> Vec<Frontend> {
    let mut frontends = vec![Frontend::cluster_ip(cluster_ip, service_port)];
    let mut addrs = BTreeSet::from([cluster_ip]);
    if let Some(node_port) = port.node_port.filter(|port| *port != 0) {
        match port_number(node_port) {
            Some(node_port) => frontends.push(Frontend::node_port(node_port)),
            None => warnings.push(format!("nodePort {node_port}: not a valid port")),
        }
    }
    for ip in external_ips {
        if addrs.insert(*ip) {
            frontends.push(Frontend::external_ip(*ip, service_port));
        }
    }
    for ip in lb_ips {
        if addrs.insert(*ip) {
            frontends.push(Frontend::load_balancer(*ip, service_port));
        }
    }
    frontends
}

/// Endpoints of every slice of one service, by slice port (name,
/// protocol), deduplicated by address and target port.
#[derive(Debug, Default)]
struct EndpointsByPort {
    ports: BTreeMap<(String, Protocol), BTreeMap<(Ipv4Addr, u16), BackendSpec>>,
}

impl EndpointsByPort {
    fn collect<'a>(
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
        node: &NodeContext,
    ) -> Self {
        // Sorted by name, so the result does not depend on the order the
        // slices were listed in.
        let mut slices: Vec<&EndpointSlice> = slices
            .into_iter()
            .filter(|slice| slice.address_type == "IPv4")
            .collect();
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut this = Self::default();
        for slice in slices {
            for port in slice.ports.iter().flatten() {
                let Some(target) = port.port.and_then(port_number) else {
                    continue;
                };
                let Some(protocol) = protocol_of(port.protocol.as_deref()) else {
                    continue;
                };
                let name = port.name.clone().unwrap_or_default();
                let backends = this.ports.entry((name, protocol)).or_default();
                for endpoint in &slice.endpoints {
                    let Some(backend) = backend_of(endpoint, target, node) else {
                        continue;
                    };
                    let key = (backend.addr, backend.port);
                    match backends.get(&key) {
                        Some(existing) if !preferred(&backend, existing) => {}
                        _ => {
                            backends.insert(key, backend);
                        }
                    }
                }
            }
        }
        this
    }

    fn backends(&self, port_name: &str, protocol: Protocol) -> Vec<BackendSpec> {
        self.ports
            .get(&(port_name.to_owned(), protocol))
            .map(|backends| backends.values().copied().collect())
            .unwrap_or_default()
    }
}

/// Whether `new` replaces `existing` for the same address and port: a
/// node-local copy wins (kube-proxy), then a ready one.
fn preferred(new: &BackendSpec, existing: &BackendSpec) -> bool {
    let rank = |backend: &BackendSpec| (backend.node_local, backend.state == BackendState::Ready);
    rank(new) > rank(existing)
}

/// The backend of one endpoint, if it may get traffic at all.
fn backend_of(endpoint: &Endpoint, port: u16, node: &NodeContext) -> Option<BackendSpec> {
    let addr: Ipv4Addr = endpoint.addresses.first()?.trim().parse().ok()?;
    let conditions = endpoint.conditions.as_ref();
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(true);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    let node_local = !node.node_name.is_empty()
        && endpoint.node_name.as_deref() == Some(node.node_name.as_str());
    if ready {
        Some(BackendSpec::ready(addr, port, node_local))
    } else if serving && terminating {
        Some(BackendSpec::terminating(addr, port, node_local))
    } else {
        None
    }
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
