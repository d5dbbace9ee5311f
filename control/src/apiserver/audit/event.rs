//! The `audit.k8s.io/v1` `Event`: one line of the audit log, with
//! kube-apiserver's field names and omissions.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::HeaderMap;
use serde::Serialize;
use serde_json::Value;

use super::policy::{API_VERSION, Level, Stage};
use crate::apiserver::auth::User;

/// One audit event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    /// The authenticated user (the impersonator when impersonating).
    pub user: UserInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    pub request_received_timestamp: String,
    pub stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Event {
    /// A new event for a request received now, at stage `RequestReceived`.
    pub fn new(audit_id: String, request_uri: String, verb: String) -> Event {
        let now = now();
        Event {
            kind: "Event",
            api_version: API_VERSION,
            level: Level::None,
            audit_id,
            stage: Stage::RequestReceived,
            request_uri,
            verb,
            user: UserInfo::default(),
            impersonated_user: None,
            source_ips: Vec::new(),
            user_agent: String::new(),
            object_ref: None,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: now.clone(),
            stage_timestamp: now,
            annotations: BTreeMap::new(),
        }
    }

    /// The event as written at `stage` now: the objects only at the
    /// levels that record them.
    pub fn at_stage(&self, stage: Stage) -> Event {
        let mut ev = self.clone();
        ev.stage = stage;
        ev.stage_timestamp = now();
        if ev.level < Level::Request {
            ev.request_object = None;
        }
        if ev.level < Level::RequestResponse {
            ev.response_object = None;
        }
        ev
    }
}

/// `authentication.k8s.io/v1` `UserInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UserInfo {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> Self {
        UserInfo {
            username: u.name.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
            extra: u.extra.clone(),
        }
    }
}

/// The object a resource request is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

impl ObjectRef {
    /// Fills what the URL left out (a create's name) from the request
    /// object's metadata, as kube-apiserver does.
    pub fn fill_from(&mut self, object: &Value) {
        let meta = &object["metadata"];
        let field = |k: &str| meta[k].as_str().unwrap_or_default().to_owned();
        for (mine, key) in [
            (&mut self.namespace, "namespace"),
            (&mut self.name, "name"),
            (&mut self.uid, "uid"),
            (&mut self.resource_version, "resourceVersion"),
        ] {
            if mine.is_empty() {
                *mine = field(key);
            }
        }
    }
}

/// The response's `metav1.Status`: the code, and for a Status body its
/// status, message, reason and details.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResponseStatus {
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

fn is_zero(c: &u16) -> bool {
    *c == 0
}

impl ResponseStatus {
    pub fn code(code: u16) -> Self {
        ResponseStatus {
            code,
            ..Default::default()
        }
    }

    /// The status of a response whose body is `body`: a `Status` body's
    /// fields, the code alone otherwise.
    pub fn of(code: u16, body: Option<&Value>) -> Self {
        let mut s = Self::code(code);
        if let Some(b) = body.filter(|b| b["kind"] == "Status") {
            let text = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
            s.status = text("status");
            s.message = text("message");
            s.reason = text("reason");
            s.details = b.get("details").cloned();
        }
        s
    }
}

/// A `metav1.MicroTime` of now: RFC 3339 with microseconds, in UTC.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// The request's source addresses: `X-Forwarded-For`'s, then
/// `X-Real-Ip`, then the peer's, each only when it is not the last one
/// already listed (kube-apiserver's `SourceIPs`).
pub fn source_ips(headers: &HeaderMap, peer: Option<IpAddr>) -> Vec<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut ips: Vec<IpAddr> = header("x-forwarded-for")
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_default();
    let real = header("x-real-ip").and_then(|v| v.trim().parse().ok());
    for ip in [real, peer].into_iter().flatten() {
        if ips.last() != Some(&ip) {
            ips.push(ip);
        }
    }
    ips.iter().map(ToString::to_string).collect()
}

