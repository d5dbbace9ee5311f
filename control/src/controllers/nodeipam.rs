//! Node IPAM (the range allocator): every node gets a `podCIDR`/`podCIDRs`
//! cut from `--cluster-cidr` (`--node-cidr-mask-size`, /24 by default);
//! a range is never handed out while a node holding it exists. What is
//! taken is read back from the nodes themselves, so a restart of the
//! controller reuses nothing.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};

use crate::client::Change;
use crate::client::informer::objects;
use crate::client::recorder::{self, EventType, Recorder};

/// A CIDR that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("invalid CIDR {0:?}")]
    Invalid(String),
    #[error("node mask /{mask} does not fit in cluster CIDR {cluster}")]
    Mask { cluster: String, mask: u8 },
}

/// The cluster range cut into node ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidrSet {
    base: u32,
    prefix: u8,
    node_mask: u8,
}

impl CidrSet {
    pub fn new(cluster: &str, node_mask: u8) -> Result<CidrSet, CidrError> {
        let (base, prefix) = parse(cluster).ok_or_else(|| CidrError::Invalid(cluster.into()))?;
        if node_mask < prefix || node_mask > 32 {
            return Err(CidrError::Mask {
                cluster: cluster.into(),
                mask: node_mask,
            });
        }
        Ok(CidrSet {
            base,
            prefix,
            node_mask,
        })
    }

    pub fn len(&self) -> u32 {
        1u32 << (self.node_mask - self.prefix).min(31)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn cidr(&self, index: u32) -> String {
        let ip = self.base + (index << (32 - self.node_mask as u32));
        format!("{}/{}", Ipv4Addr::from(ip), self.node_mask)
    }

    /// Index of a node range of this set.
    pub fn index_of(&self, cidr: &str) -> Option<u32> {
        let (ip, p) = parse(cidr)?;
        if p != self.node_mask || (ip & mask(self.prefix)) != self.base {
            return None;
        }
        Some((ip - self.base) >> (32 - self.node_mask as u32))
    }

    /// The first free range after `after` (round-robin, as cidrset does).
    pub fn next_free(&self, used: &HashSet<u32>, after: u32) -> Option<u32> {
        (0..self.len())
            .map(|i| (after + i) % self.len())
            .find(|i| !used.contains(i))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

fn parse(s: &str) -> Option<(u32, u8)> {
    let (ip, p) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let p: u8 = p.parse().ok().filter(|p| *p <= 32)?;
    Some((u32::from(ip) & mask(p), p))
}

struct Ctx {
    client: kube::Client,
    nodes: Store<Node>,
    set: CidrSet,
    /// Handed out but not yet seen on the node.
    pending: Mutex<HashMap<String, u32>>,
    next: Mutex<u32>,
    recorder: Recorder,
}

#[derive(Debug, thiserror::Error)]
#[error("allocating a pod CIDR for node {node}: {source}")]
pub struct Error {
    node: String,
    #[source]
    source: kube::Error,
}

/// Runs the allocator.
pub async fn run(
    client: kube::Client,
    nodes: Store<Node>,
    node_rx: UnboundedReceiver<Change<Node>>,
    set: CidrSet,
) {
    let ctx = Arc::new(Ctx {
        recorder: recorder::for_component(client.clone(), "cidrAllocator"),
        client,
        nodes: nodes.clone(),
        set,
        pending: Mutex::default(),
        next: Mutex::new(0),
    });
    Controller::for_stream(objects(node_rx), nodes)
        .with_config(ControllerConfig::default().concurrency(1))
        .run(
            reconcile,
            |_, e, _| {
                warn!(error = %e, "pod CIDR allocation failed; retrying");
                Action::requeue(Duration::from_secs(2))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn node_cidrs(n: &Node) -> Vec<String> {
    let spec = n.spec.as_ref();
    let mut v: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    if let Some(c) = spec.and_then(|s| s.pod_cidr.clone())
        && !v.contains(&c)
    {
        v.push(c);
    }
    v
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = node.name_any();
    if !node_cidrs(&node).is_empty() {
        ctx.pending.lock().expect("pending").remove(&name);
        return Ok(Action::await_change());
    }
    // Every range held by an existing node, or handed out and in flight.
    let index = {
        let mut pending = ctx.pending.lock().expect("pending");
        if let Some(i) = pending.get(&name) {
            *i
        } else {
            let mut used: HashSet<u32> = ctx
                .nodes
                .state()
                .iter()
                .flat_map(|n| node_cidrs(n))
                .filter_map(|c| ctx.set.index_of(&c))
                .collect();
            used.extend(pending.values().copied());
            let mut next = ctx.next.lock().expect("next");
            let Some(i) = ctx.set.next_free(&used, *next) else {
                ctx.recorder.event(
                    node.as_ref(),
                    EventType::Normal,
                    "CIDRNotAvailable",
                    format!("Node {name} status is now: CIDRNotAvailable"),
                );
                return Ok(Action::requeue(Duration::from_secs(30)));
            };
            *next = (i + 1) % ctx.set.len();
            pending.insert(name.clone(), i);
            i
        }
    };
    let cidr = ctx.set.cidr(index);
    let api: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error {
            node: name.clone(),
            source,
        })?;
    info!(node = %name, %cidr, "allocated pod CIDR");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_24s_of_a_slash_16() {
        let s = CidrSet::new("10.244.0.0/16", 24).unwrap();
        assert_eq!(s.len(), 256);
        assert_eq!(s.cidr(0), "10.244.0.0/24");
        assert_eq!(s.cidr(7), "10.244.7.0/24");
        assert_eq!(s.index_of("10.244.7.0/24"), Some(7));
        assert_eq!(s.index_of("10.245.7.0/24"), None);
        let used: HashSet<u32> = [0, 1, 3].into();
        assert_eq!(s.next_free(&used, 0), Some(2));
        assert_eq!(s.next_free(&used, 3), Some(4));
        let full: HashSet<u32> = (0..256).collect();
        assert_eq!(s.next_free(&full, 0), None);
        assert!(CidrSet::new("10.244.0.0/16", 8).is_err());
    }
}
