//! Node selection as the scheduler and the DaemonSet controller both read
//! it: `nodeSelector` and required node affinity against a node's name and
//! labels (component-helpers' `nodeaffinity.GetRequiredNodeAffinity(pod).Match`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(b)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" { v > b } else { v < b }
        }
        _ => false,
    }
}

/// `NodeSelectorTerm` match: every expression and field holds; a term
/// with neither matches nothing.
pub fn node_term_matches(
    t: &NodeSelectorTerm,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name = node_name.to_string();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(&name)))
}

/// `GetRequiredNodeAffinity(pod).Match(node)`: every `nodeSelector` label
/// and, when set, one of the required node affinity terms match.
pub fn required_matches(
    spec: &PodSpec,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok
        && required.is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| node_term_matches(t, node_name, labels))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_terms_support_every_operator() {
        let labels: BTreeMap<String, String> = [
            ("zone".to_string(), "a".to_string()),
            ("gen".to_string(), "5".to_string()),
        ]
        .into();
        let t: NodeSelectorTerm = serde_json::from_value(json!({"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a", "b"]},
            {"key": "gen", "operator": "Gt", "values": ["3"]},
            {"key": "gpu", "operator": "DoesNotExist"},
        ]}))
        .unwrap();
        assert!(node_term_matches(&t, "n1", &labels));
        let t: NodeSelectorTerm = serde_json::from_value(
            json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}),
        )
        .unwrap();
        assert!(!node_term_matches(&t, "n1", &labels));
        assert!(!node_term_matches(
            &NodeSelectorTerm::default(),
            "n1",
            &labels
        ));
    }

    #[test]
    fn node_selector_and_required_affinity_both_hold() {
        let labels: BTreeMap<String, String> = [("disk".to_string(), "ssd".to_string())].into();
        let spec: PodSpec =
            serde_json::from_value(json!({"containers": [], "nodeSelector": {"disk": "ssd"}}))
                .unwrap();
        assert!(required_matches(&spec, "n1", &labels));
        assert!(!required_matches(&spec, "n1", &BTreeMap::new()));
        let pinned: PodSpec =
            serde_json::from_value(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
            ]}}}}))
            .unwrap();
        assert!(required_matches(&pinned, "n2", &labels));
        assert!(!required_matches(&pinned, "n1", &labels));
    }
}
