//! Admission of written objects: the `validation` module's defaulting,
//! create-time admission (ServiceAccount, DefaultTolerationSeconds,
//! Priority) and validation, turned into kube-apiserver's Statuses (422
//! Invalid with field causes, 403 Forbidden for refused admission).

use serde_json::Value;

use crate::apiserver::resources::Resource;
use crate::apiserver::status::ApiError;
use crate::validation::{self, Cause, PriorityClassInfo};

/// Applies the kind's defaults (kube-apiserver's defaulting functions).
pub fn default_object(r: &Resource, obj: &mut Value) {
    validation::default_object(r.group, r.version, r.kind, obj);
}

/// Carries allocated Service fields over on update and makes clusterIP and
/// clusterIPs consistent, before allocation.
pub fn normalize_service(r: &Resource, obj: &mut Value, old: Option<&Value>) {
    if r.kind == "Service" && r.group.is_empty() {
        validation::normalize_cluster_ips(obj, old);
    }
}

/// Create-time admission mutations; `priority_class` is the class a Pod
/// names (or the global default), looked up by the caller.
pub fn admit_create(
    r: &Resource,
    obj: &mut Value,
    priority_class: Option<&PriorityClassInfo>,
) -> Result<(), ApiError> {
    validation::admit_create(r.group, r.kind, obj, priority_class).map_err(|e| {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        ApiError::forbidden(r, name, &e.to_string())
    })
}

/// The 422 `Invalid` error for `obj`'s validation `causes`.
pub fn to_error(r: &Resource, obj: &Value, causes: &[Cause]) -> ApiError {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let status = validation::invalid_status(r.group, r.kind, name, causes);
    ApiError::new(
        422,
        "Invalid",
        validation::invalid_message(r.group, r.kind, name, causes),
    )
    .with_details(status.get("details").cloned().unwrap_or(Value::Null))
}

/// Validates a create (`old` None), an update, or a subresource update.
pub fn validate(
    r: &Resource,
    obj: &Value,
    old: Option<&Value>,
    subresource: Option<&str>,
) -> Result<(), ApiError> {
    let causes = match (old, subresource) {
        (None, _) => validation::validate_create(r.group, r.version, r.kind, obj),
        (Some(o), None) => validation::validate_update(r.group, r.version, r.kind, obj, o),
        (Some(o), Some("status")) => {
            validation::validate_status_update(r.group, r.version, r.kind, obj, o)
        }
        (Some(o), Some("finalize")) => validation::validate_namespace_finalize(obj, o),
        (Some(o), Some("ephemeralcontainers")) => {
            validation::validate_ephemeral_containers_update(obj, o)
        }
        (Some(o), Some(_)) => validation::validate_update(r.group, r.version, r.kind, obj, o),
    };
    if causes.is_empty() {
        Ok(())
    } else {
        Err(to_error(r, obj, &causes))
    }
}
