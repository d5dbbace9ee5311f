//! POST (create), PUT (update) and PATCH (JSON, merge, strategic and
//! server-side apply) of objects and of their status.

use std::sync::Arc;

use http::{HeaderValue, Response};
use serde_json::Value;

use super::list::{accept, include_object, storage_resource};
use super::output;
use super::{Api, Body, Req};
use crate::api::resource::Resource;
use crate::api::status::ApiError;
use crate::apiserver::auth::{csr_admission, escalation, node_restriction};
use crate::apiserver::codec::content;
use crate::apiserver::codec::patch::{self, PatchType};
use crate::apiserver::router::ResourceRequest;
use crate::registry::fieldmanager::{self, Operation, apply};
use crate::registry::{UserCheck, WriteContext, metadata, resource_version};
use crate::schema;

/// `fieldValidation`: what to do with unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    fn from_request(r: &Req) -> Result<Self, ApiError> {
        match r.q("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(o) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {o}. Supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// The field manager of a write.
fn manager(r: &Req, apply: bool) -> Result<String, ApiError> {
    match r.q("fieldManager") {
        Some(m) if m.len() > 128 => Err(ApiError::bad_request(
            "fieldManager: Too long: may not be longer than 128",
        )),
        Some(m) => Ok(m.to_string()),
        None if apply => Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml requires fieldManager to be set",
        )),
        None => Ok(fieldmanager::default_manager(r.header("user-agent"))),
    }
}

/// Removes `spec.foo`, `a.b[0].c` style paths from an object.
fn drop_path(v: &mut Value, path: &str) {
    let mut steps: Vec<String> = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        while let Some(i) = rest.find('[') {
            if i > 0 {
                steps.push(rest[..i].to_string());
            }
            let end = rest[i..].find(']').map(|e| i + e).unwrap_or(rest.len() - 1);
            steps.push(rest[i..=end].to_string());
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            steps.push(rest.to_string());
        }
    }
    fn walk(v: &mut Value, steps: &[String]) {
        let Some((first, rest)) = steps.split_first() else {
            return;
        };
        if rest.is_empty() {
            if let Some(m) = v.as_object_mut() {
                m.remove(first);
            }
            return;
        }
        let next = if let Some(idx) = first.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            idx.parse::<usize>().ok().and_then(|i| v.get_mut(i))
        } else {
            v.get_mut(first)
        };
        if let Some(n) = next {
            walk(n, rest);
        }
    }
    walk(v, &steps);
}

/// Decodes and checks a body for `r`: apiVersion/kind must match the URL,
/// unknown fields handled per fieldValidation. Returns the object and
/// warnings for the `Warning` header.
fn decode_object(
    res: &Resource,
    r: &Req,
    kind: &str,
    group: &str,
    version: &str,
) -> Result<(Value, Vec<String>), ApiError> {
    let format = content::body_format(r.header("content-type"))?;
    let mut obj = content::decode(format, &r.body)?;
    check_type(&obj, kind, group, version)?;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the object provided is unrecognized"));
    }
    let warnings = unknown_fields(&mut obj, r, kind, group, version)?;
    let _ = res;
    Ok((obj, warnings))
}

fn check_type(obj: &Value, kind: &str, group: &str, version: &str) -> Result<(), ApiError> {
    let expected = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let k = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if !av.is_empty() && av != expected {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({expected})"
        )));
    }
    if !k.is_empty() && k != kind {
        let v = av.rsplit('/').next().unwrap_or(version);
        return Err(ApiError::bad_request(format!(
            "{k} in version \"{v}\" cannot be handled as a {kind}: the object kind \"{k}\" does not match the expected kind \"{kind}\""
        )));
    }
    Ok(())
}

fn unknown_fields(
    obj: &mut Value,
    r: &Req,
    kind: &str,
    group: &str,
    version: &str,
) -> Result<Vec<String>, ApiError> {
    let mode = FieldValidation::from_request(r)?;
    let unknown = schema::unknown_fields(group, version, kind, obj);
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    if mode == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {}",
            schema::strict_decoding_message(&unknown)
        )));
    }
    for p in &unknown {
        drop_path(obj, p);
    }
    Ok(if mode == FieldValidation::Warn {
        unknown
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect()
    } else {
        Vec::new()
    })
}

fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

fn stored_form(rr: &ResourceRequest, v: Value) -> Value {
    rr.resource.strategy.stored_form(v)
}

fn served_form(rr: &ResourceRequest, v: &Value) -> Value {
    rr.resource.strategy.served_form(v.clone())
}

