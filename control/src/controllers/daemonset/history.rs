//! A DaemonSet's history (`daemon/update.go`): each template is kept as a
//! ControllerRevision named `<ds>-<hash>` whose data is the strategic merge
//! patch that restores it (what `kubectl rollout undo` applies); the
//! current revision is renumbered past the others, and old revisions no
//! pod runs are trimmed to `revisionHistoryLimit`, oldest first.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{Value, json};

use super::eligibility::HASH_LABEL;
use crate::controllers::deployment::util::compute_hash;
use crate::controllers::podutil::controller_ref;

/// `controller.ComputeHash` of the template with the collision count.
pub fn hash(ds: &DaemonSet) -> String {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    compute_hash(
        &template,
        ds.status.as_ref().and_then(|s| s.collision_count),
    )
}

/// `getPatch`: `{"spec": {"template": {…, "$patch": "replace"}}}`.
pub fn patch(ds: &DaemonSet) -> Value {
    let mut template = ds
        .spec
        .as_ref()
        .map(|s| serde_json::to_value(&s.template).unwrap_or_default())
        .unwrap_or_else(|| json!({}));
    if let Some(t) = template.as_object_mut() {
        t.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// `Match`: the revision holds the DaemonSet's current template.
pub fn matches(ds: &DaemonSet, cr: &ControllerRevision) -> bool {
    cr.data.as_ref().is_some_and(|d| d.0 == patch(ds))
}

/// `snapshot`'s revision: labelled with the template's labels and the
/// hash, annotated as the DaemonSet, controlled by it.
pub fn snapshot(ds: &DaemonSet, hash: &str, revision: i64) -> ControllerRevision {
    let mut labels: BTreeMap<String, String> = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                ds.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![controller_ref(ds)]),
            ..Default::default()
        },
        data: Some(RawExtension(patch(ds))),
        revision,
    }
}

/// What `constructHistory` does with the DaemonSet's revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// No revision holds the template: create this one.
    Create(i64),
    /// The revision (by name) holds it; renumber it when `Some`.
    Existing(String, Option<i64>),
}

/// The current revision and the old ones (by name), `constructHistory`'s
/// decision: the current is numbered one past the newest old revision.
/// Of several revisions holding the template the newest is kept.
pub fn current<'a>(
    ds: &DaemonSet,
    revisions: &'a [ControllerRevision],
) -> (Current, Vec<&'a ControllerRevision>) {
    let (mut cur, old): (Vec<&ControllerRevision>, Vec<&ControllerRevision>) =
        revisions.iter().partition(|r| matches(ds, r));
    let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    cur.sort_by_key(|r| r.revision);
    let current = match cur.last() {
        None => Current::Create(next),
        Some(r) => Current::Existing(
            r.metadata.name.clone().unwrap_or_default(),
            (r.revision < next).then_some(next),
        ),
    };
    let mut old = old;
    // Duplicates of the current template go with the old ones.
    old.extend(cur.iter().rev().skip(1));
    (current, old)
}

/// `cleanupHistory`: the old revisions to delete, oldest first, keeping
/// `limit` and every revision a pod still runs.
pub fn to_trim(old: &[&ControllerRevision], limit: i32, pods: &[&Pod]) -> Vec<String> {
    let mut to_kill = old.len() as i64 - limit.max(0) as i64;
    if to_kill <= 0 {
        return Vec::new();
    }
    let live: HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(HASH_LABEL))
        .map(String::as_str)
        .collect();
    let mut sorted: Vec<&&ControllerRevision> = old.iter().collect();
    sorted.sort_by_key(|r| r.revision);
    let mut out = Vec::new();
    for r in sorted {
        if to_kill <= 0 {
            break;
        }
        let hash = r
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .map(String::as_str);
        if hash.is_some_and(|h| live.contains(h)) {
            continue;
        }
        out.push(r.metadata.name.clone().unwrap_or_default());
        to_kill -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(image: &str) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": image}]}}}
        }))
        .unwrap()
    }

    fn rev(d: &DaemonSet, revision: i64) -> ControllerRevision {
        snapshot(d, &hash(d), revision)
    }

    #[test]
    fn snapshots_hold_a_replacing_patch_of_the_template() {
        let d = ds("agent:1");
        let h = hash(&d);
        let cr = rev(&d, 1);
        assert_eq!(
            cr.metadata.name.as_deref(),
            Some(format!("agent-{h}").as_str())
        );
        assert_eq!(cr.metadata.labels.as_ref().unwrap()[HASH_LABEL], h);
        assert_eq!(cr.metadata.labels.as_ref().unwrap()["app"], "agent");
        let data = &cr.data.as_ref().unwrap().0;
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            data["spec"]["template"]["spec"]["containers"][0]["image"],
            "agent:1"
        );
        assert!(matches(&d, &cr));
        assert!(!matches(&ds("agent:2"), &cr));
        assert_ne!(hash(&d), hash(&ds("agent:2")));
        let mut collided = d.clone();
        collided.status = Some(Default::default());
        collided.status.as_mut().unwrap().collision_count = Some(1);
        assert_ne!(hash(&d), hash(&collided));
    }

    #[test]
    fn current_revision_is_created_or_renumbered_past_the_old_ones() {
        let (v1, v2) = (ds("agent:1"), ds("agent:2"));
        assert_eq!(current(&v1, &[]).0, Current::Create(1));
        let revs = vec![rev(&v1, 1), rev(&v2, 2)];
        let (cur, old) = current(&ds("agent:3"), &revs);
        assert_eq!((cur, old.len()), (Current::Create(3), 2));
        // Rolling back to v1 renumbers its revision to 3.
        let (cur, old) = current(&v1, &revs);
        assert_eq!(
            cur,
            Current::Existing(format!("agent-{}", hash(&v1)), Some(3))
        );
        assert_eq!(old.len(), 1);
        let (cur, _) = current(&v2, &revs);
        assert_eq!(cur, Current::Existing(format!("agent-{}", hash(&v2)), None));
    }

    #[test]
    fn history_is_trimmed_oldest_first_sparing_live_revisions() {
        let revs: Vec<ControllerRevision> = (1..=4)
            .map(|i| rev(&ds(&format!("agent:{i}")), i))
            .collect();
        let old: Vec<&ControllerRevision> = revs.iter().collect();
        let names: Vec<String> = revs
            .iter()
            .map(|r| r.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(to_trim(&old, 10, &[]), Vec::<String>::new());
        assert_eq!(to_trim(&old, 2, &[]), names[..2].to_vec());
        // A pod still running revision 1 keeps it.
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"labels": {HASH_LABEL: hash(&ds("agent:1"))}}}),
        )
        .unwrap();
        assert_eq!(to_trim(&old, 2, &[&pod]), names[1..3].to_vec());
        assert_eq!(to_trim(&old, 0, &[]), names);
    }
}
