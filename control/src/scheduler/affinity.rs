//! Affinity terms parsed once per pod: pod (anti-)affinity terms with their
//! label selector and namespaces, and node selector terms.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PodAffinityTerm, WeightedPodAffinityTerm,
};

use crate::validation::selector::{Selector, from_label_selector};

/// A pod (anti-)affinity term.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub selector: Selector,
    /// Namespaces the term applies to; empty with `all_namespaces` false
    /// means none beyond those listed.
    pub namespaces: Vec<String>,
    /// `namespaceSelector: {}`.
    pub all_namespaces: bool,
    pub topology_key: String,
}

impl AffinityTerm {
    fn new(own_ns: &str, t: &PodAffinityTerm) -> Option<AffinityTerm> {
        let selector = match &t.label_selector {
            Some(s) => from_label_selector(s).ok()?,
            // A nil selector matches nothing.
            None => return None,
        };
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        let ns_sel = t.namespace_selector.as_ref();
        let all_namespaces = ns_sel.is_some_and(|s| {
            s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
        });
        if namespaces.is_empty() && ns_sel.is_none() {
            namespaces.push(own_ns.to_string());
        }
        Some(AffinityTerm {
            selector,
            namespaces,
            all_namespaces,
            topology_key: t.topology_key.clone(),
        })
    }

    /// Whether a pod in `ns` with `labels` is selected by the term.
    pub fn matches(&self, ns: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.all_namespaces || self.namespaces.iter().any(|n| n == ns))
            && self.selector.matches(labels)
    }
}

pub fn terms(ns: &str, t: Option<&Vec<PodAffinityTerm>>) -> Vec<AffinityTerm> {
    t.into_iter()
        .flatten()
        .filter_map(|t| AffinityTerm::new(ns, t))
        .collect()
}

pub fn weighted_terms(
    ns: &str,
    t: Option<&Vec<WeightedPodAffinityTerm>>,
) -> Vec<(i32, AffinityTerm)> {
    t.into_iter()
        .flatten()
        .filter_map(|w| AffinityTerm::new(ns, &w.pod_affinity_term).map(|t| (w.weight, t)))
        .collect()
}

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
}
