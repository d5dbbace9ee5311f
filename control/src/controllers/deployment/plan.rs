//! One Deployment sync as a pure function of what the controller observed
//! (the Deployment, its ReplicaSets, and which of them still have pods) to
//! the writes it makes: create the new ReplicaSet, scale ReplicaSets, bump
//! revisions, delete old history, and the status. Mirrors
//! kube-controller-manager's `sync.go`, `rolling.go`, `recreate.go` and
//! `progress.go`, including the proportional scaling of a Deployment
//! resized mid-rollout.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::status;
use super::util::*;
use crate::controllers::podutil::controller_ref;

/// A write of the sync.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create this ReplicaSet.
    Create(Box<ReplicaSet>),
    /// Set a ReplicaSet's replicas and annotations (merged).
    Scale {
        name: String,
        from: i32,
        to: i32,
        annotations: BTreeMap<String, String>,
    },
    /// Set annotations of an existing ReplicaSet (revision bump).
    Annotate {
        name: String,
        annotations: BTreeMap<String, String>,
    },
    /// Delete an old ReplicaSet (revision history).
    Delete { name: String },
    /// Set the Deployment's revision annotation.
    Revision(String),
}

/// What the sync does.
#[derive(Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub status: DeploymentStatus,
    /// Check again after this many seconds (progress deadline, min ready).
    pub requeue_after: Option<i64>,
}

/// The observed state.
pub struct Observed<'a> {
    pub deployment: &'a Deployment,
    /// ReplicaSets controlled by the Deployment.
    pub replicasets: Vec<ReplicaSet>,
    /// Non-finished pods per ReplicaSet uid (Recreate waits for zero).
    pub pods_per_rs: HashMap<String, usize>,
    pub now: jiff::Timestamp,
}

struct Sync<'a> {
    d: &'a Deployment,
    rss: Vec<ReplicaSet>,
    new: Option<usize>,
    steps: Vec<Step>,
    status: DeploymentStatus,
    /// Conditions this sync set (applied over the calculated status).
    set_conditions: Vec<k8s_openapi::api::apps::v1::DeploymentCondition>,
    now: jiff::Timestamp,
}

fn name(rs: &ReplicaSet) -> String {
    rs.metadata.name.clone().unwrap_or_default()
}

fn created(rs: &ReplicaSet) -> (Option<jiff::Timestamp>, String) {
    (
        rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
        name(rs),
    )
}

impl<'a> Sync<'a> {
    fn set_condition(&mut self, c: k8s_openapi::api::apps::v1::DeploymentCondition) {
        status::set(&mut self.status, c.clone());
        self.set_conditions.retain(|x| x.type_ != c.type_);
        self.set_conditions.push(c);
    }

