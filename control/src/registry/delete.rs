//! Deletion as kube-apiserver does it: preconditions, graceful deletion of
//! pods bound to a node, finalizers and propagation policies (the object
//! gets a deletionTimestamp and stays until its finalizers are removed),
//! namespaces entering Terminating, and immediate deletion otherwise.

use serde_json::{Value, json};

use super::metadata::{self, finalizers, is_deleting};
use super::{Registry, allocator, resource_version};
use crate::api::resource::Deletion;
use crate::api::resource::Resource;
use crate::api::status::ApiError;
use crate::storage::keys;
use crate::storage::object::{encode_for_storage, set_resource_version};

/// meta.k8s.io/v1 DeleteOptions.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Merges a DeleteOptions body and the query parameters.
    pub fn from_request(
        body: Option<&Value>,
        query: &std::collections::HashMap<String, String>,
    ) -> Result<Self, ApiError> {
        let mut o = DeleteOptions::default();
        if let Some(b) = body {
            o.grace_period_seconds = b.get("gracePeriodSeconds").and_then(Value::as_i64);
            o.propagation_policy = b
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.orphan_dependents = b.get("orphanDependents").and_then(Value::as_bool);
            o.precondition_uid = b
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.precondition_resource_version = b
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.dry_run = b
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        }
        if let Some(g) = query.get("gracePeriodSeconds") {
            o.grace_period_seconds =
                Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?);
        }
        if let Some(p) = query.get("propagationPolicy") {
            o.propagation_policy = Some(p.clone());
        }
        if query.get("dryRun").is_some_and(|v| v == "All") {
            o.dry_run = true;
        }
        if let Some(p) = &o.propagation_policy
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "",
                "",
                &[crate::api::status::Cause {
                    reason: "FieldValueNotSupported".into(),
                    message: format!(
                        "Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                    field: "propagationPolicy".into(),
                }],
            ));
        }
        Ok(o)
    }

    fn policy(&self) -> &str {
        match (&self.propagation_policy, self.orphan_dependents) {
            (Some(p), _) => p.as_str(),
            (None, Some(true)) => "Orphan",
            _ => "Background",
        }
    }
}

/// What a delete did.
#[derive(Debug)]
pub enum Deleted {
    /// Removed from storage; the last state.
    Gone(Value),
    /// Marked for deletion (finalizers, grace period); the current state.
    Pending(Value),
}

fn pod_grace(pod: &Value, requested: Option<i64>) -> i64 {
    let bound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let terminal = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !bound || terminal {
        return 0;
    }
    requested
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

impl Registry {
    /// Deletes one object.
    pub async fn delete(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let key = keys::object_key(r, ns, name);
        for _ in 0..super::MAX_RETRIES {
            let Some((cur, rev)) = self.get_raw(r, ns, name).await? else {
                return Err(ApiError::not_found(r, name));
            };
            if let Some(uid) = &opts.precondition_uid {
                let have = metadata::meta_str(&cur, "uid");
                if have != uid {
                    return Err(ApiError::conflict(
                        r,
                        name,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"
                        ),
                    ));
                }
            }
            if let Some(want) = &opts.precondition_resource_version {
                let have = resource_version(&cur)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                if &have != want {
                    return Err(ApiError::conflict(
                        r,
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have}"
                        ),
                    ));
                }
            }
            let mut next = cur.clone();
            let mut pending = false;
            if r.strategy.deletion() == Deletion::Graceful {
                let grace = pod_grace(&cur, opts.grace_period_seconds);
                let current_grace = cur
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                if grace > 0 && current_grace.is_none_or(|g| grace < g) {
                    let m = metadata::meta_mut(&mut next);
                    m.insert("deletionTimestamp".into(), json!(metadata::now_plus(grace)));
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    pending = true;
                } else if grace > 0 {
                    return Ok(Deleted::Pending(cur));
                }
            }
            if r.strategy.deletion() == Deletion::Contents {
                if !is_deleting(&next) {
                    metadata::meta_mut(&mut next)
                        .insert("deletionTimestamp".into(), json!(metadata::now()));
                    metadata::meta_mut(&mut next)
                        .insert("deletionGracePeriodSeconds".into(), json!(0));
                }
                next["status"] = json!({"phase": "Terminating"});
                let spec_fin = next
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if spec_fin {
                    pending = true;
                }
            }
            let policy = opts.policy();
            let mut fins = finalizers(&next);
            let wanted = match policy {
                "Foreground" => Some("foregroundDeletion"),
                "Orphan" => Some("orphan"),
                _ => None,
            };
            if let Some(f) = wanted
                && !fins.iter().any(|x| x == f)
                && !is_deleting(&cur)
            {
                fins.push(f.to_string());
                metadata::meta_mut(&mut next).insert("finalizers".into(), json!(fins));
            }
            if !fins.is_empty() {
                if !is_deleting(&next) {
                    let m = metadata::meta_mut(&mut next);
                    m.insert("deletionTimestamp".into(), json!(metadata::now()));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                }
                pending = true;
            }
            if pending {
                if next == cur {
                    return Ok(Deleted::Pending(cur));
                }
                if opts.dry_run {
                    return Ok(Deleted::Pending(next));
                }
                match self
                    .store
                    .etcd
                    .update(&key, rev, encode_for_storage(&next), &[])
                    .await?
                {
                    Ok(nrev) => {
                        set_resource_version(&mut next, nrev);
                        return Ok(Deleted::Pending(next));
                    }
                    Err(_) => continue,
                }
            }
            if opts.dry_run {
                return Ok(Deleted::Gone(cur));
            }
            let effects = if r.strategy.allocates_service_addresses() {
                allocator::releases(&cur, None)
            } else {
                Vec::new()
            };
            match self.store.etcd.delete(&key, rev, &effects).await? {
                Ok(drev) => {
                    let mut gone = cur;
                    set_resource_version(&mut gone, drev);
                    return Ok(Deleted::Gone(gone));
                }
                Err(_) => continue,
            }
        }
        Err(ApiError::modified(r, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bound_running_pods_are_graceful() {
        let unbound = json!({"spec": {}});
        assert_eq!(pod_grace(&unbound, None), 0);
        let bound = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 10}, "status": {"phase": "Running"}});
        assert_eq!(pod_grace(&bound, None), 10);
        assert_eq!(pod_grace(&bound, Some(0)), 0);
        let done = json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert_eq!(pod_grace(&done, None), 0);
    }

    #[test]
    fn options_from_body_and_query() {
        let body = json!({"kind": "DeleteOptions", "gracePeriodSeconds": 5, "preconditions": {"uid": "u"}, "propagationPolicy": "Foreground"});
        let mut q = std::collections::HashMap::new();
        q.insert("gracePeriodSeconds".to_string(), "0".to_string());
        let o = DeleteOptions::from_request(Some(&body), &q).unwrap();
        assert_eq!(o.grace_period_seconds, Some(0));
        assert_eq!(o.precondition_uid.as_deref(), Some("u"));
        assert_eq!(o.policy(), "Foreground");
        let bad = json!({"propagationPolicy": "Sideways"});
        assert_eq!(
            DeleteOptions::from_request(Some(&bad), &Default::default())
                .unwrap_err()
                .code,
            422
        );
    }
}
