//! `tokenreviews` (authentication.k8s.io/v1): a bearer token checked by the
//! API server's token authenticator for a component that delegates
//! authentication to it (a kubelet checking its callers). Nothing is
//! stored; the answer is in the review's status.

use http::Response;
use serde_json::{Value, json};

use super::list::accept;
use super::{Api, Body, Req, respond_json};
use crate::api::status::ApiError;
use crate::apiserver::auth::tokens;
use crate::apiserver::codec::content;
use crate::apiserver::router::ResourceRequest;

/// POST `/apis/authentication.k8s.io/v1/tokenreviews`.
pub async fn create(api: &Api, rr: &ResourceRequest, r: &Req) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let format = content::body_format(r.header("content-type"))?;
    let mut review = content::decode(format, &r.body)?;
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication.k8s.io",
        ));
    }
    let wanted: Vec<String> = review
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    // The server's own audience is the one its tokens are checked for.
    let audience_ok = wanted.is_empty() || wanted.iter().any(|a| a == tokens::ISSUER);
    let status = match api.token_auth.authenticate(&token).await {
        Some(user) if audience_ok => {
            let mut info = json!({"username": user.name, "groups": user.groups});
            if !user.uid.is_empty() {
                info["uid"] = json!(user.uid);
            }
            if !user.extra.is_empty() {
                info["extra"] = json!(user.extra);
            }
            json!({"authenticated": true, "user": info, "audiences": [tokens::ISSUER]})
        }
        Some(_) => json!({
            "user": {},
            "error": "[invalid bearer token, token audiences is invalid for the target audiences]",
        }),
        None => {
            json!({"user": {}, "error": "[invalid bearer token, service account token is not valid]"})
        }
    };
    review["kind"] = json!("TokenReview");
    review["apiVersion"] = json!("authentication.k8s.io/v1");
    if review.get("metadata").is_none_or(Value::is_null) {
        review["metadata"] = json!({"creationTimestamp": null});
    }
    review["status"] = status;
    Ok(respond_json(201, &accept, &review))
}
