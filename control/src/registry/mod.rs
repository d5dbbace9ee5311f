//! The generic registry: create, read, update and delete of any served
//! resource on etcd, with metadata, per-kind strategies, admission
//! (namespace lifecycle, defaulting, validation, pod security), allocators,
//! finalizers and graceful deletion — kube-apiserver's generic Store.

pub mod admission;
pub mod allocator;
pub mod audit_annotations;
pub mod bootstrap;
pub mod bootstrap_policy;
pub mod delete;
pub mod fieldmanager;
pub mod metadata;
pub mod pod_security;
pub mod strategy;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::api::resource::Deletion;
use crate::api::resource::Resource;
use crate::api::status::ApiError;
use crate::storage::object::{encode_for_storage, set_resource_version};
use crate::storage::{SideEffect, Store, TxnFailure, keys};
use allocator::ServiceNetwork;
use fieldmanager::Operation;

pub use delete::{DeleteOptions, Deleted};

/// How a write was asked for.
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub dry_run: bool,
    /// Field manager recorded in managedFields.
    pub manager: String,
    pub operation: Operation,
    pub subresource: Option<String>,
    /// Written by the API server itself (its bootstrap reconciler), which
    /// may record a loopback advertise address that validation refuses
    /// from clients.
    pub internal: bool,
    /// The check the API server adds for the requesting user (RBAC's
    /// escalation prevention), run on the object about to be written.
    pub user_check: Option<UserCheck>,
    /// What admission has to tell the client (`Warning` headers).
    pub warnings: Warnings,
}

/// A validating check of the object about to be written, on behalf of
/// the requesting user.
#[derive(Clone)]
pub struct UserCheck(pub Arc<CheckFn>);

/// The function of a [`UserCheck`].
pub type CheckFn = dyn Fn(&Value) -> Result<(), ApiError> + Send + Sync;

impl std::fmt::Debug for UserCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserCheck")
    }
}

/// The warnings admission returns for a write, read by the handler once the
/// registry is done. Each admission attempt replaces those of the one
/// before, so a write retried on a conflict warns once.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    fn replace(&self, warnings: Vec<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = warnings;
    }

    /// The warnings, leaving none.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl WriteContext {
    pub fn update(manager: &str, subresource: Option<&str>, dry_run: bool) -> Self {
        WriteContext {
            dry_run,
            manager: manager.to_string(),
            operation: Operation::Update,
            subresource: subresource.map(str::to_string),
            internal: false,
            user_check: None,
            warnings: Warnings::default(),
        }
    }
}

/// The registry over the store.
pub struct Registry {
    pub store: Arc<Store>,
    pub network: ServiceNetwork,
    /// The ServiceAccount admission plugin runs (kube-apiserver's
    /// default; `--disable-admission-plugins=ServiceAccount` turns it off,
    /// for an API server without the controller that creates the
    /// `default` ServiceAccounts).
    pub service_account_admission: bool,
}

/// Most attempts of an optimistic update before giving up.
const MAX_RETRIES: usize = 32;

fn parse_stored(key: &str, raw: &[u8], revision: i64) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(raw)
        .map_err(|e| ApiError::internal(format!("decoding {key}: {e}")))?;
    set_resource_version(&mut v, revision);
    Ok(v)
}

/// The object's resourceVersion as a revision.
pub fn resource_version(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
}

fn owner(obj: &Value) -> String {
    format!(
        "{}/{}",
        metadata::meta_str(obj, "namespace"),
        metadata::meta_str(obj, "name")
    )
}

impl Registry {
    /// Reads one object from etcd (a quorum read).
    pub async fn get(&self, r: &Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        let key = keys::object_key(r, ns, name);
        match self.store.etcd.get(&key).await? {
            (Some(kv), _) => parse_stored(&key, &kv.value, kv.mod_revision),
            (None, _) => Err(ApiError::not_found(r, name)),
        }
    }

    /// One object as the watch cache holds it (what a read with
    /// `resourceVersion=0` may serve), or from etcd while the cache is not
    /// live; `None` when it does not exist.
    pub async fn get_recent(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        let key = keys::object_key(r, ns, name);
        if let Some(cached) = self.store.cache(r).and_then(|c| c.get(&key)) {
            return Ok(cached.map(|o| o.value()));
        }
        Ok(self.get_raw(r, ns, name).await?.map(|(object, _)| object))
    }

