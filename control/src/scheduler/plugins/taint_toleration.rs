//! TaintToleration: NoSchedule/NoExecute taints must be tolerated; fewer
//! untolerated PreferNoSchedule taints score higher.

use k8s_openapi::api::core::v1::Toleration;

use crate::client::taints::tolerates;
use crate::scheduler::cache::{NodeInfo, PodInfo};
use crate::scheduler::framework::{
    Code, CycleState, Filter, Plugin, Rejection, Score, default_normalize,
};

pub struct TaintToleration;

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

impl Filter for TaintToleration {
    fn filter(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let tols = tolerations(pod);
        let untolerated = node
            .taints
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .find(|taint| !tols.iter().any(|t| tolerates(t, taint)));
        match untolerated {
            None => Ok(()),
            Some(t) => Err(Rejection::new(
                self.name(),
                Code::UnschedulableAndUnresolvable,
                format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    t.key,
                    t.value.as_deref().unwrap_or_default()
                ),
            )),
        }
    }
}

impl Score for TaintToleration {
    fn weight(&self) -> i64 {
        3
    }

    fn score(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> i64 {
        let tols: Vec<&Toleration> = tolerations(pod)
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .collect();
        node.taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tols.iter().any(|tol| tolerates(tol, t)))
            .count() as i64
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::Cache;
    use crate::scheduler::plugins::testutil::{node_info, pod};
    use serde_json::json;

    #[test]
    fn untolerated_noschedule_taint_rejects_with_its_reason() {
        let mut c = Cache::default();
        let n = node_info(
            &mut c,
            json!({"metadata": {"name": "cp"}, "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
        );
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}));
        let err = TaintToleration
            .filter(&p, &CycleState::default(), &n)
            .unwrap_err();
        assert_eq!(
            err.reasons,
            vec!["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"]
        );
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}}),
        );
        assert!(
            TaintToleration
                .filter(&p, &CycleState::default(), &n)
                .is_ok()
        );
        // An empty key with Exists tolerates everything.
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": [{"operator": "Exists"}]}}),
        );
        assert!(
            TaintToleration
                .filter(&p, &CycleState::default(), &n)
                .is_ok()
        );
    }
}
