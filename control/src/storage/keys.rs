//! etcd key layout and list continuation tokens.
//!
//! Objects live at `/registry/<group>/<resource>/<namespace>/<name>`; the
//! core group has no group segment (`/registry/pods/default/nginx`), as in
//! kube-apiserver. events.k8s.io Events are the core Events seen through
//! another version, so they share `/registry/events`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::api::resource::Resource;

/// Root of everything the API server stores.
pub const ROOT: &str = "/registry";

/// Prefix of all objects of a resource, with a trailing slash.
pub fn resource_prefix(r: &Resource) -> String {
    if let Some(stored) = r.strategy.stored_as() {
        return resource_prefix(stored);
    }
    if r.group.is_empty() {
        format!("{ROOT}/{}/", r.plural)
    } else {
        format!("{ROOT}/{}/{}/", r.group, r.plural)
    }
}

/// Prefix of the objects of one namespace (or of all for `None`).
pub fn list_prefix(r: &Resource, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if r.namespaced => format!("{}{ns}/", resource_prefix(r)),
        _ => resource_prefix(r),
    }
}

/// Key of one object.
pub fn object_key(r: &Resource, namespace: &str, name: &str) -> String {
    if r.namespaced {
        format!("{}{namespace}/{name}", resource_prefix(r))
    } else {
        format!("{}{name}", resource_prefix(r))
    }
}

/// The end of the range of keys starting with `prefix` (etcd's prefix end).
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    "\0".to_string()
}

/// The `continue` token of a paged list, in kube-apiserver's format:
/// base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key after prefix>\u0000"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueToken {
    #[serde(rename = "v")]
    pub api_version: String,
    #[serde(rename = "rv")]
    pub revision: i64,
    /// Key to resume at, relative to the list prefix.
    pub start: String,
}

/// Why a continue token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("continue key is not valid: {0}")]
    Invalid(String),
}

impl ContinueToken {
    /// Token resuming after `last_key` (a full key under `prefix`).
    pub fn after(prefix: &str, last_key: &str, revision: i64) -> Self {
        let rel = last_key.strip_prefix(prefix).unwrap_or(last_key);
        ContinueToken {
            api_version: "meta.k8s.io/v1".into(),
            revision,
            start: format!("{rel}\u{0}"),
        }
    }

    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    pub fn decode(token: &str) -> Result<Self, TokenError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(token))
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let t: ContinueToken =
            serde_json::from_slice(&raw).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if t.api_version != "meta.k8s.io/v1" {
            return Err(TokenError::Invalid(format!(
                "got version {}, expected meta.k8s.io/v1",
                t.api_version
            )));
        }
        if t.start.contains("..") || t.start.starts_with('/') {
            return Err(TokenError::Invalid(
                "path traversal attempt detected".into(),
            ));
        }
        if t.revision <= 0 {
            return Err(TokenError::Invalid(
                "incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into(),
            ));
        }
        Ok(t)
    }

    /// Absolute key to resume the range at.
    pub fn start_key(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::find;

    #[test]
    fn keys_follow_kube_apiserver_layout() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(
            object_key(pods, "default", "nginx"),
            "/registry/pods/default/nginx"
        );
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            object_key(deploy, "kube-system", "dns"),
            "/registry/apps/deployments/kube-system/dns"
        );
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(object_key(nodes, "", "n1"), "/registry/nodes/n1");
        assert_eq!(list_prefix(pods, Some("a")), "/registry/pods/a/");
        assert_eq!(list_prefix(pods, None), "/registry/pods/");
        let ev = find("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(resource_prefix(ev), "/registry/events/");
    }

    #[test]
    fn prefix_end_bumps_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), "/registry/pods0");
    }

    #[test]
    fn continue_token_round_trips_in_kube_format() {
        let t = ContinueToken::after("/registry/pods/", "/registry/pods/default/a", 42);
        let enc = t.encode();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&enc)
            .unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            r#"{"v":"meta.k8s.io/v1","rv":42,"start":"default/a\u0000"}"#
        );
        let back = ContinueToken::decode(&enc).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            back.start_key("/registry/pods/"),
            "/registry/pods/default/a\0"
        );
        assert!(ContinueToken::decode("!!").is_err());
    }
}
