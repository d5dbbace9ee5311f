//! Field paths and validation causes, rendered the way kube-apiserver renders
//! them (k8s.io/apimachinery/pkg/util/validation/field: `Path.String()`,
//! `Error.ErrorBody()`, `ErrorList.ToAggregate()`), so that the `Status`
//! messages and causes a client sees are the upstream ones word for word.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// The machine-readable reason of a [`Cause`] (`metav1.CauseType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CauseType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    TypeInvalid,
}

impl CauseType {
    /// The wire value (`FieldValueRequired`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CauseType::NotFound => "FieldValueNotFound",
            CauseType::Required => "FieldValueRequired",
            CauseType::Duplicate => "FieldValueDuplicate",
            CauseType::Invalid => "FieldValueInvalid",
            CauseType::NotSupported => "FieldValueNotSupported",
            CauseType::Forbidden => "FieldValueForbidden",
            CauseType::TooLong => "FieldValueTooLong",
            CauseType::TooMany => "FieldValueTooMany",
            CauseType::Internal => "InternalError",
            CauseType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human summary that starts every message (`ErrorType.String()`).
    fn summary(self) -> &'static str {
        match self {
            CauseType::NotFound => "Not found",
            CauseType::Required => "Required value",
            CauseType::Duplicate => "Duplicate value",
            CauseType::Invalid | CauseType::TypeInvalid => "Invalid value",
            CauseType::NotSupported => "Unsupported value",
            CauseType::Forbidden => "Forbidden",
            CauseType::TooLong => "Too long",
            CauseType::TooMany => "Too many",
            CauseType::Internal => "Internal error",
        }
    }
}

impl Serialize for CauseType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for CauseType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field error: a `metav1.StatusCause`. `message` is the body without
/// the field (`ErrorBody()`), as kube-apiserver puts it in `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub reason: CauseType,
    pub message: String,
    pub field: String,
}

impl Cause {
    /// `field: message`, upstream's `field.Error.Error()`.
    pub fn error_string(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The rejected value as upstream prints it after `Invalid value: `.
#[derive(Debug, Clone, PartialEq)]
pub enum BadValue {
    /// Printed Go-quoted (`%q`).
    Str(String),
    Int(i64),
    Bool(bool),
    Float(f64),
    /// A nil pointer: printed `null`.
    Null,
    /// The value is left out of the message.
    Omit,
    /// Already rendered the way Go's `%#v` prints the upstream type.
    Go(String),
}

impl From<&str> for BadValue {
    fn from(v: &str) -> Self {
        BadValue::Str(v.to_string())
    }
}
impl From<&String> for BadValue {
    fn from(v: &String) -> Self {
        BadValue::Str(v.clone())
    }
}
impl From<String> for BadValue {
    fn from(v: String) -> Self {
        BadValue::Str(v)
    }
}
impl From<i64> for BadValue {
    fn from(v: i64) -> Self {
        BadValue::Int(v)
    }
}
impl From<i32> for BadValue {
    fn from(v: i32) -> Self {
        BadValue::Int(v.into())
    }
}
impl From<usize> for BadValue {
    fn from(v: usize) -> Self {
        BadValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for BadValue {
    fn from(v: bool) -> Self {
        BadValue::Bool(v)
    }
}
impl<T: Into<BadValue>> From<Option<T>> for BadValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(BadValue::Null, Into::into)
    }
}

impl BadValue {
    fn render(&self) -> Option<String> {
        match self {
            BadValue::Str(s) => Some(go_quote(s)),
            BadValue::Int(i) => Some(i.to_string()),
            BadValue::Bool(b) => Some(b.to_string()),
            BadValue::Float(f) => Some(f.to_string()),
            BadValue::Null => Some("null".to_string()),
            BadValue::Omit => None,
            BadValue::Go(s) => Some(s.clone()),
        }
    }
}

/// A field path (`spec.containers[0].image`), upstream's `field.Path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// A path starting at a top-level field. An empty name stands for the
    /// whole object and prints as `[]`, as `field.NewPath("")` does.
    pub fn new(name: &str) -> Path {
        if name.is_empty() {
            Path("[]".to_string())
        } else {
            Path(name.to_string())
        }
    }

    pub fn child(&self, name: &str) -> Path {
        Path(format!("{}.{}", self.0, name))
    }

    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{}]", self.0, i))
    }

    pub fn key(&self, k: &str) -> Path {
        Path(format!("{}[{}]", self.0, k))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn cause(reason: CauseType, path: &Path, value: Option<BadValue>, detail: &str) -> Cause {
    let mut message = reason.summary().to_string();
    let shows_value = !matches!(
        reason,
        CauseType::Required | CauseType::Forbidden | CauseType::TooLong | CauseType::Internal
    );
    if shows_value && let Some(rendered) = value.as_ref().and_then(BadValue::render) {
        message.push_str(": ");
        message.push_str(&rendered);
    }
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(detail);
    }
    Cause {
        reason,
        message,
        field: path.0.clone(),
    }
}

