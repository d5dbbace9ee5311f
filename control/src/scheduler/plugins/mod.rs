//! The default plugins, named and weighted as in kube-scheduler's default
//! profile.

pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod spread;
pub mod taint_toleration;
pub mod volume_binding;

use std::sync::Arc;

use super::framework::{Filter, PreFilter, Score};

/// The plugins of one scheduling profile, by extension point.
#[derive(Clone)]
pub struct Profile {
    pub pre_filters: Vec<Arc<dyn PreFilter>>,
    pub filters: Vec<Arc<dyn Filter>>,
    pub scores: Vec<Arc<dyn Score>>,
}

impl Profile {
    /// kube-scheduler's default profile (the plugins baton implements).
    pub fn default_profile(volumes: volume_binding::VolumeBinding) -> Profile {
        let unsched = Arc::new(node_unschedulable::NodeUnschedulable);
        let taints = Arc::new(taint_toleration::TaintToleration);
        let node_aff = Arc::new(node_affinity::NodeAffinity);
        let ports = Arc::new(node_ports::NodePorts);
        let fit = Arc::new(node_resources::Fit);
        let balanced = Arc::new(node_resources::BalancedAllocation);
        let pod_aff = Arc::new(inter_pod_affinity::InterPodAffinity);
        let vols = Arc::new(volumes);
        let spread = Arc::new(spread::PodTopologySpread);
        Profile {
            pre_filters: vec![pod_aff.clone(), vols.clone()],
            filters: vec![
                unsched,
                node_aff.clone(),
                ports,
                fit.clone(),
                taints.clone(),
                vols,
                pod_aff.clone(),
            ],
            scores: vec![taints, node_aff, fit, balanced, pod_aff, spread],
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::Value;

    use crate::scheduler::cache::{Cache, NodeInfo, PodInfo};

    pub fn pod(v: Value) -> PodInfo {
        PodInfo::new(Arc::new(serde_json::from_value::<Pod>(v).unwrap()))
    }

    pub fn node(v: Value) -> Arc<Node> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    pub fn node_info(cache: &mut Cache, v: Value) -> NodeInfo {
        let n = node(v);
        let name = n.metadata.name.clone().unwrap();
        cache.set_node(n);
        cache.node(&name).unwrap().clone()
    }
}
