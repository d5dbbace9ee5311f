//! NodePorts: a pod's hostPorts must be free on the node.

use crate::scheduler::cache::{NodeInfo, PodInfo};
use crate::scheduler::framework::{Code, CycleState, Filter, Plugin, Rejection};

pub struct NodePorts;

impl Filter for NodePorts {
    fn filter(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let clash = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if clash {
            Err(Rejection::new(
                self.name(),
                Code::Unschedulable,
                "node(s) didn't have free ports for the requested pod ports",
            ))
        } else {
            Ok(())
        }
    }
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }
}
