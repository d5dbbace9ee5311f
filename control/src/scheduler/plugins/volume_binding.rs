//! Volume node affinity of bound PersistentVolumes (the part of
//! VolumeBinding that applies to already-bound claims): a pod using a claim
//! bound to a PV with `nodeAffinity` only fits nodes matching it.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::scheduler::affinity::node_term_matches;
use crate::scheduler::cache::{Cache, NodeInfo, PodInfo};
use crate::scheduler::framework::{Code, CycleState, Filter, Plugin, PreFilter, Rejection};

/// Reads claims and volumes from the scheduler's informers.
pub struct VolumeBinding {
    pub claims: Option<Store<PersistentVolumeClaim>>,
    pub volumes: Option<Store<PersistentVolume>>,
}

impl PreFilter for VolumeBinding {
    fn pre_filter(
        &self,
        pod: &PodInfo,
        _: &Cache,
        state: &mut CycleState,
    ) -> Result<(), Rejection> {
        state.volume_node_terms.clear();
        let Some(spec) = pod.pod.spec.as_ref() else {
            return Ok(());
        };
        let claims: Vec<&str> = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .map(|c| c.claim_name.as_str())
            })
            .collect();
        if claims.is_empty() {
            return Ok(());
        }
        let (Some(cs), Some(vs)) = (&self.claims, &self.volumes) else {
            return Ok(());
        };
        for name in claims {
            let Some(pvc) = cs.get(&ObjectRef::new(name).within(pod.namespace())) else {
                return Err(Rejection::new(
                    self.name(),
                    Code::UnschedulableAndUnresolvable,
                    format!("persistentvolumeclaim \"{name}\" not found"),
                ));
            };
            let Some(pv_name) = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .filter(|n| !n.is_empty())
            else {
                return Err(Rejection::new(
                    self.name(),
                    Code::UnschedulableAndUnresolvable,
                    "pod has unbound immediate PersistentVolumeClaims",
                ));
            };
            if let Some(pv) = vs.get(&ObjectRef::new(&pv_name))
                && let Some(req) = pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_affinity.as_ref())
                    .and_then(|a| a.required.clone())
            {
                state.volume_node_terms.push(req);
            }
        }
        Ok(())
    }
}

impl Filter for VolumeBinding {
    fn filter(&self, _pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let ok = state.volume_node_terms.iter().all(|sel| {
            sel.node_selector_terms
                .iter()
                .any(|t| node_term_matches(t, &node.name, node.labels()))
        });
        if ok {
            Ok(())
        } else {
            Err(Rejection::new(
                self.name(),
                Code::UnschedulableAndUnresolvable,
                "node(s) had volume node affinity conflict",
            ))
        }
    }
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        "VolumeBinding"
    }
}
