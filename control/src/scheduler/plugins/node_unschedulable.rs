//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods
//! tolerating `node.kubernetes.io/unschedulable:NoSchedule`.

use crate::scheduler::cache::{NodeInfo, PodInfo};
use crate::scheduler::framework::{Code, CycleState, Filter, Plugin, Rejection};

use crate::client::taints::tolerates;

pub struct NodeUnschedulable;

const TAINT: &str = "node.kubernetes.io/unschedulable";

impl Filter for NodeUnschedulable {
    fn filter(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        if node.node.is_none() {
            return Err(Rejection::new(
                self.name(),
                Code::UnschedulableAndUnresolvable,
                "node(s) had no node object",
            ));
        }
        if !node.unschedulable {
            return Ok(());
        }
        let taint = k8s_openapi::api::core::v1::Taint {
            key: TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tols = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        if tols.iter().any(|t| tolerates(t, &taint)) {
            return Ok(());
        }
        Err(Rejection::new(
            self.name(),
            Code::UnschedulableAndUnresolvable,
            "node(s) were unschedulable",
        ))
    }
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }
}