/// `v` without `metadata.managedFields`, in itself and in each item of a
/// list (`omitManagedFields`).
pub fn strip_managed_fields(v: &mut Value) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..User::default()
        }
    }

    #[test]
    fn a_resource_request_event() {
        let mut ev = Event::new(
            "0b7c3a9e-0000-4000-8000-000000000001".into(),
            "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create".into(),
            "create".into(),
        );
        ev.level = Level::RequestResponse;
        ev.user = (&user(
            "kubernetes-admin",
            &["system:masters", "system:authenticated"],
        ))
            .into();
        ev.source_ips = vec!["127.0.0.1".into()];
        ev.user_agent = "kubectl/v1.33.0".into();
        let mut object_ref = ObjectRef {
            resource: "configmaps".into(),
            namespace: "default".into(),
            api_version: "v1".into(),
            ..Default::default()
        };
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "managedFields": [{"manager": "kubectl"}]},
            "data": {"a": "1"}});
        object_ref.fill_from(&body);
        ev.object_ref = Some(object_ref);
        let mut logged = body.clone();
        strip_managed_fields(&mut logged);
        ev.request_object = Some(logged);
        ev.response_object = Some(body);
        ev.response_status = Some(ResponseStatus::code(201));
        ev.annotations
            .insert("authorization.k8s.io/decision".into(), "allow".into());
        ev.annotations
            .insert("authorization.k8s.io/reason".into(), String::new());
        let mut v = serde_json::to_value(ev.at_stage(Stage::ResponseComplete)).unwrap();
        for t in ["requestReceivedTimestamp", "stageTimestamp"] {
            let ts = v[t].as_str().unwrap().to_owned();
            assert!(
                ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
                "{t}: {ts}"
            );
            assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{ts}");
            v[t] = json!("T");
        }
        assert_eq!(
            v,
            json!({
                "kind": "Event",
                "apiVersion": "audit.k8s.io/v1",
                "level": "RequestResponse",
                "auditID": "0b7c3a9e-0000-4000-8000-000000000001",
                "stage": "ResponseComplete",
                "requestURI": "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create",
                "verb": "create",
                "user": {"username": "kubernetes-admin",
                         "groups": ["system:masters", "system:authenticated"]},
                "sourceIPs": ["127.0.0.1"],
                "userAgent": "kubectl/v1.33.0",
                "objectRef": {"resource": "configmaps", "namespace": "default",
                              "name": "cm", "apiVersion": "v1"},
                "responseStatus": {"metadata": {}, "code": 201},
                "requestObject": {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "cm"}, "data": {"a": "1"}},
                "responseObject": {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "cm", "managedFields": [{"manager": "kubectl"}]},
                                   "data": {"a": "1"}},
                "requestReceivedTimestamp": "T",
                "stageTimestamp": "T",
                "annotations": {"authorization.k8s.io/decision": "allow",
                                "authorization.k8s.io/reason": ""},
            })
        );
        // Below RequestResponse the response object is left out, below
        // Request the request object too.
        ev.level = Level::Request;
        let v = serde_json::to_value(ev.at_stage(Stage::ResponseComplete)).unwrap();
        assert!(v.get("responseObject").is_none() && v.get("requestObject").is_some());
        ev.level = Level::Metadata;
        let v = serde_json::to_value(ev.at_stage(Stage::ResponseComplete)).unwrap();
        assert!(v.get("responseObject").is_none() && v.get("requestObject").is_none());
    }

    #[test]
    fn a_non_resource_request_event() {
        let mut ev = Event::new("id".into(), "/version?timeout=32s".into(), "get".into());
        ev.level = Level::Metadata;
        ev.response_status = Some(ResponseStatus::code(200));
        let v = serde_json::to_value(ev.at_stage(Stage::ResponseComplete)).unwrap();
        assert_eq!(v["verb"], "get");
        assert_eq!(v["requestURI"], "/version?timeout=32s");
        assert_eq!(v["user"], json!({}));
        assert_eq!(v["responseStatus"], json!({"metadata": {}, "code": 200}));
        for absent in [
            "objectRef",
            "impersonatedUser",
            "requestObject",
            "responseObject",
            "annotations",
            "sourceIPs",
            "userAgent",
        ] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn an_impersonated_request_event_names_both_users() {
        let mut ev = Event::new(
            "id".into(),
            "/api/v1/namespaces/default/pods".into(),
            "list".into(),
        );
        ev.level = Level::Metadata;
        ev.user = (&user("kubernetes-admin", &["system:masters"])).into();
        let mut acting = user("nobody", &["system:authenticated"]);
        acting.uid = "u-1".into();
        acting
            .extra
            .insert("scopes".into(), vec!["view".into(), "edit".into()]);
        ev.impersonated_user = Some((&acting).into());
        let forbidden = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "Forbidden", "code": 403,
            "message": "pods is forbidden: User \"nobody\" cannot list resource \"pods\"",
            "details": {"kind": "pods"}});
        ev.response_status = Some(ResponseStatus::of(403, Some(&forbidden)));
        let v = serde_json::to_value(ev.at_stage(Stage::ResponseComplete)).unwrap();
        assert_eq!(
            v["user"],
            json!({"username": "kubernetes-admin", "groups": ["system:masters"]})
        );
        assert_eq!(
            v["impersonatedUser"],
            json!({"username": "nobody", "uid": "u-1", "groups": ["system:authenticated"],
                   "extra": {"scopes": ["view", "edit"]}})
        );
        assert_eq!(
            v["responseStatus"],
            json!({"metadata": {}, "status": "Failure",
                   "message": "pods is forbidden: User \"nobody\" cannot list resource \"pods\"",
                   "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403})
        );
    }

    #[test]
    fn source_ips_follow_the_forwarding_headers() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(source_ips(&h, Some(peer)), vec!["10.0.0.9"]);
        h.insert("x-forwarded-for", "1.2.3.4, bad, 10.0.0.9".parse().unwrap());
        assert_eq!(source_ips(&h, Some(peer)), vec!["1.2.3.4", "10.0.0.9"]);
        h.insert("x-real-ip", "5.6.7.8".parse().unwrap());
        assert_eq!(
            source_ips(&h, Some(peer)),
            vec!["1.2.3.4", "10.0.0.9", "5.6.7.8", "10.0.0.9"]
        );
    }

    #[test]
    fn managed_fields_are_stripped_from_objects_and_list_items() {
        let mut v = json!({"metadata": {"name": "a", "managedFields": []},
            "items": [{"metadata": {"name": "b", "managedFields": [{}]}}]});
        strip_managed_fields(&mut v);
        assert_eq!(
            v,
            json!({"metadata": {"name": "a"}, "items": [{"metadata": {"name": "b"}}]})
        );
    }
}
