//! pods/eviction (kube-apiserver's `EvictionREST`): a graceful delete of
//! the pod that honours the PodDisruptionBudget selecting it. A terminal,
//! pending or deleting pod goes at once; a pod under one budget goes only
//! when the budget's `status.disruptionsAllowed` lets it, which the
//! eviction decrements (recording the pod in `status.disruptedPods`) by an
//! optimistic write of the budget's status before the pod is deleted; an
//! unready pod follows the budget's `unhealthyPodEvictionPolicy`.

use std::sync::Arc;

use http::Response;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use super::list::accept;
use super::{Api, Body, Req, respond_json};
use crate::api::status::ApiError;
use crate::apiserver::codec::content;
use crate::apiserver::router::ResourceRequest;
use crate::kinds::policy::RESOURCE as PDBS;
use crate::registry::{DeleteOptions, WriteContext, resource_version};
use crate::storage::keys;
use crate::storage::object::decode;
use crate::validation::selector::from_label_selector;

/// The message of an eviction a budget refuses.
pub const VIOLATES_BUDGET: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";

/// `MaxDisruptedPodSize`: evictions the controller has not yet seen.
const MAX_DISRUPTED_PODS: usize = 2000;

/// Attempts of the pod's delete when it changes under the eviction
/// (`EvictionsRetry`'s steps).
const RETRIES: usize = 20;

/// 429 TooManyRequests with a `DisruptionBudget` cause.
fn too_many_requests(cause: String, retry_after: i64) -> ApiError {
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    ApiError::new(429, "TooManyRequests", VIOLATES_BUDGET).with_details(details)
}

/// `createTooManyRequestsError`: the budget's status is behind its spec.
fn still_processing(pdb: &str) -> ApiError {
    too_many_requests(
        format!("The disruption budget {pdb} is still being processed by the server."),
        10,
    )
}

/// The budget kept changing under the eviction (`NewTimeoutError`).
fn conflicts(pdb: &str) -> ApiError {
    ApiError::new(
        504,
        "Timeout",
        format!("Timeout: couldn't update PodDisruptionBudget \"{pdb}\" due to conflicts"),
    )
    .with_details(json!({"retryAfterSeconds": 10}))
}