    fn olds(&self) -> Vec<usize> {
        (0..self.rss.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    fn all(&self) -> Vec<&ReplicaSet> {
        self.rss.iter().collect()
    }

    /// `scaleReplicaSet`: the size and the replica annotations.
    fn scale(&mut self, i: usize, to: i32) -> bool {
        let rs = &mut self.rss[i];
        let from = rs_replicas(rs);
        let ann = replica_annotations(self.d);
        let ann_changed = ann
            .iter()
            .any(|(k, v)| rs.metadata.annotations.as_ref().and_then(|a| a.get(k)) != Some(v));
        if from == to && !ann_changed {
            return false;
        }
        let anns = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in &ann {
            anns.insert(k.clone(), v.clone());
        }
        rs.spec.get_or_insert_with(Default::default).replicas = Some(to);
        self.steps.push(Step::Scale {
            name: name(rs),
            from,
            to,
            annotations: ann.into_iter().collect(),
        });
        from != to
    }

    /// Finds the new ReplicaSet (template equal ignoring the hash), bumping
    /// its revision when it is not the latest; creates it when asked.
    fn find_or_create_new(&mut self, create: bool, max_surge: i32) {
        let tmpl = self
            .d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut candidates: Vec<usize> = (0..self.rss.len())
            .filter(|i| {
                self.rss[*i]
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &tmpl))
            })
            .collect();
        // Oldest first, like FindNewReplicaSet.
        candidates.sort_by_key(|i| created(&self.rss[*i]));
        self.new = candidates.first().copied();
        let max_old_revision = self
            .olds()
            .iter()
            .map(|i| revision(&self.rss[*i]))
            .max()
            .unwrap_or(0);
        let new_revision = (max_old_revision + 1).to_string();
        let dname = self.d.metadata.name.clone().unwrap_or_default();
        if let Some(i) = self.new {
            let rs = &mut self.rss[i];
            let mut wanted = copied_annotations(self.d);
            let cur_rev = revision(rs);
            if cur_rev < max_old_revision + 1 {
                wanted.insert(REVISION.into(), new_revision.clone());
            }
            let changed: BTreeMap<String, String> = wanted
                .into_iter()
                .filter(|(k, v)| rs.metadata.annotations.as_ref().and_then(|a| a.get(k)) != Some(v))
                .collect();
            if !changed.is_empty() {
                rs.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .extend(changed.clone());
                self.steps.push(Step::Annotate {
                    name: name(rs),
                    annotations: changed,
                });
            }
            let rev = revision(&self.rss[i]).to_string();
            self.set_revision(&rev);
            if status::get(&self.status, "Progressing").is_none() {
                let msg = format!("Found new replica set \"{}\"", name(&self.rss[i]));
                self.set_condition(status::condition(
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    msg,
                    self.now,
                ));
            }
            return;
        }
        if !create {
            return;
        }
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&tmpl, collision);
        let mut t = tmpl.clone();
        t.metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector: LabelSelector = self
            .d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut annotations = copied_annotations(self.d);
        annotations.insert(REVISION.into(), new_revision.clone());
        annotations.extend(replica_annotations(self.d));
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{dname}-{hash}")),
                namespace: self.d.metadata.namespace.clone(),
                labels: t.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref(self.d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector,
                template: Some(t),
            }),
            status: None,
        };
        let want = if is_rolling(self.d) {
            self.new_rs_new_replicas(0, max_surge)
        } else {
            replicas(self.d)
        };
        rs.spec.as_mut().expect("set").replicas = Some(want);
        let msg = format!("Created new replica set \"{}\"", name(&rs));
        self.set_condition(status::condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            msg,
            self.now,
        ));
        self.steps.push(Step::Create(Box::new(rs.clone())));
        self.rss.push(rs);
        self.new = Some(self.rss.len() - 1);
        self.set_revision(&new_revision);
    }

    fn set_revision(&mut self, rev: &str) {
        let cur = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        if cur.map(String::as_str) != Some(rev) && rev != "0" {
            self.steps.retain(|s| !matches!(s, Step::Revision(_)));
            self.steps.push(Step::Revision(rev.to_string()));
        }
    }

    /// `NewRSNewReplicas` for a rolling update.
    fn new_rs_new_replicas(&self, new_current: i32, max_surge: i32) -> i32 {
        let r = replicas(self.d);
        let current: i32 = self.rss.iter().map(rs_replicas).sum::<i32>();
        let max_total = r + max_surge;
        if current >= max_total {
            return new_current;
        }
        let up = (max_total - current).min(r - new_current);
        new_current + up.max(0)
    }

    /// `reconcileNewReplicaSet`.
    fn reconcile_new(&mut self) -> bool {
        let Some(i) = self.new else { return false };
        let r = replicas(self.d);
        let cur = rs_replicas(&self.rss[i]);
        if cur == r {
            return false;
        }
        if cur > r {
            return self.scale(i, r);
        }
        let to = self.new_rs_new_replicas(cur, max_surge(self.d));
        self.scale(i, to)
    }

    /// `reconcileOldReplicaSets`.
    fn reconcile_old(&mut self) -> bool {
        let olds = self.olds();
        let old_pods: i32 = olds.iter().map(|i| rs_replicas(&self.rss[*i])).sum();
        if old_pods == 0 {
            return false;
        }
        let all_pods: i32 = self.rss.iter().map(rs_replicas).sum();
        let min_available = replicas(self.d) - max_unavailable(self.d);
        let new_unavailable = self
            .new
            .map(|i| rs_replicas(&self.rss[i]) - rs_available(&self.rss[i]))
            .unwrap_or(0);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let mut active_olds: Vec<usize> = olds
            .into_iter()
            .filter(|i| rs_replicas(&self.rss[*i]) > 0)
            .collect();
        active_olds.sort_by_key(|i| created(&self.rss[*i]));
        // cleanupUnhealthyReplicas: unavailable old pods go first.
        let mut cleaned = 0;
        for &i in &active_olds {
            if cleaned >= max_scaled_down {
                break;
            }
            let (spec, avail) = (rs_replicas(&self.rss[i]), rs_available(&self.rss[i]));
            if spec == 0 || spec == avail {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(spec - avail);
            self.scale(i, spec - down);
            cleaned += down;
        }
        // scaleDownOldReplicaSetsForRollingUpdate.
        let available: i32 = self.rss.iter().map(rs_available).sum();
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for &i in &active_olds {
                if scaled >= total {
                    break;
                }
                let spec = rs_replicas(&self.rss[i]);
                if spec == 0 {
                    continue;
                }
                let down = spec.min(total - scaled);
                self.scale(i, spec - down);
                scaled += down;
            }
        }
        cleaned + scaled > 0
    }

    /// `isScalingEvent`: an active ReplicaSet was sized for another replica
    /// count.
    fn is_scaling_event(&self) -> bool {
        let r = replicas(self.d);
        self.rss
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .any(|rs| annotation_i32(rs, DESIRED_REPLICAS).is_some_and(|d| d != r))
    }

    /// `scale`: resizes the ReplicaSets for a new replica count, in
    /// proportion to their sizes during a rollout.
    fn scale_all(&mut self) {
        let r = replicas(self.d);
        let active: Vec<usize> = (0..self.rss.len())
            .filter(|i| rs_replicas(&self.rss[*i]) > 0)
            .collect();
        // FindActiveOrLatest.
        let single = match active.len() {
            1 => Some(active[0]),
            0 => self
                .new
                .or_else(|| (0..self.rss.len()).max_by_key(|i| created(&self.rss[*i]))),
            _ => None,
        };
        if let Some(i) = single {
            self.scale(i, r);
            return;
        }
        // IsSaturated: the new ReplicaSet is fully available.
        if let Some(n) = self.new {
            let rs = &self.rss[n];
            if rs_replicas(rs) == r
                && annotation_i32(rs, DESIRED_REPLICAS) == Some(r)
                && rs_available(rs) == r
            {
                for i in self.olds() {
                    if rs_replicas(&self.rss[i]) > 0 {
                        self.scale(i, 0);
                    }
                }
                return;
            }
        }
        if !is_rolling(self.d) {
            return;
        }
        let surge = max_surge(self.d);
        let current: i32 = active.iter().map(|i| rs_replicas(&self.rss[*i])).sum();
        let allowed = if r > 0 { r + surge } else { 0 };
        let to_add = allowed - current;
        let mut order = active.clone();
        // Largest first; newer (adding) or older (removing) breaks ties.
        if to_add > 0 {
            order.sort_by(|a, b| {
                rs_replicas(&self.rss[*b])
                    .cmp(&rs_replicas(&self.rss[*a]))
                    .then_with(|| created(&self.rss[*b]).cmp(&created(&self.rss[*a])))
            });
        } else {
            order.sort_by(|a, b| {
                rs_replicas(&self.rss[*b])
                    .cmp(&rs_replicas(&self.rss[*a]))
                    .then_with(|| created(&self.rss[*a]).cmp(&created(&self.rss[*b])))
            });
        }
        let mut sizes: HashMap<usize, i32> = HashMap::new();
        let mut added = 0;
        if to_add != 0 {
            for &i in &order {
                let rs = &self.rss[i];
                let fraction = {
                    if r == 0 {
                        -rs_replicas(rs)
                    } else {
                        let annotated = annotation_i32(rs, MAX_REPLICAS).unwrap_or_else(|| {
                            self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0)
                        });
                        if annotated == 0 {
                            0
                        } else {
                            let new_size = ((rs_replicas(rs) as f64) * (r + surge) as f64
                                / annotated as f64)
                                .round() as i32;
                            new_size - rs_replicas(rs)
                        }
                    }
                };
                let allowed_left = to_add - added;
                let p = if to_add > 0 {
                    fraction.min(allowed_left)
                } else {
                    fraction.max(allowed_left)
                };
                sizes.insert(i, rs_replicas(rs) + p);
                added += p;
            }
        }
        for (k, &i) in order.iter().enumerate() {
            let mut size = sizes.get(&i).copied().unwrap_or(rs_replicas(&self.rss[i]));
            if k == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale(i, size);
        }
    }

    /// `cleanupDeployment`: old ReplicaSets beyond revisionHistoryLimit.
    fn cleanup(&mut self) {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let mut cleanable: Vec<usize> = self
            .olds()
            .into_iter()
            .filter(|i| {
                let rs = &self.rss[*i];
                rs_replicas(rs) == 0
                    && rs_actual(rs) == 0
                    && rs.metadata.deletion_timestamp.is_none()
                    && rs
                        .status
                        .as_ref()
                        .and_then(|s| s.observed_generation)
                        .unwrap_or(0)
                        >= rs.metadata.generation.unwrap_or(0)
            })
            .collect();
        if cleanable.len() <= limit {
            return;
        }
        cleanable.sort_by_key(|i| (revision(&self.rss[*i]), created(&self.rss[*i])));
        let n = cleanable.len() - limit;
        for &i in &cleanable[..n] {
            self.steps.push(Step::Delete {
                name: name(&self.rss[i]),
            });
        }
    }

    fn finish(self, with_rollout: bool) -> Plan {
        let new_rs = self.new.map(|i| self.rss[i].clone());
        let all = self.all();
        let mut st = status::calculate(self.d, &all, new_rs.as_ref(), self.now);
        // Conditions set during the sync (new ReplicaSet created/found,
        // paused/resumed).
        for c in &self.set_conditions {
            status::set(&mut st, c.clone());
        }
        let requeue = if with_rollout {
            status::rollout(self.d, &mut st, new_rs.as_ref(), self.now)
        } else {
            None
        };
        Plan {
            steps: self.steps,
            status: st,
            requeue_after: requeue,
        }
    }
}