/// POST.
pub async fn create(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = rr.resource;
    let accept = accept(rr, r)?;
    if rr.name.is_some() {
        return Err(ApiError::method_not_supported(res, "create"));
    }
    let (mut obj, mut warnings) = decode_object(res, r, res.kind, res.group, res.version)?;
    metadata::check_identity(res, &mut obj, rr.namespace(), None)?;
    if res.strategy.records_requester() {
        record_requester(&mut obj, &r.user);
    }
    let obj = stored_form(rr, obj);
    let ctx = context(api, rr, r, &manager(r, false)?, None, r.dry_run()?);
    let created = api
        .registry
        .create(storage_resource(res), rr.namespace(), obj, &ctx)
        .await?;
    warnings.extend(ctx.warnings.take());
    Ok(with_warnings(
        output::object(201, res, &accept, created, include_object(r)?),
        &warnings,
    ))
}

/// `spec.username`, `uid`, `groups` and `extra` of the requesting user,
/// whatever the client sent.
fn record_requester(obj: &mut Value, user: &crate::apiserver::auth::User) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = serde_json::json!({});
    }
    let spec = &mut obj["spec"];
    spec["username"] = serde_json::json!(user.name);
    spec["groups"] = serde_json::json!(user.groups);
    match spec.as_object_mut() {
        Some(spec) if user.uid.is_empty() => {
            spec.remove("uid");
        }
        _ => spec["uid"] = serde_json::json!(user.uid),
    }
    match spec.as_object_mut() {
        Some(spec) if user.extra.is_empty() => {
            spec.remove("extra");
        }
        _ => spec["extra"] = serde_json::json!(user.extra),
    }
}

/// The write's context, with the checks of the requesting user: RBAC's
/// escalation prevention on role and binding writes, NodeRestriction on a
/// node's writes, the CertificateSigningRequest plugins.
fn context(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
    manager: &str,
    sub: Option<&str>,
    dry_run: bool,
) -> WriteContext {
    let mut ctx = WriteContext::update(manager, sub, dry_run);
    let escalates = rr.resource.group == "rbac.authorization.k8s.io";
    let restricted = node_restriction::applies(&r.user, rr.resource);
    let certificates = csr_admission::applies(rr.resource);
    if escalates || restricted || certificates {
        let authorizer = api.authorizer.clone();
        let user = r.user.clone();
        let (res, verb) = (rr.resource, rr.verb);
        let subresource = rr.subresource.clone();
        let namespace = rr.namespace().to_owned();
        ctx.user_check = Some(UserCheck(Arc::new(move |object| {
            if restricted {
                node_restriction::check_write(&user, res, verb, subresource.as_deref(), object)?;
            }
            if escalates {
                escalation::check(&authorizer, &user, res.plural, &namespace, object)?;
            }
            if certificates {
                csr_admission::check(
                    &authorizer,
                    &user,
                    res,
                    verb,
                    subresource.as_deref(),
                    object,
                )?;
            }
            Ok(())
        })));
    }
    ctx
}

/// PUT of an object, its status, or a namespace's finalizers.
pub async fn update(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = rr.resource;
    let accept = accept(rr, r)?;
    let (mut obj, mut warnings) = decode_object(res, r, res.kind, res.group, res.version)?;
    metadata::check_identity(res, &mut obj, rr.namespace(), rr.name.as_deref())?;
    let want_rv = resource_version(&obj);
    if obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
        && want_rv.is_none()
    {
        return Err(ApiError::bad_request("invalid resourceVersion"));
    }
    let obj = stored_form(rr, obj);
    let sub = rr.subresource.as_deref();
    let ctx = context(api, rr, r, &manager(r, false)?, sub, r.dry_run()?);
    let name = rr.name().to_string();
    let (stored, created) = api
        .registry
        .update(storage_resource(res), rr.namespace(), &name, &ctx, |cur| {
            if let (Some(c), Some(want)) = (cur, want_rv)
                && resource_version(c) != Some(want)
            {
                return Err(ApiError::modified(res, &name));
            }
            if cur.is_none() && want_rv.is_some() {
                return Err(ApiError::not_found(res, &name));
            }
            Ok(obj.clone())
        })
        .await?;
    warnings.extend(ctx.warnings.take());
    let code = if created { 201 } else { 200 };
    Ok(with_warnings(
        output::object(code, res, &accept, stored, include_object(r)?),
        &warnings,
    ))
}

