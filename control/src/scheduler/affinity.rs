//! Affinity terms parsed once per pod: pod (anti-)affinity terms with their
//! label selector and namespaces; node selector terms are the client's
//! ([`crate::client::node_affinity`]), shared with the DaemonSet controller.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodAffinityTerm, WeightedPodAffinityTerm};

pub use crate::client::node_affinity::node_term_matches;
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