/// Computes one sync.
pub fn sync(o: Observed<'_>) -> Plan {
    let d = o.deployment;
    let mut s = Sync {
        d,
        rss: o.replicasets,
        new: None,
        steps: Vec::new(),
        status: d.status.clone().unwrap_or_default(),
        set_conditions: Vec::new(),
        now: o.now,
    };
    if d.metadata.deletion_timestamp.is_some() {
        s.find_or_create_new(false, 0);
        return s.finish(false);
    }
    let paused = d.spec.as_ref().and_then(|x| x.paused).unwrap_or(false);
    let cur_progress = status::get(&s.status, "Progressing").and_then(|c| c.reason.clone());
    if paused && cur_progress.as_deref() != Some("DeploymentPaused") {
        s.set_condition(status::condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            o.now,
        ));
    } else if !paused && cur_progress.as_deref() == Some("DeploymentPaused") {
        s.set_condition(status::condition(
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed".into(),
            o.now,
        ));
    }
    if paused || s.is_scaling_event() {
        s.find_or_create_new(false, 0);
        s.scale_all();
        if paused && s.new.is_some() {
            let new_rs = s.new.map(|i| s.rss[i].clone());
            let all = s.all();
            if status::complete(d, &status::calculate(d, &all, new_rs.as_ref(), o.now)) {
                s.cleanup();
            }
        }
        return s.finish(!paused);
    }
    if is_rolling(d) {
        s.find_or_create_new(true, max_surge(d));
        if s.reconcile_new() || s.reconcile_old() {
            return s.finish(true);
        }
        let new_rs = s.new.map(|i| s.rss[i].clone());
        let all = s.all();
        if status::complete(d, &status::calculate(d, &all, new_rs.as_ref(), o.now)) {
            s.cleanup();
        }
        return s.finish(true);
    }
    // Recreate.
    s.find_or_create_new(false, 0);
    let mut scaled_down = false;
    for i in s.olds() {
        if rs_replicas(&s.rss[i]) > 0 {
            scaled_down |= s.scale(i, 0);
        }
    }
    if scaled_down {
        return s.finish(true);
    }
    let old_running = s.olds().iter().any(|i| {
        let rs = &s.rss[*i];
        rs_actual(rs) > 0
            || rs
                .metadata
                .uid
                .as_ref()
                .and_then(|u| o.pods_per_rs.get(u))
                .copied()
                .unwrap_or(0)
                > 0
    });
    if old_running {
        return s.finish(true);
    }
    if s.new.is_none() {
        s.find_or_create_new(true, 0);
    }
    if let Some(i) = s.new {
        s.scale(i, replicas(d));
    }
    let new_rs = s.new.map(|i| s.rss[i].clone());
    let all = s.all();
    if status::complete(d, &status::calculate(d, &all, new_rs.as_ref(), o.now)) {
        s.cleanup();
    }
    s.finish(true)
}

#[cfg(test)]
mod tests;
