//! `serviceaccounts/token`: the TokenRequest API (`kubectl create token`,
//! and the kubelet's projected `serviceAccountToken` volumes), as
//! kube-apiserver's token REST: a token for the ServiceAccount, optionally
//! bound to a Pod, Secret or Node that must exist (and have the UID the
//! request names), for the requested audiences (the API server's when
//! none) and lifetime (an hour by default, at least ten minutes).

use std::sync::Arc;

use http::Response;
use serde_json::{Value, json};

use super::list::accept;
use super::{Api, Body, Req, respond_json};
use crate::api::resource::Resource;
use crate::api::status::{ApiError, Cause};
use crate::apiserver::auth::tokens::{self, Claims, ObjectRef, Private};
use crate::apiserver::codec::content;
use crate::apiserver::router::ResourceRequest;
use crate::kinds;
use crate::registry::metadata::{self, meta_str};

/// kube-apiserver's default lifetime and shortest allowed one.
const DEFAULT_SECONDS: i64 = 3600;
const MIN_SECONDS: i64 = 600;
const MAX_SECONDS: i64 = 1 << 32;

fn core(plural: &str) -> &'static Resource {
    kinds::find("", "v1", plural).expect("a core resource")
}

fn invalid(name: &str, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "TokenRequest",
        "authentication.k8s.io",
        name,
        &[Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

/// An object as the watch cache holds it (404 when it does not exist):
/// what a token is checked against later too.
async fn lookup(
    api: &Arc<Api>,
    res: &Resource,
    namespace: &str,
    name: &str,
) -> Result<Value, ApiError> {
    api.registry
        .get_recent(res, namespace, name)
        .await?
        .ok_or_else(|| ApiError::not_found(res, name))
}

/// Binds the token of `private` to the object `reference` names, which
/// must exist: its reference, and for a pod also its node's.
async fn bind(api: &Arc<Api>, private: &mut Private, reference: &Value) -> Result<(), ApiError> {
    let service_account = private.serviceaccount.name.as_str();
    let kind = reference.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
    let (plural, scoped) = match kind {
        "Pod" => ("pods", true),
        "Secret" => ("secrets", true),
        "Node" => ("nodes", false),
        other => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {service_account:?} to object of type {other}"
            )));
        }
    };
    let res = core(plural);
    let namespace = if scoped {
        private.namespace.as_str()
    } else {
        ""
    };
    let object = lookup(api, res, namespace, name).await?;
    if kind == "Pod"
        && object
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            != Some(service_account)
    {
        return Err(ApiError::bad_request(format!(
            "cannot bind token for serviceaccount {service_account:?} to pod running with different serviceaccount name."
        )));
    }
    let uid = meta_str(&object, "uid").to_owned();
    if let Some(wanted) = reference.get("uid").and_then(Value::as_str)
        && !wanted.is_empty()
        && wanted != uid
    {
        return Err(ApiError::conflict(
            res,
            name,
            &format!(
                "the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    let this = Some(ObjectRef {
        name: name.to_owned(),
        uid,
    });
    match kind {
        "Pod" => {
            private.pod = this;
            // The pod's node, when it is bound to one that exists.
            if let Some(node_name) = object.pointer("/spec/nodeName").and_then(Value::as_str)
                && let Ok(n) = lookup(api, core("nodes"), "", node_name).await
            {
                private.node = Some(ObjectRef {
                    name: node_name.to_owned(),
                    uid: meta_str(&n, "uid").to_owned(),
                });
            }
        }
        "Secret" => private.secret = this,
        _ => private.node = this,
    }
    Ok(())
}

/// POST `.../serviceaccounts/<name>/token`.
pub async fn create(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let format = content::body_format(r.header("content-type"))?;
    let request = content::decode(format, &r.body)?;
    let namespace = rr.namespace();
    let name = rr.name();
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let seconds = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_SECONDS);
    if seconds < MIN_SECONDS {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
        ));
    }
    if seconds > MAX_SECONDS {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            format!(
                "Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
            ),
        ));
    }
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![tokens::ISSUER.to_owned()]);
    let service_account = lookup(api, rr.resource, namespace, name).await?;
    let mut private = Private {
        namespace: namespace.to_owned(),
        serviceaccount: ObjectRef {
            name: name.to_owned(),
            uid: meta_str(&service_account, "uid").to_owned(),
        },
        pod: None,
        secret: None,
        node: None,
    };
    if let Some(reference) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        bind(api, &mut private, reference).await?;
    }
    let now = jiff::Timestamp::now();
    let claims = Claims::new(private, audiences.clone(), now.as_second(), seconds);
    let token = api
        .tokens
        .sign(&claims)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let expires =
        jiff::Timestamp::from_second(claims.exp).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut spec = spec;
    spec["audiences"] = json!(audiences);
    spec["expirationSeconds"] = json!(seconds);
    let answer = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": metadata::time(now),
        },
        "spec": spec,
        "status": {
            "token": token,
            "expirationTimestamp": metadata::time(expires),
        },
    });
    Ok(respond_json(201, &accept, &answer))
}
