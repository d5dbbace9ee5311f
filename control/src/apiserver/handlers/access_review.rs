//! authorization.k8s.io/v1 reviews (`kubectl auth can-i`): questions to
//! the API server's authorizer, answered in the response and never stored.
//!
//! The authorizer is kube-apiserver's `AlwaysAllow` mode: a request that
//! authenticated (others were answered 401 before any handler) may do
//! anything, so every access review is allowed and every rules review lists
//! everything, complete. The answers are that mode's own.

use http::Response;
use serde_json::{Value, json};

use super::list::accept;
use super::{Body, Req, respond_json};
use crate::api::status::ApiError;
use crate::apiserver::codec::content;
use crate::apiserver::router::ResourceRequest;
use crate::registry::admission;
use crate::registry::metadata;

/// POST of a review: the request's review with its `status`, 201.
pub fn create(rr: &ResourceRequest, r: &Req) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let format = content::body_format(r.header("content-type"))?;
    let mut review = content::decode(format, &r.body)?;
    if !review.is_object() {
        return Err(ApiError::bad_request(format!(
            "not a {}: the body is not an object",
            rr.resource.kind
        )));
    }
    let res = rr.resource;
    metadata::check_identity(res, &mut review, rr.namespace(), None)?;
    let causes = admission::create_causes(res, &review);
    if !causes.is_empty() {
        return Err(admission::to_error(res, &review, &causes));
    }
    let status = if res.kind == "SelfSubjectRulesReview" {
        let namespace = review
            .pointer("/spec/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if namespace.is_empty() {
            return Err(ApiError::bad_request("no namespace on request"));
        }
        rules()
    } else {
        decision()
    };
    review["kind"] = json!(res.kind);
    review["apiVersion"] = json!(res.api_version());
    review["status"] = status;
    Ok(respond_json(201, &accept, &review))
}

/// `AlwaysAllow`'s decision on any request: allowed, with no reason.
fn decision() -> Value {
    json!({"allowed": true})
}

/// `AlwaysAllow`'s rules for any user in any namespace: every verb on every
/// resource of every group, and on every non-resource URL.
fn rules() -> Value {
    json!({
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        "incomplete": false,
    })
}
