//! `selfsubjectreviews` (authentication.k8s.io/v1, `kubectl auth whoami`):
//! the user the request authenticated as. Nothing is stored.

use http::Response;
use serde_json::json;

use super::list::accept;
use super::{Body, Req, respond_json};
use crate::api::status::ApiError;
use crate::apiserver::router::ResourceRequest;

/// POST `/apis/authentication.k8s.io/v1/selfsubjectreviews`.
pub fn create(rr: &ResourceRequest, r: &Req) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let user = &r.user;
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    let review = json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": info},
    });
    Ok(respond_json(201, &accept, &review))
}
