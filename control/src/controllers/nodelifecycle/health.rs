//! Node health from heartbeats (`tryUpdateNodeHealth`) and the taints and
//! conditions that follow, as pure functions. A heartbeat is a change of
//! the node's Lease `renewTime` or of its Ready condition's
//! `lastHeartbeatTime`; its age is measured on the controller's own clock
//! from when the change was observed (so clock skew does not matter), and a
//! node just seen gets a full grace period.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// What the controller last saw of a node's heartbeats.
#[derive(Debug, Clone)]
pub struct Observed {
    pub lease_renew: Option<jiff::Timestamp>,
    pub status_heartbeat: Option<jiff::Timestamp>,
    pub probe: Instant,
}

/// Updates the observation with the current heartbeats.
pub fn observe(
    prev: Option<&Observed>,
    lease_renew: Option<jiff::Timestamp>,
    status_heartbeat: Option<jiff::Timestamp>,
    now: Instant,
) -> Observed {
    match prev {
        Some(p) if p.lease_renew == lease_renew && p.status_heartbeat == status_heartbeat => {
            p.clone()
        }
        _ => Observed {
            lease_renew,
            status_heartbeat,
            probe: now,
        },
    }
}

pub fn ready_condition(n: &Node) -> Option<&NodeCondition> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The conditions after a missed grace period: Ready and the pressure
/// conditions become Unknown (`NodeStatusUnknown`), or None if unchanged.
pub fn conditions_when_silent(n: &Node, now: jiff::Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conds = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        match conds.iter_mut().find(|c| c.type_ == t) {
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            Some(_) => {}
            None => {
                conds.push(NodeCondition {
                    type_: t.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: n.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conds)
}

/// The taints a node should carry for its Ready condition
/// (`doNoExecuteTaintingPass` and TaintNodesByCondition): unreachable or
/// not-ready, NoExecute and NoSchedule; other taints kept. None if unchanged.
pub fn taints_for(n: &Node, now: jiff::Timestamp) -> Option<Vec<Taint>> {
    let cur = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let want_key = match ready_condition(n).map(|c| c.status.as_str()) {
        Some("True") => None,
        Some("False") => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    };
    let mut next: Vec<Taint> = cur
        .iter()
        .filter(|t| {
            (t.key != UNREACHABLE && t.key != NOT_READY) || Some(t.key.as_str()) == want_key
        })
        .cloned()
        .collect();
    if let Some(k) = want_key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !next.iter().any(|t| t.key == k && t.effect == effect) {
                next.push(Taint {
                    key: k.into(),
                    effect: effect.into(),
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    (next != cur).then_some(next)
}

/// Whether the node missed its grace period.
pub fn silent(o: &Observed, now: Instant, grace: Duration) -> bool {
    now.duration_since(o.probe) > grace
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "other", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady"}]}})).unwrap()
    }

    #[test]
    fn silent_node_becomes_unknown_and_unreachable() {
        let now = jiff::Timestamp::now();
        let n = node("True");
        let conds = conditions_when_silent(&n, now).unwrap();
        let r = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (r.status.as_str(), r.reason.as_deref(), r.message.as_deref()),
            (
                "Unknown",
                Some("NodeStatusUnknown"),
                Some("Kubelet stopped posting node status.")
            )
        );
        let mut n2 = n.clone();
        n2.status.as_mut().unwrap().conditions = Some(conds);
        assert!(
            conditions_when_silent(&n2, now).is_none(),
            "already unknown"
        );
        let taints = taints_for(&n2, now).unwrap();
        let keys: Vec<_> = taints
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("other", "NoSchedule"),
                (UNREACHABLE, "NoSchedule"),
                (UNREACHABLE, "NoExecute")
            ]
        );
        // Back to Ready: the taints go, others stay.
        let mut n3 = n2.clone();
        n3.spec.as_mut().unwrap().taints = Some(taints);
        n3.status = node("True").status;
        assert_eq!(taints_for(&n3, now).unwrap().len(), 1);
        assert!(taints_for(&node("True"), now).is_none());
        assert_eq!(taints_for(&node("False"), now).unwrap()[1].key, NOT_READY);
    }

    #[test]
    fn heartbeats_reset_the_probe_time() {
        let t0 = Instant::now();
        let o = observe(None, None, None, t0);
        assert!(!silent(
            &o,
            t0 + Duration::from_secs(39),
            Duration::from_secs(40)
        ));
        assert!(silent(
            &o,
            t0 + Duration::from_secs(41),
            Duration::from_secs(40)
        ));
        let renewed = observe(
            Some(&o),
            Some(jiff::Timestamp::now()),
            None,
            t0 + Duration::from_secs(30),
        );
        assert!(!silent(
            &renewed,
            t0 + Duration::from_secs(41),
            Duration::from_secs(40)
        ));
    }
}
