//! Subresources other than status: pods/binding,
//! deployments|replicasets/scale (autoscaling/v1 Scale) and the `bindings`
//! resource (pods/eviction is in `eviction`, pods/log|exec|attach in
//! `pod_streams`, serviceaccounts/token in `token_request`).

use std::sync::Arc;

use http::Response;
use serde_json::{Value, json};

use super::list::accept;
use super::{Api, Body, Req, respond_json};
use crate::api::status::ApiError;
use crate::apiserver::codec::content;
use crate::apiserver::codec::patch::{self, PatchType};
use crate::apiserver::router::{ResourceRequest, Verb};
use crate::registry::fieldmanager;
use crate::registry::{WriteContext, resource_version};

fn body(r: &Req) -> Result<Value, ApiError> {
    let format = content::body_format(r.header("content-type"))?;
    content::decode(format, &r.body)
}

fn manager(r: &Req) -> String {
    r.q("fieldManager")
        .map(str::to_string)
        .unwrap_or_else(|| fieldmanager::default_manager(r.header("user-agent")))
}

pub async fn handle(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
    sub: &str,
) -> Result<Response<Body>, ApiError> {
    match (sub, rr.verb) {
        ("binding", Verb::Create) => bind(api, rr, r).await,
        ("eviction", Verb::Create) => super::eviction::evict(api, rr, r).await,
        ("token", Verb::Create) => super::token_request::create(api, rr, r).await,
        ("scale", Verb::Get) => scale_get(api, rr, r).await,
        ("scale", Verb::Update | Verb::Patch) => scale_write(api, rr, r).await,
        _ => Err(ApiError::method_not_supported(
            rr.resource,
            rr.verb.as_str(),
        )),
    }
}

/// Binds a pod to a node: sets spec.nodeName once (409 if already bound).
async fn bind(api: &Arc<Api>, rr: &ResourceRequest, r: &Req) -> Result<Response<Body>, ApiError> {
    let b = body(r)?;
    let target = b
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if target.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "",
            rr.name(),
            &[crate::api::status::Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "target.name".into(),
            }],
        ));
    }
    let causes =
        crate::registry::admission::create_causes(&crate::kinds::core::binding::RESOURCE, &b);
    if !causes.is_empty() {
        let msg = crate::validation::invalid_message("", "Binding", rr.name(), &causes);
        let status = crate::validation::invalid_status("", "Binding", rr.name(), &causes);
        return Err(ApiError::new(422, "Invalid", msg).with_details(status["details"].clone()));
    }
    let pods = rr.resource;
    let name = rr.name().to_string();
    let uid = b
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    let annotations = b.pointer("/metadata/annotations").cloned();
    // The binding registry sets spec.nodeName itself; pod update validation
    // (which forbids changing it) does not apply.
    let mut ctx = WriteContext::update(&manager(r), None, r.dry_run()?);
    ctx.internal = true;
    api.registry
        .update(pods, rr.namespace(), &name, &ctx, |cur| {
            let Some(cur) = cur else {
                return Err(ApiError::not_found(pods, &name));
            };
            if let Some(u) = &uid
                && cur.pointer("/metadata/uid").and_then(Value::as_str) != Some(u.as_str())
            {
                return Err(ApiError::conflict(pods, &name, "Precondition failed: UID in precondition does not match"));
            }
            if crate::registry::metadata::is_deleting(cur) {
                return Err(ApiError::conflict(pods, &name, "pod is being deleted, cannot be assigned to a host"));
            }
            let bound = cur.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if !bound.is_empty() {
                return Err(ApiError::conflict(pods, &name, &format!("pod {name} is already assigned to node \"{bound}\"")));
            }
            let mut next = cur.clone();
            next["spec"]["nodeName"] = json!(target);
            if let Some(Value::Object(a)) = &annotations {
                for (k, v) in a {
                    next["metadata"]["annotations"][k] = v.clone();
                }
            }
            // PodScheduled=True, as the binding registry sets it.
            let mut conds: Vec<Value> = next.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            conds.retain(|c| c.get("type") != Some(&json!("PodScheduled")));
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": crate::registry::metadata::now()}));
            next["status"]["conditions"] = json!(conds);
            Ok(next)
        })
        .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    // The Status in the representation asked for (protobuf from client-go).
    let accept = accept(rr, r).unwrap_or(content::Accept::Json);
    Ok(respond_json(201, &accept, &status))
}

fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

async fn scale_get(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let obj = api
        .registry
        .get(rr.resource, rr.namespace(), rr.name())
        .await?;
    Ok(respond_json(200, &accept, &scale_of(&obj)))
}

async fn scale_write(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let res = rr.resource;
    let name = rr.name().to_string();
    let verb = rr.verb;
    let pt = if verb == Verb::Patch {
        Some(PatchType::from_content_type(r.header("content-type"))?)
    } else {
        None
    };
    let body_bytes = r.body.clone();
    let put_body = if verb == Verb::Update {
        Some(body(r)?)
    } else {
        None
    };
    let ctx = WriteContext::update(&manager(r), None, r.dry_run()?);
    let (stored, _) = api
        .registry
        .update(res, rr.namespace(), &name, &ctx, |cur| {
            let Some(cur) = cur else {
                return Err(ApiError::not_found(res, &name));
            };
            let scale = scale_of(cur);
            let wanted = match (&put_body, pt) {
                (Some(b), _) => {
                    if let Some(want) = resource_version(b)
                        && resource_version(cur) != Some(want)
                    {
                        return Err(ApiError::modified(res, &name));
                    }
                    b.clone()
                }
                (None, Some(PatchType::Json)) => patch::json_patch(&scale, &body_bytes)?,
                (None, Some(PatchType::Merge | PatchType::Strategic)) => {
                    patch::merge_patch(&scale, &body_bytes)?
                }
                _ => return Err(ApiError::bad_request("unsupported patch type for scale")),
            };
            let replicas = wanted
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    "Scale",
                    "autoscaling",
                    &name,
                    &[crate::api::status::Cause {
                        reason: "FieldValueInvalid".into(),
                        message: format!(
                            "Invalid value: {replicas}: must be greater than or equal to 0"
                        ),
                        field: "spec.replicas".into(),
                    }],
                ));
            }
            let mut next = cur.clone();
            next["spec"]["replicas"] = json!(replicas);
            Ok(next)
        })
        .await?;
    Ok(respond_json(200, &accept, &scale_of(&stored)))
}
