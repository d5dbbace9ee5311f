//! API errors as `metav1.Status` objects, with kube-apiserver's reasons,
//! codes, details and messages.

use serde_json::{Value, json};

use super::resource::Resource;

/// One field error of an `Invalid` status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, …
    pub reason: String,
    /// Message without the field (`Required value`, `Invalid value: "x": …`).
    pub message: String,
    /// Field path (`spec.containers[0].image`).
    pub field: String,
}

/// A failed API request, rendered as a Status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

fn details(r: &Resource, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": r.plural});
    if !r.group.is_empty() {
        d["group"] = Value::String(r.group.to_string());
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_found(r: &Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", r.group_resource()),
        )
        .with_details(details(r, name))
    }

    /// `namespaces "x" not found` for objects created in a missing namespace.
    pub fn namespace_not_found(name: &str) -> Self {
        Self::new(404, "NotFound", format!("namespaces \"{name}\" not found"))
            .with_details(json!({"name": name, "kind": "namespaces"}))
    }

    pub fn already_exists(r: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.group_resource()),
        )
        .with_details(details(r, name))
    }

    /// A failed optimistic-concurrency check.
    pub fn conflict(r: &Resource, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                r.group_resource()
            ),
        )
        .with_details(details(r, name))
    }

    pub fn modified(r: &Resource, name: &str) -> Self {
        Self::conflict(
            r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with field causes: `Pod "x" is invalid: [a: …, b: …]`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[Cause]) -> Self {
        let parts: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let agg = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let mut d = json!({
            "name": name,
            "kind": kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        });
        if !group.is_empty() {
            d["group"] = Value::String(group.to_string());
        }
        Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {agg}"),
        )
        .with_details(d)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_supported(r: &Resource, verb: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "{verb} is not supported on resources of kind \"{}\"",
                r.group_resource()
            ),
        )
    }

    pub fn not_found_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_old(requested: i64, oldest: i64) -> Self {
        Self::expired(format!("too old resource version: {requested} ({oldest})"))
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {ct})"
            ),
        )
    }

    pub fn not_acceptable() -> Self {
        Self::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message).with_details(json!({"retryAfterSeconds": 1}))
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message).with_details(json!({"retryAfterSeconds": 1}))
    }

    /// kube's `NewInternalError`: the cause repeated in the details.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
        .with_details(json!({"causes": [{"message": message}]}))
    }

    pub fn forbidden(r: &Resource, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", r.group_resource()),
        )
        .with_details(details(r, name))
    }

    /// The Status object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// The Status returned by a successful delete of a resource that has no
/// object to return (deletecollection, some deletes).
pub fn success(r: &Resource, name: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details(r, name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::find;

    #[test]
    fn messages_match_kube_apiserver() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(
            ApiError::not_found(pods, "x").message,
            "pods \"x\" not found"
        );
        let d = find("apps", "v1", "deployments").unwrap();
        let e = ApiError::already_exists(d, "web");
        assert_eq!(e.message, "deployments.apps \"web\" already exists");
        assert_eq!(e.to_status()["details"]["group"], "apps");
        assert_eq!(
            ApiError::modified(pods, "x").message,
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
    }

    #[test]
    fn invalid_aggregates_causes() {
        let one = [Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.containers[0].image".into(),
        }];
        let e = ApiError::invalid("Pod", "", "p", &one);
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: spec.containers[0].image: Required value"
        );
        let two = [
            one[0].clone(),
            Cause {
                field: "metadata.name".into(),
                ..one[0].clone()
            },
        ];
        let e = ApiError::invalid("Pod", "", "p", &two);
        assert!(e.message.ends_with(
            "[spec.containers[0].image: Required value, metadata.name: Required value]"
        ));
    }
}
