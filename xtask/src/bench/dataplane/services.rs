//! The benchmark's Kubernetes objects, written through the API like any
//! client would: the measured Services (selectors over the echo
//! Deployments, so the EndpointSlice controller writes their slices), a
//! selector-less Service whose EndpointSlice the benchmark rewrites to time
//! propagation, and the filler Services (selector-less, each with an
//! EndpointSlice of its own, as for backends outside the cluster) that
//! bring the cluster to 1,000 or 10,000 services. Also reads everything
//! back as kube-proxy sees it ([`ServicePort`]), for the iptables baseline.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

/// Namespace of everything the benchmark creates.
pub const NAMESPACE: &str = "default";
/// Label on the filler Services and their slices.
const FILLER_LABEL: &str = "bench.baton.dev/filler";
/// EndpointSlices written by the benchmark say so, so the EndpointSlice
/// controller leaves them alone (as for any custom manager).
const MANAGED_BY: &str = "dataplane-bench.baton.dev";
/// The service port every benchmark Service uses.
pub const SERVICE_PORT: u16 = 80;
/// The echo server's HTTP port (the target port).
pub const ECHO_PORT: u16 = 8080;

/// One service port as kube-proxy sees it: frontends and ready endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    pub port_name: String,
    pub protocol: String,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Ready endpoints (address, target port), sorted.
    pub endpoints: Vec<(Ipv4Addr, u16)>,
}

impl ServicePort {
    /// kube-proxy's `ServicePortName`: `ns/name:port` (`ns/name` unnamed).
    pub fn display_name(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }
}

/// An admin client without retries (a benchmark wants to see failures).
pub async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let mut cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    cfg.default_retry = false;
    Ok(kube::Client::try_from(cfg)?)
}

fn service_json(name: &str, node_port: bool, selector: Option<&str>, filler: bool) -> Service {
    let mut spec = json!({
        "type": if node_port { "NodePort" } else { "ClusterIP" },
        "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": ECHO_PORT, "protocol": "TCP"}],
    });
    if let Some(app) = selector {
        spec["selector"] = json!({ "app": app });
    }
    let mut labels = json!({"bench.baton.dev/dataplane": "true"});
    if filler {
        labels[FILLER_LABEL] = json!("true");
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": spec,
    }))
    .expect("a valid Service")
}

/// The EndpointSlice `name` of Service `service` with `endpoints` (ready,
/// on `node`), and the change time as the EndpointSlice controller
/// records it.
pub fn slice_json(
    name: &str,
    service: &str,
    endpoints: &[Ipv4Addr],
    node: &str,
    filler: bool,
) -> EndpointSlice {
    let mut labels = json!({
        "kubernetes.io/service-name": service,
        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
    });
    if filler {
        labels[FILLER_LABEL] = json!("true");
    }
    let trigger = jiff::Timestamp::now().to_string();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": labels,
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": trigger},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": ECHO_PORT, "protocol": "TCP"}],
        "endpoints": endpoints.iter().map(|ip| json!({
            "addresses": [ip.to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": node,
        })).collect::<Vec<_>>(),
    }))
    .expect("a valid EndpointSlice")
}

/// A created Service's cluster IP and NodePort.
#[derive(Debug, Clone, Copy)]
pub struct Frontend {
    pub cluster_ip: Ipv4Addr,
    pub node_port: Option<u16>,
}

fn frontend_of(svc: &Service) -> Result<Frontend> {
    let spec = svc.spec.as_ref().context("a Service without spec")?;
    let cluster_ip = spec
        .cluster_ip
        .as_deref()
        .context("no cluster IP allocated")?
        .parse()
        .context("cluster IP")?;
    let node_port = spec
        .ports
        .iter()
        .flatten()
        .find_map(|p| p.node_port)
        .map(u16::try_from)
        .transpose()?;
    Ok(Frontend {
        cluster_ip,
        node_port,
    })
}

/// Creates a Service (a NodePort one if `node_port`), selecting pods with
/// `app=<selector>` when given.
pub async fn create_service(
    client: &kube::Client,
    name: &str,
    node_port: bool,
    selector: Option<&str>,
) -> Result<Frontend> {
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let svc = api
        .create(
            &PostParams::default(),
            &service_json(name, node_port, selector, false),
        )
        .await
        .with_context(|| format!("creating Service {name}"))?;
    frontend_of(&svc)
}

/// Creates or replaces EndpointSlice `name` of `service`.
pub async fn put_slice(
    client: &kube::Client,
    name: &str,
    service: &str,
    endpoints: &[Ipv4Addr],
    node: &str,
) -> Result<()> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let mut slice = slice_json(name, service, endpoints, node, false);
    match api.get_opt(name).await? {
        Some(current) => {
            slice.metadata.resource_version = current.metadata.resource_version;
            api.replace(name, &PostParams::default(), &slice)
                .await
                .with_context(|| format!("replacing EndpointSlice {name}"))?;
        }
        None => {
            api.create(&PostParams::default(), &slice)
                .await
                .with_context(|| format!("creating EndpointSlice {name}"))?;
        }
    }
    Ok(())
}