/// `field.Required`.
pub fn required(path: &Path, detail: &str) -> Cause {
    cause(CauseType::Required, path, None, detail)
}

/// `field.Invalid`.
pub fn invalid(path: &Path, value: impl Into<BadValue>, detail: &str) -> Cause {
    cause(CauseType::Invalid, path, Some(value.into()), detail)
}

/// `field.TypeInvalid`.
pub fn type_invalid(path: &Path, value: impl Into<BadValue>, detail: &str) -> Cause {
    cause(CauseType::TypeInvalid, path, Some(value.into()), detail)
}

/// `field.NotFound`.
pub fn not_found(path: &Path, value: impl Into<BadValue>) -> Cause {
    cause(CauseType::NotFound, path, Some(value.into()), "")
}

/// `field.Duplicate`.
pub fn duplicate(path: &Path, value: impl Into<BadValue>) -> Cause {
    cause(CauseType::Duplicate, path, Some(value.into()), "")
}

/// `field.NotSupported`: the detail lists the supported values, quoted.
pub fn not_supported(path: &Path, value: impl Into<BadValue>, supported: &[&str]) -> Cause {
    let detail = if supported.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        format!("supported values: {}", quoted.join(", "))
    };
    cause(CauseType::NotSupported, path, Some(value.into()), &detail)
}

/// `field.Forbidden`.
pub fn forbidden(path: &Path, detail: &str) -> Cause {
    cause(CauseType::Forbidden, path, None, detail)
}

/// `field.TooLong`: the value is never shown.
pub fn too_long(path: &Path, max_bytes: usize) -> Cause {
    cause(
        CauseType::TooLong,
        path,
        None,
        &format!("may not be more than {max_bytes} bytes"),
    )
}

/// `field.TooMany`.
pub fn too_many(path: &Path, actual: usize, max: usize) -> Cause {
    cause(
        CauseType::TooMany,
        path,
        Some(actual.into()),
        &format!("must have at most {max} items"),
    )
}

/// `field.InternalError`.
pub fn internal(path: &Path, detail: &str) -> Cause {
    cause(CauseType::Internal, path, None, detail)
}

/// The message of kube-apiserver's 422 `Invalid` Status
/// (`apierrors.NewInvalid`): `Deployment.apps "web" is invalid: …`, one
/// cause bare, several in brackets, repeated ones once.
pub fn invalid_message(group: &str, kind: &str, name: &str, causes: &[Cause]) -> String {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut seen = std::collections::HashSet::new();
    let errors: Vec<String> = causes
        .iter()
        .map(Cause::error_string)
        .filter(|e| seen.insert(e.clone()))
        .collect();
    match errors.len() {
        0 => format!("{qualified} {} is invalid", go_quote(name)),
        1 => format!("{qualified} {} is invalid: {}", go_quote(name), errors[0]),
        _ => format!(
            "{qualified} {} is invalid: [{}]",
            go_quote(name),
            errors.join(", ")
        ),
    }
}

