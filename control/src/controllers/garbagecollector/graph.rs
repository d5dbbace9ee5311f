//! The garbage collector's ownership graph (`GraphBuilder`): every object
//! seen, its owners, and its dependents, updated from the watch events of
//! all deletable resources, and the work each change calls for. The
//! decision for one object (`attemptToDeleteItem`) is a pure function over
//! the graph plus the owners verified absent.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// What the graph keeps of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub uid: String,
    /// Index of its resource in the collector's resource list.
    pub resource: usize,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Item {
    pub fn has(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted in the foreground: waits for its blocking dependents.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has(FOREGROUND)
    }
}

/// Work the collector does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Work {
    AttemptToDelete(String),
    Orphan(String),
}

/// The graph.
#[derive(Debug, Default)]
pub struct Graph {
    items: HashMap<String, Item>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Item> {
        self.items.get(uid)
    }

    pub fn dependents(&self, uid: &str) -> Vec<Item> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.items.get(d).cloned())
            .collect()
    }

    /// Uids of every object that has owners.
    pub fn all_with_owners(&self) -> Vec<String> {
        self.items
            .values()
            .filter(|i| !i.owners.is_empty())
            .map(|i| i.uid.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// An object added or changed.
    pub fn upsert(&mut self, item: Item) -> Vec<Work> {
        let uid = item.uid.clone();
        let old = self.items.insert(uid.clone(), item.clone());
        if let Some(o) = &old {
            for r in &o.owners {
                if let Some(d) = self.dependents.get_mut(&r.uid) {
                    d.remove(&uid);
                }
            }
        }
        for r in &item.owners {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        let mut work = Vec::new();
        let owner_gone_or_waiting = item.owners.iter().any(|r| {
            self.items
                .get(&r.uid)
                .is_none_or(|o| o.deleting_dependents() || o.uid != r.uid)
        });
        if owner_gone_or_waiting
            || (old.as_ref().is_some_and(|o| o.owners != item.owners) && !item.owners.is_empty())
        {
            work.push(Work::AttemptToDelete(uid.clone()));
        }
        if item.deleting && item.has(ORPHAN) {
            work.push(Work::Orphan(uid.clone()));
        }
        if item.deleting_dependents() {
            work.push(Work::AttemptToDelete(uid.clone()));
            work.extend(
                self.dependents(&uid)
                    .into_iter()
                    .map(|d| Work::AttemptToDelete(d.uid)),
            );
        }
        work
    }

    /// An object gone: its dependents may be garbage now, and an owner
    /// waiting for it may finish.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let Some(item) = self.items.remove(uid) else {
            return Vec::new();
        };
        let mut work: Vec<Work> = self
            .dependents(uid)
            .into_iter()
            .map(|d| Work::AttemptToDelete(d.uid))
            .collect();
        for r in &item.owners {
            if let Some(d) = self.dependents.get_mut(&r.uid) {
                d.remove(uid);
            }
            if self
                .items
                .get(&r.uid)
                .is_some_and(|o| o.deleting_dependents())
            {
                work.push(Work::AttemptToDelete(r.uid.clone()));
            }
        }
        if self.dependents.get(uid).is_some_and(|d| d.is_empty()) {
            self.dependents.remove(uid);
        }
        work
    }
}