/// The filler Services present, by index.
pub async fn fillers(client: &kube::Client) -> Result<BTreeMap<usize, Frontend>> {
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let list = api
        .list(&ListParams::default().labels(&format!("{FILLER_LABEL}=true")))
        .await?;
    let mut out = BTreeMap::new();
    for svc in &list.items {
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        if let Some(i) = name.strip_prefix("fill-").and_then(|n| n.parse().ok()) {
            out.insert(i, frontend_of(svc)?);
        }
    }
    Ok(out)
}

/// What writing or deleting a batch of fillers took.
#[derive(Debug, Clone)]
pub struct Batch {
    pub started: SystemTime,
    pub started_at: Instant,
    /// When each filler was completely written (or deleted), sorted.
    pub done_at: Vec<Instant>,
    /// Frontends of the fillers created.
    pub created: Vec<(usize, Frontend)>,
}

impl Batch {
    pub fn last(&self) -> Instant {
        self.done_at.last().copied().unwrap_or(self.started_at)
    }
}

/// Creates fillers `indexes`, each an EndpointSlice over `endpoints` (on
/// `node`) and then its Service (so a proxy sees the Service with its
/// endpoints at once), `concurrency` at a time.
pub async fn create_fillers(
    client: &kube::Client,
    indexes: std::ops::Range<usize>,
    endpoints: &[Ipv4Addr],
    node: &str,
    concurrency: usize,
) -> Result<Batch> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let started = SystemTime::now();
    let started_at = Instant::now();
    let results: Vec<(Instant, usize, Frontend)> = futures::stream::iter(indexes)
        .map(|i| {
            let (services, slices) = (services.clone(), slices.clone());
            async move {
                let name = format!("fill-{i:05}");
                let slice = slice_json(&format!("{name}-bench"), &name, endpoints, node, true);
                slices
                    .create(&PostParams::default(), &slice)
                    .await
                    .with_context(|| format!("creating the slice of {name}"))?;
                let svc = services
                    .create(
                        &PostParams::default(),
                        &service_json(&name, false, None, true),
                    )
                    .await
                    .with_context(|| format!("creating Service {name}"))?;
                Ok::<_, anyhow::Error>((Instant::now(), i, frontend_of(&svc)?))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut done_at: Vec<Instant> = results.iter().map(|r| r.0).collect();
    done_at.sort();
    Ok(Batch {
        started,
        started_at,
        done_at,
        created: results.into_iter().map(|(_, i, f)| (i, f)).collect(),
    })
}

/// Deletes fillers `indexes` (Service, then its slice).
pub async fn delete_fillers(
    client: &kube::Client,
    indexes: Vec<usize>,
    concurrency: usize,
) -> Result<Batch> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let started = SystemTime::now();
    let started_at = Instant::now();
    let mut done_at: Vec<Instant> = futures::stream::iter(indexes)
        .map(|i| {
            let (services, slices) = (services.clone(), slices.clone());
            async move {
                let name = format!("fill-{i:05}");
                services
                    .delete(&name, &DeleteParams::default())
                    .await
                    .with_context(|| format!("deleting Service {name}"))?;
                slices
                    .delete(&format!("{name}-bench"), &DeleteParams::default())
                    .await
                    .with_context(|| format!("deleting the slice of {name}"))?;
                Ok::<_, anyhow::Error>(Instant::now())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    done_at.sort();
    Ok(Batch {
        started,
        started_at,
        done_at,
        created: Vec::new(),
    })
}

/// Every service port of the cluster with its ready endpoints, merged
/// from the EndpointSlices as kube-proxy does (port matched by name and
/// protocol, an endpoint's first address, `ready` absent = true).
pub async fn service_ports(client: &kube::Client) -> Result<Vec<ServicePort>> {
    let services: Api<Service> = Api::all(client.clone());
    let slices: Api<EndpointSlice> = Api::all(client.clone());
    let services = services.list(&ListParams::default()).await?.items;
    let slices = slices.list(&ListParams::default()).await?.items;
    let mut by_service: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
    for slice in &slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
        else {
            continue;
        };
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        by_service
            .entry((ns, service.clone()))
            .or_default()
            .push(slice);
    }
    let mut out = Vec::new();
    for svc in &services {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let slices = by_service
            .get(&(ns.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        for port in spec.ports.iter().flatten() {
            let port_name = port.name.clone().unwrap_or_default();
            let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
            let mut endpoints = Vec::new();
            for slice in &slices {
                let Some(target) = slice.ports.iter().flatten().find(|p| {
                    p.name.clone().unwrap_or_default() == port_name
                        && p.protocol.clone().unwrap_or_else(|| "TCP".into()) == protocol
                }) else {
                    continue;
                };
                let Some(target) = target.port.and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                for ep in &slice.endpoints {
                    let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                    let addr = ep.addresses.first().and_then(|a| a.parse().ok());
                    if let (true, Some(addr)) = (ready, addr) {
                        endpoints.push((addr, target));
                    }
                }
            }
            endpoints.sort();
            endpoints.dedup();
            out.push(ServicePort {
                namespace: ns.clone(),
                name: name.clone(),
                port_name,
                protocol,
                cluster_ip,
                port: u16::try_from(port.port).unwrap_or(0),
                node_port: port.node_port.and_then(|p| u16::try_from(p).ok()),
                endpoints,
            });
        }
    }
    out.sort_by_key(|s| s.display_name());
    Ok(out)
}