    async fn get_raw(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
    ) -> Result<Option<(Value, i64)>, ApiError> {
        Ok(self
            .get_stored(r, ns, name)
            .await?
            .map(|(object, rev, _)| (object, rev)))
    }

    /// One object from etcd with its revision and whether its stored value
    /// is stale (written by an encryption provider that is no longer the
    /// first).
    async fn get_stored(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
    ) -> Result<Option<(Value, i64, bool)>, ApiError> {
        let key = keys::object_key(r, ns, name);
        match self.store.etcd.get(&key).await? {
            (Some(kv), _) => Ok(Some((
                parse_stored(&key, &kv.value, kv.mod_revision)?,
                kv.mod_revision,
                kv.stale,
            ))),
            (None, _) => Ok(None),
        }
    }

    /// Creates an object (already checked against the URL).
    pub async fn create(
        &self,
        r: &Resource,
        ns: &str,
        mut obj: Value,
        ctx: &WriteContext,
    ) -> Result<Value, ApiError> {
        obj["apiVersion"] = json!(r.api_version());
        obj["kind"] = json!(r.kind);
        metadata::prepare_create(r, &mut obj, r.strategy.tracks_generation())?;
        let name = metadata::meta_str(&obj, "name").to_string();
        self.check_namespace(r, ns, &name).await?;
        admission::default_object(r, &mut obj);
        r.strategy.prepare_create(&mut obj);
        let class = if r.strategy.runs_pod_admission() {
            self.priority_class(&obj).await?
        } else {
            None
        };
        admission::admit_create(r, &mut obj, class.as_ref())?;
        if r.strategy.runs_pod_admission() && self.service_account_admission {
            self.mount_service_account_token(r, ns, &name, &mut obj)
                .await?;
        }
        admission::normalize_service(r, &mut obj, None);
        fieldmanager::record(
            &mut obj,
            None,
            &ctx.manager,
            ctx.operation,
            ctx.subresource.as_deref(),
            &r.api_version(),
        );
        let key = keys::object_key(r, ns, &name);
        let mut avoid = BTreeSet::new();
        let mut admitted = false;
        for _ in 0..MAX_RETRIES {
            let mut attempt = obj.clone();
            let claims = if r.strategy.allocates_service_addresses() {
                allocator::assign(&self.network, &mut attempt, None, &avoid)?
            } else {
                Vec::new()
            };
            if !ctx.internal {
                admission::validate(r, &attempt, None, None)?;
                if !admitted {
                    let warnings = self.admit_pod_security(r, ns, &attempt, None, None).await?;
                    ctx.warnings.replace(warnings);
                    admitted = true;
                }
            }
            if let Some(UserCheck(check)) = &ctx.user_check {
                check(&attempt)?;
            }
            if ctx.dry_run {
                return Ok(attempt);
            }
            let effects: Vec<SideEffect> =
                claims.iter().map(|c| c.effect(&owner(&attempt))).collect();
            match self
                .store
                .etcd
                .create(&key, encode_for_storage(&attempt), &effects)
                .await?
            {
                Ok(rev) => {
                    set_resource_version(&mut attempt, rev);
                    return Ok(attempt);
                }
                Err(TxnFailure::Object(_)) => return Err(ApiError::already_exists(r, &name)),
                Err(TxnFailure::Claimed(k)) => {
                    if let Some(c) = claims.iter().find(|c| c.key == k && c.requested) {
                        return Err(c.taken(&name));
                    }
                    avoid.insert(k);
                }
            }
        }
        Err(ApiError::internal(
            "failed to allocate a service address: range is full",
        ))
    }