/// PATCH of an object or its status.
pub async fn patch(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = rr.resource;
    let accept = accept(rr, r)?;
    let pt = PatchType::from_content_type(r.header("content-type"))?;
    let sub = rr.subresource.as_deref();
    let name = rr.name().to_string();
    let dry_run = r.dry_run()?;
    let mode = FieldValidation::from_request(r)?;
    let node = schema::schemas().kind(res.group, res.version, res.kind);
    let mut warnings = Vec::new();
    if pt == PatchType::Apply {
        let mgr = manager(r, true)?;
        let force = matches!(r.q("force"), Some("true"));
        let mut config: Value = serde_yaml_ng::from_slice(&r.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        check_type(&config, res.kind, res.group, res.version)?;
        warnings = unknown_fields(&mut config, r, res.kind, res.group, res.version)?;
        metadata::check_identity(res, &mut config, rr.namespace(), Some(&name))?;
        let mut ctx = context(api, rr, r, &mgr, sub, dry_run);
        ctx.operation = Operation::Apply;
        let api_version = res.api_version();
        let (stored, created) = api
            .registry
            .update(storage_resource(res), rr.namespace(), &name, &ctx, |cur| {
                let live = cur.map(|c| served_form(rr, c));
                let defaults = |obj: &mut Value| {
                    if let Some(map) = obj.as_object_mut() {
                        res.strategy.default(map);
                    }
                };
                let mut merged = apply::apply(
                    live.as_ref(),
                    &config,
                    &mgr,
                    force,
                    &api_version,
                    sub,
                    &defaults,
                )?;
                if live.is_none() {
                    // A new object: the applier owns what it applied.
                    let mf = merged.pointer("/metadata/managedFields").cloned();
                    merged = config.clone();
                    if let Some(mf) = mf {
                        merged["metadata"]["managedFields"] = mf;
                    }
                }
                Ok(stored_form(rr, merged))
            })
            .await?;
        warnings.extend(ctx.warnings.take());
        let code = if created { 201 } else { 200 };
        return Ok(with_warnings(
            output::object(code, res, &accept, stored, include_object(r)?),
            &warnings,
        ));
    }
    let mgr = manager(r, false)?;
    let ctx = context(api, rr, r, &mgr, sub, dry_run);
    let body = r.body.clone();
    let mut dropped = Vec::new();
    let (stored, _) = api
        .registry
        .update(storage_resource(res), rr.namespace(), &name, &ctx, |cur| {
            let Some(cur) = cur else {
                return Err(ApiError::not_found(res, &name));
            };
            let live = served_form(rr, cur);
            let mut out = match pt {
                PatchType::Json => patch::json_patch(&live, &body)?,
                PatchType::Merge => patch::merge_patch(&live, &body)?,
                PatchType::Strategic => patch::strategic_patch(&live, &body, node)?,
                PatchType::Apply => unreachable!("handled above"),
            };
            let unknown = schema::unknown_fields(res.group, res.version, res.kind, &out);
            if !unknown.is_empty() && mode == FieldValidation::Strict {
                return Err(ApiError::bad_request(schema::strict_decoding_message(
                    &unknown,
                )));
            }
            for p in &unknown {
                drop_path(&mut out, p);
            }
            dropped = unknown;
            // A patch carrying a resourceVersion is a precondition.
            if let Some(want) = resource_version(&out)
                && resource_version(&live) != Some(want)
            {
                return Err(ApiError::modified(res, &name));
            }
            Ok(stored_form(rr, out))
        })
        .await?;
    // As kube-apiserver, the fields of the patched object that the schema
    // does not know, not the patch's own keys (whose `$setElementOrder/…`
    // and other directives are no fields).
    if mode == FieldValidation::Warn {
        warnings.extend(dropped.iter().map(|p| format!("unknown field \"{p}\"")));
    }
    warnings.extend(ctx.warnings.take());
    Ok(with_warnings(
        output::object(200, res, &accept, stored, include_object(r)?),
        &warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drop_path_removes_nested_fields() {
        let mut v = json!({"spec": {"foo": 1, "containers": [{"name": "a", "bar": 2}]}});
        drop_path(&mut v, "spec.foo");
        drop_path(&mut v, "spec.containers[0].bar");
        assert_eq!(v, json!({"spec": {"containers": [{"name": "a"}]}}));
    }

    #[test]
    fn wrong_api_version_is_refused() {
        let obj = json!({"apiVersion": "apps/v1beta1", "kind": "Deployment"});
        let e = check_type(&obj, "Deployment", "apps", "v1").unwrap_err();
        assert_eq!(
            e.message,
            "the API version in the data (apps/v1beta1) does not match the expected API version (apps/v1)"
        );
    }
}
