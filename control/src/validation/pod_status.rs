//! What the pod strategy's `PrepareForCreate` puts in a new Pod's status:
//! phase `Pending`, the QoS class (pkg/apis/core/helper/qos `GetPodQOS`),
//! and the `SchedulingGated` condition of gated pods.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use baton_apimachinery::quantity::Quantity;
use serde_json::{Value, json};

use super::json::Obj;

/// `GetPodQOS`: Guaranteed when every container limits cpu and memory and
/// requests equal limits, BestEffort when nothing is requested or limited,
/// Burstable otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut requests: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten());
    let add = |into: &mut BTreeMap<String, Quantity>, list: Option<&Value>| -> Vec<String> {
        let mut found = Vec::new();
        for (name, v) in list.and_then(Value::as_object).into_iter().flatten() {
            if name != "cpu" && name != "memory" {
                continue;
            }
            let Some(q) = v.as_str().and_then(|s| Quantity::parse(s).ok()) else {
                continue;
            };
            if q.is_zero() || q.is_negative() {
                continue;
            }
            found.push(name.clone());
            let sum = match into.get(name) {
                Some(prev) => prev.checked_add(&q).unwrap_or(q),
                None => q,
            };
            into.insert(name.clone(), sum);
        }
        found
    };
    for c in containers {
        let resources = c.get("resources");
        add(&mut requests, resources.and_then(|r| r.get("requests")));
        let found = add(&mut limits, resources.and_then(|r| r.get("limits")));
        if !(found.iter().any(|n| n == "cpu") && found.iter().any(|n| n == "memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(n, r)| {
            limits
                .get(n)
                .is_some_and(|l| l.cmp_value(r) == Ordering::Equal)
        })
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

/// The pod strategy's `PrepareForCreate`: a fresh status.
pub fn prepare_pod_create(pod: &mut Obj) {
    let spec = pod.get("spec").cloned().unwrap_or(json!({}));
    let mut status = json!({"phase": "Pending", "qosClass": qos_class(&spec)});
    let gated = spec
        .get("schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty());
    if gated {
        status["conditions"] = json!([{
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": null,
            "lastTransitionTime": null,
            "reason": "SchedulingGated",
            "message": "Scheduling is blocked due to non-empty scheduling gates",
        }]);
    }
    pod.insert("status".into(), status);
}

#[cfg(test)]
mod tests {
    use super::*;

    // qos_test.go TestGetPodQOS (subset).
    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "100m", "memory": "1Gi"}}}]})
            ),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "1Gi"}}}]})
            ),
            "Burstable"
        );
        assert_eq!(
            qos_class(&json!({"containers": [
                {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}},
                {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}}
            ]})),
            "Burstable"
        );
    }

    // PrepareForCreate: status replaced; gated pods get the condition.
    #[test]
    fn fresh_status() {
        let mut pod = json!({"spec": {"schedulingGates": [{"name": "example.com/wait"}], "containers": []}, "status": {"phase": "Running"}});
        prepare_pod_create(pod.as_object_mut().unwrap());
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "BestEffort");
        assert_eq!(pod["status"]["conditions"][0]["reason"], "SchedulingGated");
    }
}