    /// Read-modify-write of one object: `mutate` gets the current object
    /// (None if absent) and returns the desired one; retried on conflicts.
    /// Returns the stored object and whether it was created.
    pub async fn update<F>(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        ctx: &WriteContext,
        mut mutate: F,
    ) -> Result<(Value, bool), ApiError>
    where
        F: FnMut(Option<&Value>) -> Result<Value, ApiError>,
    {
        let key = keys::object_key(r, ns, name);
        let sub = ctx.subresource.as_deref();
        let mut avoid = BTreeSet::new();
        for _ in 0..MAX_RETRIES {
            let current = self.get_stored(r, ns, name).await?;
            let Some((old, rev, stale)) = current else {
                if sub.is_some()
                    || !(r.strategy.allow_create_on_update() || ctx.operation == Operation::Apply)
                {
                    return Err(ApiError::not_found(r, name));
                }
                let new = mutate(None)?;
                return match self.create(r, ns, new, ctx).await {
                    Ok(v) => Ok((v, true)),
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    Err(e) => Err(e),
                };
            };
            let mut new = mutate(Some(&old))?;
            new["apiVersion"] = json!(r.api_version());
            new["kind"] = json!(r.kind);
            metadata::prepare_update(&mut new, &old, r.strategy.tracks_generation());
            strategy::prepare_update(r, sub, &mut new, &old);
            if metadata::is_deleting(&old) {
                let before: BTreeSet<String> = metadata::finalizers(&old).into_iter().collect();
                if metadata::finalizers(&new)
                    .iter()
                    .any(|f| !before.contains(f))
                {
                    return Err(ApiError::invalid(
                        r.kind,
                        r.group,
                        name,
                        &[crate::api::status::Cause {
                            reason: "FieldValueForbidden".into(),
                            message: "Forbidden: no new finalizers can be added if the object is being deleted".into(),
                            field: "metadata.finalizers".into(),
                        }],
                    ));
                }
            }
            admission::default_object(r, &mut new);
            if sub.is_none() {
                admission::normalize_service(r, &mut new, Some(&old));
            }
            let claims = if r.strategy.allocates_service_addresses() && sub.is_none() {
                allocator::assign(&self.network, &mut new, Some(&old), &avoid)?
            } else {
                Vec::new()
            };
            if !ctx.internal {
                admission::validate(r, &new, Some(&old), sub)?;
                let warnings = self
                    .admit_pod_security(r, ns, &new, Some(&old), sub)
                    .await?;
                ctx.warnings.replace(warnings);
            }
            if let Some(UserCheck(check)) = &ctx.user_check {
                check(&new)?;
            }
            fieldmanager::record(
                &mut new,
                Some(&old),
                &ctx.manager,
                ctx.operation,
                sub,
                &r.api_version(),
            );
            // A stale value is rewritten even when unchanged, so that
            // rewriting every object moves it to the first provider's key.
            if unchanged(&old, &new) && !stale {
                return Ok((old, false));
            }
            if ctx.dry_run {
                return Ok((new, false));
            }
            // A deleting object whose last finalizer is gone is removed.
            if metadata::is_deleting(&new)
                && metadata::finalizers(&new).is_empty()
                && !waits_for_contents(r, &new)
            {
                let effects = if r.strategy.allocates_service_addresses() {
                    allocator::releases(&old, None)
                } else {
                    Vec::new()
                };
                match self.store.etcd.delete(&key, rev, &effects).await? {
                    Ok(drev) => {
                        set_resource_version(&mut new, drev);
                        return Ok((new, false));
                    }
                    Err(_) => continue,
                }
            }
            let mut effects: Vec<SideEffect> =
                claims.iter().map(|c| c.effect(&owner(&new))).collect();
            if r.strategy.allocates_service_addresses() && sub.is_none() {
                effects.extend(allocator::releases(&old, Some(&new)));
            }
            match self
                .store
                .etcd
                .update(&key, rev, encode_for_storage(&new), &effects)
                .await?
            {
                Ok(nrev) => {
                    set_resource_version(&mut new, nrev);
                    return Ok((new, false));
                }
                Err(TxnFailure::Object(_)) => continue,
                Err(TxnFailure::Claimed(k)) => {
                    if let Some(c) = claims.iter().find(|c| c.key == k && c.requested) {
                        return Err(c.taken(name));
                    }
                    avoid.insert(k);
                }
            }
        }
        Err(ApiError::modified(r, name))
    }
}

/// Whether an object whose contents are removed before it (a Namespace)
/// still waits for its spec finalizers.
fn waits_for_contents(r: &Resource, obj: &Value) -> bool {
    r.strategy.deletion() == Deletion::Contents
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

/// Equal apart from resourceVersion and managedFields timestamps.
fn unchanged(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
                for e in mf {
                    if let Some(o) = e.as_object_mut() {
                        o.remove("time");
                    }
                }
            }
        }
        v
    };
    strip(old) == strip(new)
}
