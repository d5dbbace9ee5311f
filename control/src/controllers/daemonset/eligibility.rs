//! Which nodes run a daemon pod (`NodeShouldRunDaemonPod`), the tolerations
//! every daemon pod carries (`AddOrUpdateDaemonPodTolerations`), the pods
//! built from the template (`CreatePodTemplate`, pinned to their node by
//! `ReplaceDaemonSetPodNodeNameNodeAffinity`) and the node a pod is meant
//! for (`GetTargetNodeName`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Toleration,
};

use crate::client::node_affinity::required_matches;
use crate::client::taints::tolerates;
pub use crate::kinds::apps::daemon_set::TEMPLATE_GENERATION;

/// The pod label holding the DaemonSet's template generation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The label holding the template hash, on pods and ControllerRevisions.
pub const HASH_LABEL: &str = "controller-revision-hash";

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// `Toleration.MatchToleration`: equal but for `tolerationSeconds`.
fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    s(&a.key) == s(&b.key)
        && s(&a.effect) == s(&b.effect)
        && s(&a.operator) == s(&b.operator)
        && s(&a.value) == s(&b.value)
}

/// `AddOrUpdateTolerationInPodSpec`.
fn add_or_update(spec: &mut PodSpec, t: Toleration) {
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    match tols.iter_mut().find(|e| same_toleration(e, &t)) {
        Some(existing) => *existing = t,
        None => tols.push(t),
    }
}

/// `AddOrUpdateDaemonPodTolerations`: daemon pods survive a node going
/// not ready or unreachable, and run despite pressure, cordoning and (on
/// the host network) an unconfigured network.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    add_or_update(
        spec,
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
    );
    add_or_update(
        spec,
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
    );
    for key in [
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    ] {
        add_or_update(spec, toleration(key, "NoSchedule"));
    }
    if spec.host_network == Some(true) {
        add_or_update(
            spec,
            toleration("node.kubernetes.io/network-unavailable", "NoSchedule"),
        );
    }
}

/// Whether a daemon pod should be created on a node, and whether one
/// already there may keep running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub should_run: bool,
    pub should_continue_running: bool,
}

/// `NodeShouldRunDaemonPod`: the template's node name, node selector and
/// required node affinity must match; an untolerated NoSchedule taint
/// keeps new pods off but lets running ones stay, an untolerated
/// NoExecute taint removes them.
pub fn node_should_run(ds: &DaemonSet, node: &Node) -> Fit {
    const NONE: Fit = Fit {
        should_run: false,
        should_continue_running: false,
    };
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return NONE;
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if !required_matches(&spec, name, labels) {
        return NONE;
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let untolerated = |effects: &[&str]| {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| effects.contains(&t.effect.as_str()))
            .any(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return Fit {
            should_run: false,
            should_continue_running: !untolerated(&["NoExecute"]),
        };
    }
    Fit {
        should_run: true,
        should_continue_running: true,
    }
}

/// The DaemonSet's template generation (its annotation), if set.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION))
        .and_then(|g| g.parse().ok())
}

/// `CreatePodTemplate`: the template with the daemon tolerations and the
/// generation and hash labels.
pub fn pod_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut t = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    add_daemon_tolerations(t.spec.get_or_insert_with(Default::default));
    let labels = t
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    if let Some(g) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(HASH_LABEL.into(), hash.into());
    }
    t
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity
/// becomes `metadata.name In [node]`, which the scheduler binds by.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
            match_expressions: None,
        }],
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default)
        .required_during_scheduling_ignored_during_execution = Some(selector);
}

