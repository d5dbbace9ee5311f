//! authorization.k8s.io/v1 reviews (`kubectl auth can-i`): questions to
//! the API server's authorizer, answered in the response and never stored.
//! A self review asks about the requesting user; a SubjectAccessReview
//! about the user, groups, UID and extras it names; a local one about its
//! own namespace. A rules review lists the rules the authorizers can list
//! for the user in a namespace.

use http::Response;
use serde_json::{Value, json};

use super::list::accept;
use super::{Api, Body, Req, respond_json};
use crate::api::status::ApiError;
use crate::apiserver::auth::User;
use crate::apiserver::auth::authorizer::{Attributes, Decision};
use crate::apiserver::codec::content;
use crate::apiserver::router::ResourceRequest;
use crate::registry::admission;
use crate::registry::metadata;

/// POST of a review: the request's review with its `status`, 201.
pub fn create(api: &Api, rr: &ResourceRequest, r: &Req) -> Result<Response<Body>, ApiError> {
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
        rules(api, &r.user, namespace)
    } else {
        let subject = match res.kind {
            "SelfSubjectAccessReview" => r.user.clone(),
            _ => subject_of(&review["spec"]),
        };
        decision(api, subject, &review["spec"])
    };
    review["kind"] = json!(res.kind);
    review["apiVersion"] = json!(res.api_version());
    review["status"] = status;
    Ok(respond_json(201, &accept, &review))
}

/// The user a SubjectAccessReview's spec names.
fn subject_of(spec: &Value) -> User {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    User {
        name: spec["user"].as_str().unwrap_or_default().to_owned(),
        groups: strings(&spec["groups"]),
        uid: spec["uid"].as_str().unwrap_or_default().to_owned(),
        extra: spec["extra"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), strings(v)))
            .collect(),
    }
}

/// The authorizer's decision on the review's question, as its status.
fn decision(api: &Api, user: User, spec: &Value) -> Value {
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let attrs = match spec.get("resourceAttributes") {
        Some(a) if a.is_object() => Attributes {
            user,
            verb: text(a, "verb"),
            resource_request: true,
            namespace: text(a, "namespace"),
            api_group: text(a, "group"),
            resource: text(a, "resource"),
            subresource: text(a, "subresource"),
            name: text(a, "name"),
            path: String::new(),
        },
        _ => Attributes {
            user,
            verb: text(&spec["nonResourceAttributes"], "verb"),
            path: text(&spec["nonResourceAttributes"], "path"),
            ..Attributes::default()
        },
    };
    let (decision, reason) = api.authorizer.authorize(&attrs);
    let mut status = json!({"allowed": decision == Decision::Allow});
    if decision == Decision::Deny {
        status["denied"] = json!(true);
    }
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    status
}

/// The rules `user` has in `namespace`, as the review lists them.
fn rules(api: &Api, user: &User, namespace: &str) -> Value {
    let set = api.authorizer.rules_for(user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in set.rules {
        if rule.non_resource_urls.is_empty() {
            let mut r = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups, "resources": rule.resources});
            if !rule.resource_names.is_empty() {
                r["resourceNames"] = json!(rule.resource_names);
            }
            resource_rules.push(r);
        } else {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        }
    }
    json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": set.incomplete,
    })
}
