//! Taint-based eviction (the NoExecute taint manager): a pod on a node with
//! NoExecute taints it does not tolerate is deleted now; one tolerating them
//! for a while is deleted when the shortest `tolerationSeconds` of the
//! matching tolerations has passed since the taint was added.

use k8s_openapi::api::core::v1::{Pod, Taint};

use crate::client::taints::tolerates;

/// When to evict: None = never (tolerated forever), Some(0) = now, else
/// seconds from now.
pub fn eviction_delay(pod: &Pod, taints: &[Taint], now: jiff::Timestamp) -> Option<i64> {
    let tols = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let mut delay: Option<i64> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<_> = tols.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(0);
        }
        // Tolerated forever unless some matching toleration sets seconds.
        let Some(secs) = matching.iter().filter_map(|t| t.toleration_seconds).min() else {
            continue;
        };
        let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let left = (added.as_second() + secs.max(0)) - now.as_second();
        delay = Some(delay.map_or(left.max(0), |d| d.min(left.max(0))));
    }
    delay
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn toleration_seconds_delay_eviction() {
        let now: jiff::Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let taint: Taint = serde_json::from_value(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2024-01-01T00:00:30Z"})).unwrap();
        let pod = |tols: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"spec": {"containers": [], "tolerations": tols}}))
                .unwrap()
        };
        assert_eq!(
            eviction_delay(&pod(json!([])), std::slice::from_ref(&taint), now),
            Some(0)
        );
        let p = pod(
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        );
        assert_eq!(
            eviction_delay(&p, std::slice::from_ref(&taint), now),
            Some(270)
        );
        let p = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_delay(&p, std::slice::from_ref(&taint), now), None);
    }
}
