//! Objects kube-apiserver keeps in place itself: the system namespaces, the
//! RBAC bootstrap policy ([`super::bootstrap_policy`]), the `kubernetes`
//! Service in `default` with its Endpoints and EndpointSlice pointing at
//! the API server's advertise address, and (as `kubeadm init` writes it)
//! `kube-public/cluster-info` for joining nodes. Run at
//! start and re-checked periodically (so they come back after etcd was
//! down or someone deleted them).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use baton_apimachinery::bootstrap_token::{CLUSTER_INFO, KUBECONFIG_KEY, PUBLIC_NAMESPACE};
use serde_json::{Value, json};
use tracing::{debug, warn};

use super::{Registry, WriteContext};
use crate::kinds;

/// Namespaces that always exist.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

const MANAGER: &str = "kube-apiserver";

/// The kubeconfig of `cluster-info`, as kubeadm writes it: one unnamed
/// cluster, no users.
pub fn cluster_info_kubeconfig(ep: &Endpoint) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(&ep.ca_pem);
    let server = std::net::SocketAddr::new(ep.address, ep.port);
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: https://{server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"
    )
}

fn internal() -> WriteContext {
    let mut ctx = WriteContext::update(MANAGER, None, false);
    ctx.internal = true;
    ctx
}

/// Where the API server is reached by pods and joining nodes.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: IpAddr,
    pub port: u16,
    /// The cluster CA's certificate (PEM), published in `cluster-info`.
    pub ca_pem: String,
}

impl Registry {
    async fn ensure_namespaces(&self) -> Result<(), crate::api::status::ApiError> {
        let nsr = kinds::find("", "v1", "namespaces").expect("namespaces");
        for ns in SYSTEM_NAMESPACES {
            match self.get(nsr, "", ns).await {
                Ok(_) => {}
                Err(e) if e.code == 404 => {
                    let obj =
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                    match self.create(nsr, "", obj, &internal()).await {
                        Ok(_) => {}
                        Err(e) if e.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates or updates `<namespace>/<name>` of `plural` to `desired`,
    /// leaving it alone when the fields we own already match.
    async fn ensure(
        &self,
        (group, plural): (&str, &str),
        (namespace, name): (&str, &str),
        desired: Value,
        same: impl Fn(&Value) -> bool,
    ) -> Result<(), crate::api::status::ApiError> {
        let r = kinds::find(group, "v1", plural).expect("served");
        match self.get(r, namespace, name).await {
            Ok(cur) if same(&cur) => Ok(()),
            Ok(_) => {
                let ctx = internal();
                self.update(r, namespace, name, &ctx, |cur| {
                    let mut next = desired.clone();
                    if let Some(c) = cur {
                        next["metadata"] = c["metadata"].clone();
                        if let Some(l) = desired.pointer("/metadata/labels") {
                            next["metadata"]["labels"] = l.clone();
                        }
                        if let Some(spec) = c.get("spec").cloned()
                            && plural == "services"
                        {
                            // Keep allocated fields; reset ports.
                            let mut spec = spec;
                            spec["ports"] = desired["spec"]["ports"].clone();
                            next["spec"] = spec;
                        }
                    }
                    Ok(next)
                })
                .await
                .map(|_| ())
            }
            Err(e) if e.code == 404 => {
                match self.create(r, namespace, desired, &internal()).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.code == 409 => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn ensure_kubernetes_service(
        &self,
        ep: &Endpoint,
    ) -> Result<(), crate::api::status::ApiError> {
        let ip = self.network.first_ip().to_string();
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": ip,
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": ep.port}],
            },
        });
        let port = ep.port;
        self.ensure(("", "services"), ("default", "kubernetes"), svc, |cur| {
            cur.pointer("/spec/ports/0/targetPort")
                .and_then(Value::as_u64)
                == Some(port as u64)
        })
        .await?;
        let addr = ep.address.to_string();
        let endpoints = json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": addr}], "ports": [{"name": "https", "port": ep.port, "protocol": "TCP"}]}],
        });
        let want = endpoints["subsets"].clone();
        self.ensure(
            ("", "endpoints"),
            ("default", "kubernetes"),
            endpoints,
            |cur| cur.get("subsets") == Some(&want),
        )
        .await?;
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": if ep.address.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": [{"addresses": [addr], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": ep.port, "protocol": "TCP"}],
        });
        let want_eps = slice["endpoints"].clone();
        let want_ports = slice["ports"].clone();
        self.ensure(
            ("discovery.k8s.io", "endpointslices"),
            ("default", "kubernetes"),
            slice,
            |cur| cur.get("endpoints") == Some(&want_eps) && cur.get("ports") == Some(&want_ports),
        )
        .await
    }

    /// `kube-public/cluster-info`: a kubeconfig naming the API server and
    /// the cluster CA, which anyone may read and the bootstrap signer signs
    /// for each signing token (what `kubeadm init` writes for joining
    /// nodes). Signatures of an unchanged kubeconfig are kept.
    async fn ensure_cluster_info(&self, ep: &Endpoint) -> Result<(), crate::api::status::ApiError> {
        let kubeconfig = cluster_info_kubeconfig(ep);
        let config_map = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CLUSTER_INFO, "namespace": PUBLIC_NAMESPACE},
            "data": {KUBECONFIG_KEY: kubeconfig},
        });
        self.ensure(
            ("", "configmaps"),
            (PUBLIC_NAMESPACE, CLUSTER_INFO),
            config_map,
            |cur| {
                cur.pointer(&format!("/data/{KUBECONFIG_KEY}"))
                    == Some(&Value::from(kubeconfig.as_str()))
            },
        )
        .await
    }

    /// One reconciliation pass; the RBAC policy only until it was written
    /// once (`policy_written`), as kube-apiserver reconciles it at start.
    pub async fn bootstrap(
        &self,
        ep: &Endpoint,
        policy_written: &mut bool,
    ) -> Result<(), crate::api::status::ApiError> {
        self.ensure_namespaces().await?;
        if !*policy_written {
            self.ensure_policy(&internal()).await?;
            *policy_written = true;
        }
        self.ensure_kubernetes_service(ep).await?;
        self.ensure_cluster_info(ep).await
    }

    /// Reconciles forever (spawn it): quickly until the first success, then
    /// every ten seconds like kube-apiserver's endpoint reconciler.
    pub async fn run_bootstrap(
        self: std::sync::Arc<Self>,
        ep: Endpoint,
        ready: tokio::sync::watch::Sender<bool>,
    ) {
        let mut policy_written = false;
        loop {
            match self.bootstrap(&ep, &mut policy_written).await {
                Ok(()) => {
                    let _ = ready.send(true);
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Err(e) => {
                    if *ready.borrow() {
                        warn!(error = %e, "reconciling the kubernetes service failed");
                    } else {
                        debug!(error = %e, "bootstrap waiting for etcd");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
