//! The ClusterRole aggregation controller (kube-controller-manager's
//! `clusterrole-aggregation`): a ClusterRole with an `aggregationRule` gets
//! as its rules the union of the rules of every other ClusterRole its
//! selectors match, in the order of their names, each rule once. The
//! bootstrap `admin`, `edit` and `view` roles are built this way, so a
//! ClusterRole labelled `rbac.authorization.k8s.io/aggregate-to-view:
//! "true"` extends all three.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, warn};

use crate::client::Change;
use crate::validation::selector::from_label_selector;

/// The rules `role` should have, when it aggregates.
pub fn aggregated_rules(
    role: &ClusterRole,
    all: &[std::sync::Arc<ClusterRole>],
) -> Option<Vec<PolicyRule>> {
    let selectors = role
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .clone()
        .unwrap_or_default();
    let selectors: Vec<_> = selectors
        .iter()
        .filter_map(|s| from_label_selector(s).ok())
        .collect();
    let mut sources: Vec<&ClusterRole> = all
        .iter()
        .map(AsRef::as_ref)
        .filter(|other| other.name_any() != role.name_any())
        .filter(|other| selectors.iter().any(|s| s.matches(other.labels())))
        .collect();
    sources.sort_by_key(|r| r.name_any());
    let mut rules: Vec<PolicyRule> = Vec::new();
    for rule in sources.iter().flat_map(|r| r.rules.iter().flatten()) {
        if !rules.contains(rule) {
            rules.push(rule.clone());
        }
    }
    Some(rules)
}

/// Runs the controller: every change of any ClusterRole re-checks the
/// aggregating ones (there are few).
pub async fn run(
    client: kube::Client,
    roles: Store<ClusterRole>,
    mut rx: UnboundedReceiver<Change<ClusterRole>>,
) {
    let api: Api<ClusterRole> = Api::all(client);
    loop {
        if !crate::client::informer::synced(&roles).await {
            return;
        }
        let all = roles.state();
        let mut failed = false;
        for role in &all {
            let Some(rules) = aggregated_rules(role, &all) else {
                continue;
            };
            if role
                .rules
                .as_ref()
                .map_or(rules.is_empty(), |r| *r == rules)
            {
                continue;
            }
            let name = role.name_any();
            let patch = serde_json::json!({"rules": rules});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => debug!(role = %name, rules = rules.len(), "aggregated"),
                Err(e) => {
                    warn!(role = %name, error = %e, "aggregating the role failed");
                    failed = true;
                }
            }
        }
        if failed {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if rx.recv().await.is_none() {
            return;
        }
        // Take the rest of a burst of changes at once.
        while rx.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn role(v: serde_json::Value) -> Arc<ClusterRole> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn an_aggregating_role_unites_the_rules_of_the_roles_it_selects() {
        let view = role(serde_json::json!({
            "metadata": {"name": "view"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"aggregate-to-view": "true"}}]},
        }));
        let pods = serde_json::json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let all = vec![
            view.clone(),
            role(
                serde_json::json!({"metadata": {"name": "b", "labels": {"aggregate-to-view": "true"}},
                "rules": [pods, {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]}),
            ),
            role(
                serde_json::json!({"metadata": {"name": "a", "labels": {"aggregate-to-view": "true"}},
                "rules": [pods]}),
            ),
            role(
                serde_json::json!({"metadata": {"name": "c"}, "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}),
            ),
        ];
        let rules = aggregated_rules(&view, &all).unwrap();
        let verbs: Vec<_> = rules.iter().map(|r| r.verbs.join(",")).collect();
        assert_eq!(verbs, ["get", "list"], "a's rule first, b's duplicate once");
        assert_eq!(aggregated_rules(&all[1], &all), None);
    }
}