fn forbidden(pdb: &str, why: &str) -> ApiError {
    ApiError::new(
        403,
        "Forbidden",
        format!("poddisruptionbudget.policy \"{pdb}\" is forbidden: {why}"),
    )
    .with_details(json!({"name": pdb, "group": "policy", "kind": "poddisruptionbudget"}))
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn deleting(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// `canIgnorePDB`: a finished, pending or deleting pod is no disruption.
pub fn can_ignore_budget(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending" | "") || deleting(pod)
}

/// `shouldEnforceResourceVersion`: a pod that may still become Ready is
/// deleted only at the version the decision saw.
pub fn should_enforce_resource_version(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !deleting(pod)
}

/// `IsPodReady`.
pub fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether `pdb` selects `pod`: a budget without a selector, with an empty
/// or an invalid one guards nothing (`getPodDisruptionBudgets`).
pub fn selects(pdb: &Value, pod: &Value) -> bool {
    let Some(sel) = pdb
        .pointer("/spec/selector")
        .and_then(|s| serde_json::from_value::<LabelSelector>(s.clone()).ok())
    else {
        return false;
    };
    let Ok(sel) = from_label_selector(&sel) else {
        return false;
    };
    let labels = pod
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    !sel.is_empty() && sel.matches(&labels)
}

fn status_int(pdb: &Value, field: &str) -> i64 {
    pdb.pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Whether an unready pod may go without spending the budget: its policy
/// is `AlwaysAllow`, or the guarded application is healthy anyway.
pub fn unhealthy_may_go(pdb: &Value) -> bool {
    if pdb.pointer("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow")) {
        return true;
    }
    let desired = status_int(pdb, "desiredHealthy");
    status_int(pdb, "currentHealthy") >= desired && desired > 0
}

/// `checkAndDecrement`: the budget after the pod's eviction, or why it is
/// refused. The pod is recorded in `disruptedPods` at `now` unless the
/// eviction is a dry run.
pub fn check_and_decrement(
    pdb: &Value,
    pod: &str,
    dry_run: bool,
    now: &str,
) -> Result<Value, ApiError> {
    let name = pdb
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let generation = pdb
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if status_int(pdb, "observedGeneration") < generation {
        return Err(still_processing(name));
    }
    let allowed = status_int(pdb, "disruptionsAllowed");
    if allowed < 0 {
        return Err(forbidden(name, "pdb disruptions allowed is negative"));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(forbidden(
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status_int(pdb, "desiredHealthy"),
                status_int(pdb, "currentHealthy")
            ),
            0,
        ));
    }
    let mut next = pdb.clone();
    next["status"]["disruptionsAllowed"] = json!(allowed - 1);
    if allowed == 1 {
        insufficient_pods(&mut next, now);
    }
    if !dry_run {
        if !next["status"]["disruptedPods"].is_object() {
            next["status"]["disruptedPods"] = json!({});
        }
        next["status"]["disruptedPods"][pod] = json!(now);
    }
    Ok(next)
}

/// `UpdateDisruptionAllowedCondition` once no disruption is left: the
/// `DisruptionAllowed` condition is False for `InsufficientPods`.
fn insufficient_pods(pdb: &mut Value, now: &str) {
    let observed = status_int(pdb, "observedGeneration");
    let mut conds: Vec<Value> = pdb
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match conds.iter_mut().find(|c| c["type"] == "DisruptionAllowed") {
        Some(c) => {
            if c["status"] != "False" {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!("False");
            c["reason"] = json!("InsufficientPods");
            c["message"] = json!("");
            c["observedGeneration"] = json!(observed);
        }
        None => conds.push(json!({
            "type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
            "message": "", "observedGeneration": observed, "lastTransitionTime": now,
        })),
    }
    pdb["status"]["conditions"] = json!(conds);
}

fn success(rr: &ResourceRequest, r: &Req) -> Response<Body> {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    // The Status in the representation asked for (protobuf from client-go).
    let accept = accept(rr, r).unwrap_or(content::Accept::Json);
    respond_json(201, &accept, &status)
}

/// The budgets of the pod's namespace that select it.
async fn budgets_of(api: &Arc<Api>, pod: &Value, ns: &str) -> Result<Vec<Value>, ApiError> {
    let prefix = keys::list_prefix(&PDBS, Some(ns));
    let page = api
        .registry
        .store
        .etcd
        .range(&prefix, &keys::prefix_end(&prefix), 0, 0, false)
        .await?;
    Ok(page
        .kvs
        .iter()
        .filter_map(|kv| decode(&kv.key, &kv.value, kv.mod_revision, &[]))
        .map(|o| o.value())
        .filter(|pdb| selects(pdb, pod))
        .collect())
}

/// `addConditionAndDeletePod`: marks the pod `DisruptionTarget` (unless a
/// dry run), then deletes it.
async fn mark_and_delete(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    mut opts: DeleteOptions,
) -> Result<(), ApiError> {
    let pods = rr.resource;
    let name = rr.name().to_string();
    if !opts.dry_run {
        let mut ctx = WriteContext::update("kube-apiserver", Some("status"), false);
        ctx.internal = true;
        let pre = (
            opts.precondition_uid.clone(),
            opts.precondition_resource_version.clone(),
        );
        let (stored, _) = api
            .registry
            .update(pods, rr.namespace(), &name, &ctx, |cur| {
                let Some(cur) = cur else {
                    return Err(ApiError::not_found(pods, &name));
                };
                if let Some(uid) = &pre.0
                    && cur.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str())
                {
                    return Err(ApiError::conflict(pods, &name, "Precondition failed: UID in precondition does not match"));
                }
                if let Some(rv) = pre.1.as_deref().filter(|rv| !rv.is_empty()) {
                    let had = resource_version(cur).map(|v| v.to_string()).unwrap_or_default();
                    if had != rv {
                        return Err(ApiError::conflict(pods, &name, &format!("the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({had}). The object might have been modified")));
                    }
                }
                let mut next = cur.clone();
                let mut conds: Vec<Value> = next.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
                let cond = json!({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"});
                match conds.iter_mut().find(|c| c["type"] == "DisruptionTarget") {
                    Some(c) if c["status"] == "True" && c["reason"] == cond["reason"] && c["message"] == cond["message"] => {}
                    Some(c) => {
                        let since = if c["status"] == "True" { c["lastTransitionTime"].clone() } else { json!(crate::registry::metadata::now()) };
                        *c = cond;
                        c["lastTransitionTime"] = since;
                    }
                    None => {
                        let mut c = cond;
                        c["lastTransitionTime"] = json!(crate::registry::metadata::now());
                        conds.push(c);
                    }
                }
                next["status"]["conditions"] = json!(conds);
                Ok(next)
            })
            .await?;
        if opts.precondition_resource_version.is_some() {
            opts.precondition_resource_version = resource_version(&stored).map(|v| v.to_string());
        }
    }
    api.registry
        .delete(pods, rr.namespace(), &name, &opts)
        .await?;
    Ok(())
}

/// Evicts a pod.
pub async fn evict(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let format = content::body_format(r.header("content-type"))?;
    let b = content::decode(format, &r.body)?;
    if b.pointer("/metadata/name").and_then(Value::as_str) != Some(rr.name()) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    super::delete::node_may_remove(api, rr, r, true).await?;
    let mut original = DeleteOptions::from_request(b.get("deleteOptions"), &r.query)?;
    if r.dry_run()? {
        original.dry_run = true;
    }
    let pods = rr.resource;
    let ns = rr.namespace();
    let rv_unset = original.precondition_resource_version.is_none();
    // A pod the budgets need not guard is deleted at the version seen.
    let mut attempts = 0;
    let pod = loop {
        attempts += 1;
        let pod = api.registry.get(pods, ns, rr.name()).await?;
        if !can_ignore_budget(&pod) {
            break pod;
        }
        let mut opts = original.clone();
        if should_enforce_resource_version(&pod) && rv_unset {
            opts.precondition_resource_version = resource_version(&pod).map(|v| v.to_string());
        }
        match mark_and_delete(api, rr, opts).await {
            Ok(()) => return Ok(success(rr, r)),
            Err(e) if e.code == 409 && rv_unset && attempts < RETRIES => continue,
            Err(e) => return Err(e),
        }
    };
    let budgets = budgets_of(api, &pod, ns).await?;
    if budgets.len() > 1 {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            "code": 500});
        let accept = accept(rr, r).unwrap_or(content::Accept::Json);
        return Ok(respond_json(500, &accept, &status));
    }
    let mut opts = original.clone();
    let mut pdb_name = String::new();
    let mut pin_version = false;
    if let Some(pdb) = budgets.first() {
        pdb_name = pdb
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !is_ready(&pod) && unhealthy_may_go(pdb) {
            pin_version = true;
        } else {
            let ctx = WriteContext::update("kube-apiserver", Some("status"), original.dry_run);
            let pod_name = rr.name().to_string();
            let now = crate::registry::metadata::now();
            api.registry
                .update(&PDBS, ns, &pdb_name, &ctx, |cur| match cur {
                    Some(cur) => check_and_decrement(cur, &pod_name, original.dry_run, &now),
                    None => Err(ApiError::not_found(&PDBS, &pdb_name)),
                })
                .await
                .map_err(|e| {
                    if e.code == 409 {
                        conflicts(&pdb_name)
                    } else {
                        e
                    }
                })?;
        }
    }
    if pin_version {
        opts.precondition_resource_version = resource_version(&pod).map(|v| v.to_string());
    }
    match mark_and_delete(api, rr, opts).await {
        Ok(()) => Ok(success(rr, r)),
        Err(e) if e.code == 409 && pin_version && rv_unset => Err(still_processing(&pdb_name)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": 1},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": status})
    }

    fn cause(e: &ApiError) -> String {
        e.details.as_ref().unwrap()["causes"][0]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_budget_with_room_is_decremented_and_records_the_pod() {
        let now = "2024-01-01T00:00:00Z";
        let p = pdb(
            json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3,
            "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods", "message": "", "observedGeneration": 1, "lastTransitionTime": "2023-01-01T00:00:00Z"}]}),
        );
        let next = check_and_decrement(&p, "web-1", false, now).unwrap();
        assert_eq!(next["status"]["disruptionsAllowed"], 0);
        assert_eq!(next["status"]["disruptedPods"], json!({"web-1": now}));
        let c = &next["status"]["conditions"][0];
        assert_eq!(
            (&c["status"], &c["reason"], &c["lastTransitionTime"]),
            (&json!("False"), &json!("InsufficientPods"), &json!(now))
        );
        // A dry run spends nothing it records.
        let dry = check_and_decrement(&p, "web-1", true, now).unwrap();
        assert_eq!(dry["status"]["disruptionsAllowed"], 0);
        assert!(dry["status"].get("disruptedPods").is_none());
    }

    #[test]
    fn an_exhausted_or_stale_budget_refuses_with_429() {
        let p = pdb(
            json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 3}),
        );
        let e = check_and_decrement(&p, "web-1", false, "").unwrap_err();
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        assert_eq!(e.message, VIOLATES_BUDGET);
        assert_eq!(
            cause(&e),
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
        assert_eq!(
            e.details.as_ref().unwrap()["causes"][0]["reason"],
            "DisruptionBudget"
        );
        let stale = pdb(json!({"observedGeneration": 0, "disruptionsAllowed": 1}));
        let e = check_and_decrement(&stale, "web-1", false, "").unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(
            cause(&e),
            "The disruption budget web is still being processed by the server."
        );
        assert_eq!(e.details.as_ref().unwrap()["retryAfterSeconds"], 10);
        let negative = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": -1}));
        let e = check_and_decrement(&negative, "web-1", false, "").unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
        );
    }

    #[test]
    fn which_pods_and_budgets_take_part() {
        let pod = |phase: &str, ready: bool| {
            json!({"metadata": {"name": "web-1", "labels": {"app": "web"}},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
        };
        assert!(can_ignore_budget(&pod("Pending", false)));
        assert!(can_ignore_budget(&pod("Succeeded", false)));
        assert!(!can_ignore_budget(&pod("Running", true)));
        assert!(should_enforce_resource_version(&pod("Pending", false)));
        assert!(!should_enforce_resource_version(&pod("Failed", false)));
        assert!(is_ready(&pod("Running", true)) && !is_ready(&pod("Running", false)));
        let p = pdb(json!({}));
        assert!(selects(&p, &pod("Running", true)));
        let mut other = p.clone();
        other["spec"]["selector"] = json!({"matchLabels": {"app": "db"}});
        assert!(!selects(&other, &pod("Running", true)));
        other["spec"]["selector"] = json!({});
        assert!(
            !selects(&other, &pod("Running", true)),
            "an empty selector guards nothing"
        );
        other["spec"]["selector"] = Value::Null;
        assert!(!selects(&other, &pod("Running", true)));
    }

    #[test]
    fn unhealthy_pods_follow_the_policy() {
        let healthy = pdb(json!({"currentHealthy": 2, "desiredHealthy": 2}));
        let short = pdb(json!({"currentHealthy": 1, "desiredHealthy": 2}));
        assert!(unhealthy_may_go(&healthy));
        assert!(!unhealthy_may_go(&short));
        assert!(!unhealthy_may_go(&pdb(
            json!({"currentHealthy": 0, "desiredHealthy": 0})
        )));
        let mut always = short.clone();
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert!(unhealthy_may_go(&always));
        let mut if_healthy = short;
        if_healthy["spec"]["unhealthyPodEvictionPolicy"] = json!("IfHealthyBudget");
        assert!(!unhealthy_may_go(&if_healthy));
    }
}