/// The full 422 `Invalid` Status object kube-apiserver returns.
pub fn invalid_status(group: &str, kind: &str, name: &str, causes: &[Cause]) -> serde_json::Value {
    let mut details = serde_json::json!({
        "name": name,
        "kind": kind,
        "causes": causes,
    });
    if !group.is_empty() {
        details["group"] = serde_json::Value::String(group.to_string());
    }
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": invalid_message(group, kind, name, causes),
        "reason": "Invalid",
        "details": details,
        "code": 422,
    })
}

/// Go's `strconv.Quote`: double quotes, C-style escapes, printable Unicode
/// kept as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `map[string]string` (keys sorted, as fmt prints maps).
pub fn go_string_map(map: Option<&BTreeMap<String, String>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let entries: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
    }
}

/// Go's `%#v` of a `[]string`.
pub fn go_string_slice(items: Option<&[String]>) -> String {
    match items {
        None => "[]string(nil)".to_string(),
        Some(v) => {
            let quoted: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
            format!("[]string{{{}}}", quoted.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // field.Error.ErrorBody: Required shows no value.
    #[test]
    fn required_message() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("image");
        let c = required(&p, "");
        assert_eq!(c.error_string(), "spec.containers[0].image: Required value");
        assert_eq!(c.reason.as_str(), "FieldValueRequired");
    }

    // field.Error.ErrorBody: strings are %q-quoted, ints bare, detail last.
    #[test]
    fn invalid_renders_values() {
        let p = Path::new("metadata").child("name");
        assert_eq!(
            invalid(&p, "Web", "bad").error_string(),
            "metadata.name: Invalid value: \"Web\": bad"
        );
        assert_eq!(
            invalid(&Path::new("spec").child("replicas"), -1i32, "x").message,
            "Invalid value: -1: x"
        );
        assert_eq!(
            invalid(&p, BadValue::Null, "x").message,
            "Invalid value: null: x"
        );
    }

    // field.NotSupported quotes every supported value.
    #[test]
    fn not_supported_lists_values() {
        let c = not_supported(
            &Path::new("spec").child("restartPolicy"),
            "Sometimes",
            &["Always", "OnFailure", "Never"],
        );
        assert_eq!(
            c.message,
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
    }

    // field.TooLong / field.TooMany (1.33 wording).
    #[test]
    fn too_long_and_too_many() {
        assert_eq!(
            too_long(&Path::new("metadata").child("annotations"), 262144).error_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            too_many(&Path::new("endpoints"), 1001, 1000).message,
            "Too many: 1001: must have at most 1000 items"
        );
        assert_eq!(Path::new("").as_str(), "[]");
    }

    // apierrors.NewInvalid + ErrorList.ToAggregate.
    #[test]
    fn aggregate_message() {
        let a = required(&Path::new("spec").child("selector"), "");
        let b = invalid(&Path::new("metadata").child("name"), "A", "bad");
        assert_eq!(
            invalid_message("apps", "Deployment", "web", std::slice::from_ref(&a)),
            "Deployment.apps \"web\" is invalid: spec.selector: Required value"
        );
        assert_eq!(
            invalid_message("", "Pod", "p", &[a.clone(), b.clone(), a.clone()]),
            "Pod \"p\" is invalid: [spec.selector: Required value, metadata.name: Invalid value: \"A\": bad]"
        );
        let status = invalid_status("apps", "Deployment", "web", &[a]);
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["details"]["group"], "apps");
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
        assert_eq!(status["details"]["causes"][0]["field"], "spec.selector");
        assert_eq!(status["details"]["causes"][0]["message"], "Required value");
    }

    #[test]
    fn go_renderings() {
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), "2".to_string());
        m.insert("a".to_string(), "1".to_string());
        assert_eq!(
            go_string_map(Some(&m)),
            "map[string]string{\"a\":\"1\", \"b\":\"2\"}"
        );
        assert_eq!(go_string_map(None), "map[string]string(nil)");
        assert_eq!(
            go_string_slice(Some(&["x".to_string(), "y".to_string()])),
            "[]string{\"x\", \"y\"}"
        );
    }
}
