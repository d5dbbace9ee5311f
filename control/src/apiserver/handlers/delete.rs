//! DELETE of one object and DELETE of a collection.

use std::sync::Arc;

use http::Response;
use serde_json::{Value, json};

use super::list::{Filter, accept, include_object, storage_resource};
use super::{Api, Body, Req, output, respond_json};
use crate::api::status::ApiError;
use crate::apiserver::auth::node_restriction;
use crate::apiserver::codec::content;
use crate::apiserver::router::ResourceRequest;
use crate::registry::{DeleteOptions, Deleted};
use crate::storage::keys;
use crate::storage::object::decode;

fn options(r: &Req) -> Result<DeleteOptions, ApiError> {
    let body: Option<Value> = if r.body.is_empty() {
        None
    } else {
        let format = content::body_format(r.header("content-type"))?;
        Some(content::decode(format, &r.body)?)
    };
    let mut o = DeleteOptions::from_request(body.as_ref(), &r.query)?;
    if r.dry_run()? {
        o.dry_run = true;
    }
    Ok(o)
}

/// DELETE one object: 200 with the object (its last state, or its state
/// while finalizers or a grace period keep it).
pub async fn delete(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let opts = options(r)?;
    let res = storage_resource(rr.resource);
    node_may_remove(api, rr, r, false).await?;
    let v = match api
        .registry
        .delete(res, rr.namespace(), rr.name(), &opts)
        .await?
    {
        Deleted::Gone(v) | Deleted::Pending(v) => v,
    };
    Ok(output::object(
        200,
        rr.resource,
        &accept,
        v,
        include_object(r)?,
    ))
}

/// NodeRestriction on removing a pod: a node removes only its own pods.
pub(super) async fn node_may_remove(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
    eviction: bool,
) -> Result<(), ApiError> {
    if !node_restriction::applies(&r.user, rr.resource) || rr.resource.plural != "pods" {
        return Ok(());
    }
    match api
        .registry
        .get_recent(rr.resource, rr.namespace(), rr.name())
        .await?
    {
        Some(pod) => node_restriction::check_pod_removal(&r.user, rr.resource, &pod, eviction),
        None => Err(ApiError::not_found(rr.resource, rr.name())),
    }
}

/// DELETE a collection: every object matching the selectors, returned as
/// a list.
pub async fn delete_collection(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let opts = options(r)?;
    let filter = Filter::from_request(rr, r)?;
    let res = storage_resource(rr.resource);
    let store = &api.registry.store;
    let page = store
        .etcd
        .range(
            &filter.prefix,
            &keys::prefix_end(&filter.prefix),
            0,
            0,
            false,
        )
        .await?;
    let fields = res.strategy.selectable_fields();
    let mut items = Vec::new();
    for kv in page.kvs {
        let Some(obj) = decode(&kv.key, &kv.value, kv.mod_revision, fields) else {
            continue;
        };
        if !filter.matches(&obj) {
            continue;
        }
        match api
            .registry
            .delete(res, &obj.namespace, &obj.name, &opts)
            .await
        {
            Ok(Deleted::Gone(v)) | Ok(Deleted::Pending(v)) => {
                items.push(output::convert_out(rr.resource, v))
            }
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": rr.resource.list_kind,
        "apiVersion": rr.resource.api_version(),
        "metadata": {"resourceVersion": page.revision.to_string()},
        "items": items,
    });
    Ok(respond_json(200, &accept, &list))
}