/// What to do with one object whose owners were classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// Owners it still has are fine; drop references to owners gone.
    RemoveRefs(Vec<String>),
    /// Delete it with this propagation policy.
    Delete(&'static str),
    /// Foreground deletion finished: remove the finalizer.
    RemoveFinalizer(&'static str),
    /// Foreground deletion: delete these dependents first.
    DeleteDependents(Vec<String>),
}

/// `attemptToDeleteItem`. `absent` holds owner uids verified not to exist.
pub fn decide(g: &Graph, item: &Item, absent: &HashSet<String>) -> Decision {
    if item.deleting_dependents() {
        let blocking: Vec<String> = g
            .dependents(&item.uid)
            .into_iter()
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|r| r.uid == item.uid && r.block_owner_deletion == Some(true))
            })
            .map(|d| d.uid)
            .collect();
        return if blocking.is_empty() {
            Decision::RemoveFinalizer(FOREGROUND)
        } else {
            Decision::DeleteDependents(blocking)
        };
    }
    if item.owners.is_empty() || item.deleting {
        return Decision::Nothing;
    }
    let (mut solid, mut dangling, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
    for r in &item.owners {
        match g.get(&r.uid) {
            Some(o) if o.deleting_dependents() => waiting.push(r.uid.clone()),
            Some(_) => solid.push(r.uid.clone()),
            None if absent.contains(&r.uid) => dangling.push(r.uid.clone()),
            None => solid.push(r.uid.clone()),
        }
    }
    if !solid.is_empty() {
        return if dangling.is_empty() {
            Decision::Nothing
        } else {
            Decision::RemoveRefs(dangling)
        };
    }
    if !waiting.is_empty() && !g.dependents(&item.uid).is_empty() {
        return Decision::Delete("Foreground");
    }
    Decision::Delete(if item.has(ORPHAN) {
        "Orphan"
    } else if item.has(FOREGROUND) {
        "Foreground"
    } else {
        "Background"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            uid: uid.into(),
            name: uid.into(),
            kind: "ReplicaSet".into(),
            api_version: "apps/v1".into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn item(uid: &str, owners: Vec<OwnerReference>) -> Item {
        Item {
            uid: uid.into(),
            resource: 0,
            namespace: Some("d".into()),
            name: uid.into(),
            owners,
            deleting: false,
            finalizers: vec![],
        }
    }

    #[test]
    fn background_cascade_when_owner_is_gone() {
        let mut g = Graph::default();
        g.upsert(item("rs", vec![]));
        assert!(g.upsert(item("pod", vec![owner("rs", true)])).is_empty());
        let work = g.remove("rs");
        assert_eq!(work, vec![Work::AttemptToDelete("pod".into())]);
        let absent: HashSet<String> = ["rs".to_string()].into();
        assert_eq!(
            decide(&g, g.get("pod").unwrap(), &absent),
            Decision::Delete("Background")
        );
        // Not verified absent (cache lag): nothing happens.
        assert_eq!(
            decide(&g, g.get("pod").unwrap(), &HashSet::new()),
            Decision::Nothing
        );
    }

    #[test]
    fn foreground_waits_for_blocking_dependents() {
        let mut g = Graph::default();
        g.upsert(item("dep", vec![]));
        g.upsert(item("rs", vec![owner("dep", true)]));
        g.upsert(item("pod", vec![owner("rs", true)]));
        let mut d = item("dep", vec![]);
        d.deleting = true;
        d.finalizers = vec![FOREGROUND.into()];
        let work = g.upsert(d.clone());
        assert!(work.contains(&Work::AttemptToDelete("rs".into())));
        assert_eq!(
            decide(&g, &d, &HashSet::new()),
            Decision::DeleteDependents(vec!["rs".into()])
        );
        // The ReplicaSet has dependents itself: deleted in the foreground too.
        assert_eq!(
            decide(&g, g.get("rs").unwrap(), &HashSet::new()),
            Decision::Delete("Foreground")
        );
        g.remove("pod");
        let w = g.remove("rs");
        assert!(w.contains(&Work::AttemptToDelete("dep".into())));
        assert_eq!(
            decide(&g, &d, &HashSet::new()),
            Decision::RemoveFinalizer(FOREGROUND)
        );
    }

    #[test]
    fn orphan_finalizer_queues_orphaning_and_extra_owners_keep_objects() {
        let mut g = Graph::default();
        g.upsert(item("rs", vec![]));
        g.upsert(item("other", vec![]));
        g.upsert(item("pod", vec![owner("rs", true), owner("other", false)]));
        let mut rs = item("rs", vec![]);
        rs.deleting = true;
        rs.finalizers = vec![ORPHAN.into()];
        assert_eq!(g.upsert(rs), vec![Work::Orphan("rs".into())]);
        g.remove("rs");
        let absent: HashSet<String> = ["rs".to_string()].into();
        assert_eq!(
            decide(&g, g.get("pod").unwrap(), &absent),
            Decision::RemoveRefs(vec!["rs".into()])
        );
    }
}