/// `GetTargetNodeName`: the pod's node, or the node its affinity pins it
/// to while unscheduled.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref())
        .filter(|v| v.len() == 1)
        .map(|v| v[0].clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ds(pod_spec: Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default",
                "annotations": {TEMPLATE_GENERATION: "3"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": pod_spec}}
        }))
        .unwrap()
    }

    fn node(labels: Value, taints: Value) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": "n1", "labels": labels}, "spec": {"taints": taints}}),
        )
        .unwrap()
    }

    const RUN: Fit = Fit {
        should_run: true,
        should_continue_running: true,
    };

    #[test]
    fn selectors_and_affinity_pick_nodes() {
        let plain = ds(json!({"containers": []}));
        assert_eq!(node_should_run(&plain, &node(json!({}), json!([]))), RUN);
        let picky = ds(json!({"containers": [], "nodeSelector": {"disk": "ssd"}}));
        assert!(!node_should_run(&picky, &node(json!({"disk": "hdd"}), json!([]))).should_run);
        assert_eq!(
            node_should_run(&picky, &node(json!({"disk": "ssd"}), json!([]))),
            RUN
        );
        let affine = ds(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}));
        assert!(!node_should_run(&affine, &node(json!({"zone": "b"}), json!([]))).should_run);
        assert!(node_should_run(&affine, &node(json!({"zone": "a"}), json!([]))).should_run);
        let named = ds(json!({"containers": [], "nodeName": "n2"}));
        assert!(!node_should_run(&named, &node(json!({}), json!([]))).should_continue_running);
    }

    #[test]
    fn taints_keep_new_pods_off_and_noexecute_evicts() {
        let plain = ds(json!({"containers": []}));
        let no_schedule = node(
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        assert_eq!(
            node_should_run(&plain, &no_schedule),
            Fit {
                should_run: false,
                should_continue_running: true
            }
        );
        let no_execute = node(
            json!({}),
            json!([{"key": "dedicated", "effect": "NoExecute"}]),
        );
        assert_eq!(
            node_should_run(&plain, &no_execute),
            Fit {
                should_run: false,
                should_continue_running: false
            }
        );
        let tolerant = ds(
            json!({"containers": [], "tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        );
        assert_eq!(node_should_run(&tolerant, &no_execute), RUN);
        // The daemon tolerations: cordoned and not-ready nodes still run pods.
        let cordoned = node(
            json!({}),
            json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                   {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
        );
        assert_eq!(node_should_run(&plain, &cordoned), RUN);
        let unconfigured = node(
            json!({}),
            json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
        );
        assert!(!node_should_run(&plain, &unconfigured).should_run);
        let host = ds(json!({"containers": [], "hostNetwork": true}));
        assert_eq!(node_should_run(&host, &unconfigured), RUN);
    }

    #[test]
    fn daemon_tolerations_are_added_once_and_replace_matching_ones() {
        let mut spec: PodSpec = serde_json::from_value(json!({"containers": [], "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]}))
        .unwrap();
        add_daemon_tolerations(&mut spec);
        add_daemon_tolerations(&mut spec);
        let tols = spec.tolerations.unwrap();
        assert_eq!(tols.len(), 6);
        assert_eq!(tols[0].toleration_seconds, None);
        assert_eq!(
            tols.iter()
                .map(|t| t.key.clone().unwrap())
                .collect::<Vec<_>>(),
            [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
                "node.kubernetes.io/disk-pressure",
                "node.kubernetes.io/memory-pressure",
                "node.kubernetes.io/pid-pressure",
                "node.kubernetes.io/unschedulable",
            ]
        );
    }

    #[test]
    fn pods_are_labelled_and_pinned_to_their_node() {
        let d = ds(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}));
        let mut t = pod_template(&d, "abc");
        let labels = t.metadata.as_ref().unwrap().labels.clone().unwrap();
        assert_eq!(labels[HASH_LABEL], "abc");
        assert_eq!(labels[TEMPLATE_GENERATION_LABEL], "3");
        assert_eq!(labels["app"], "agent");
        let spec = t.spec.as_mut().unwrap();
        pin_to_node(spec, "n7");
        let pod = Pod {
            spec: Some(spec.clone()),
            ..Default::default()
        };
        assert_eq!(target_node(&pod).as_deref(), Some("n7"));
        let terms = serde_json::to_value(&spec.affinity).unwrap();
        assert_eq!(
            terms["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]})
        );
        let mut bound = pod.clone();
        bound.spec.as_mut().unwrap().node_name = Some("n8".into());
        assert_eq!(target_node(&bound).as_deref(), Some("n8"));
    }
}
