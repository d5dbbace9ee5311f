//! The audit log (`--audit-policy-file`, `--audit-log-*`): kube-apiserver's
//! auditing with its log backend. Every request that gets past
//! authentication is matched against the [`policy`]; at a level above
//! `None` it yields [`event::Event`]s at its stages (`RequestReceived`,
//! `ResponseStarted` for long-running requests, `ResponseComplete`, or
//! `Panic` when the handler panics),
//! written as JSON lines by the [`log`] backend. A request refused at
//! authentication is audited too, with one `ResponseStarted` event.
//!
//! A request's [`Record`] follows it through the handler: who sent it and
//! as whom it acts, what it is about, the authorization decision, the
//! request object; [`Record::finish`] adds the response.

pub mod event;
pub mod log;
pub mod policy;

use std::convert::Infallible;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use serde_json::Value;

use super::auth::User;
use super::auth::authorizer::Attributes;
use super::router::{ResourceRequest, Verb};
use event::{Event, ObjectRef, ResponseStatus, UserInfo};
use log::{LogBackend, LogConfig, LogError};
use policy::{Level, Policy, PolicyError, RequestConfig, Stage};

/// The response header (and request header a client may set) carrying
/// the request's audit ID.
pub const AUDIT_ID_HEADER: &str = "audit-id";

/// The annotations the authorization step adds.
pub const DECISION_ANNOTATION: &str = "authorization.k8s.io/decision";
pub const REASON_ANNOTATION: &str = "authorization.k8s.io/reason";

type Body = BoxBody<Bytes, Infallible>;

/// Errors setting up auditing.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The policy and the backend events are written to.
pub struct Auditor {
    policy: Policy,
    backend: LogBackend,
}

impl Auditor {
    pub fn new(policy: Policy, backend: LogBackend) -> Auditor {
        Auditor { policy, backend }
    }

    /// The auditor of a policy file and a log.
    pub fn open(policy_file: &Path, log: &LogConfig) -> Result<Auditor, AuditError> {
        Ok(Auditor::new(
            Policy::load(policy_file)?,
            LogBackend::open(log)?,
        ))
    }

    fn write(&self, ev: &Event) {
        let line = match serde_json::to_vec(ev) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "encoding audit event");
                return;
            }
        };
        if let Err(e) = self.backend.write_line(&line) {
            tracing::error!(error = %e, audit_id = %ev.audit_id, "writing audit event");
        }
    }
}

/// The request's audit ID: the one the client sent in `Audit-ID`, or a
/// new UUID.
pub fn audit_id(headers: &HeaderMap) -> String {
    headers
        .get(AUDIT_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The event's verb: the resource verb, or the method in lower case.
pub fn verb(rr: Option<&ResourceRequest>, method: &http::Method) -> String {
    match rr {
        Some(rr) => rr.verb.as_str().to_owned(),
        None => method.as_str().to_ascii_lowercase(),
    }
}

/// The object a resource request is about, from its attributes (which
/// put a namespace's name as its namespace, as kube-apiserver does).
pub fn object_ref(rr: &ResourceRequest, attrs: &Attributes) -> ObjectRef {
    ObjectRef {
        resource: rr.resource.plural.to_owned(),
        namespace: attrs.namespace.clone(),
        name: rr.name().to_owned(),
        api_group: rr.resource.group.to_owned(),
        api_version: rr.resource.version.to_owned(),
        subresource: rr.subresource.clone().unwrap_or_default(),
        ..ObjectRef::default()
    }
}

/// Whether a request is long-running (kube-apiserver's default check):
/// watches, proxies, and a pod's exec, attach, portforward and log.
pub fn is_long_running(rr: &ResourceRequest) -> bool {
    rr.verb == Verb::Watch
        || matches!(
            rr.subresource.as_deref(),
            Some("exec" | "attach" | "portforward" | "log" | "proxy")
        )
}

/// One request's audit: its event so far and what the policy says.
pub struct Record {
    auditor: Arc<Auditor>,
    event: Event,
    /// Set once the policy has been asked; `None` when the request is not
    /// audited (yet, or at all).
    config: Option<RequestConfig>,
    long_running: bool,
}

impl Record {
    /// A record of a request received now.
    pub fn new(
        auditor: Arc<Auditor>,
        audit_id: String,
        uri: &http::Uri,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Record {
        let request_uri = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let mut event = Event::new(audit_id, request_uri, String::new());
        event.source_ips = event::source_ips(headers, peer);
        event.user_agent = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Record {
            auditor,
            event,
            config: None,
            long_running: false,
        }
    }

    /// The authenticated request: the policy decides its level from
    /// `attrs` (the authenticated user's), and at a level above `None`
    /// the `RequestReceived` event is written.
    pub fn begin(&mut self, attrs: &Attributes, object_ref: Option<ObjectRef>, verb: String) {
        if !self.evaluate(attrs, object_ref, verb) {
            return;
        }
        self.write(Stage::RequestReceived);
    }

    /// A request refused at authentication: one `ResponseStarted` event
    /// with the 401 and what was tried, and no user.
    pub fn unauthenticated(
        &mut self,
        attrs: &Attributes,
        object_ref: Option<ObjectRef>,
        verb: String,
        message: &str,
    ) {
        if !self.evaluate(attrs, object_ref, verb) {
            return;
        }
        self.event.response_status = Some(ResponseStatus {
            message: message.to_owned(),
            ..ResponseStatus::code(401)
        });
        self.write(Stage::ResponseStarted);
        self.config = None;
    }

    fn evaluate(
        &mut self,
        attrs: &Attributes,
        object_ref: Option<ObjectRef>,
        verb: String,
    ) -> bool {
        let config = self.auditor.policy.evaluate(attrs);
        if config.level == Level::None {
            return false;
        }
        self.event.level = config.level;
        self.event.verb = verb;
        self.event.user = if attrs.user.name.is_empty() {
            UserInfo::default()
        } else {
            UserInfo::from(&attrs.user)
        };
        self.event.object_ref = object_ref;
        self.config = Some(config);
        true
    }

    /// The request acts as `user` (impersonation).
    pub fn impersonating(&mut self, user: &User) {
        self.event.impersonated_user = Some(user.into());
    }

    /// The authorizer's decision and its reason.
    pub fn authorized(&mut self, allowed: bool, reason: &str) {
        let decision = if allowed { "allow" } else { "forbid" };
        self.event
            .annotations
            .insert(DECISION_ANNOTATION.into(), decision.into());
        self.event
            .annotations
            .insert(REASON_ANNOTATION.into(), reason.into());
    }

    /// Annotations admission added (PodSecurity's), on the events written
    /// from now on.
    pub fn annotate(&mut self, annotations: std::collections::BTreeMap<String, String>) {
        self.event.annotations.extend(annotations);
    }

    /// The response is a stream: `ResponseStarted` when it begins,
    /// `ResponseComplete` when it ends.
    pub fn long_running(&mut self) {
        self.long_running = true;
    }

    /// The request body of a write: it names the object a create is about,
    /// and is the event's `requestObject` at level `Request` and above.
    pub fn request_body(&mut self, verb: Verb, content_type: Option<&str>, body: &[u8]) {
        let Some(config) = &self.config else {
            return;
        };
        let names_object = matches!(verb, Verb::Create | Verb::Update);
        if body.is_empty() || (config.level < Level::Request && !names_object) {
            return;
        }
        let Some(mut value) = decode(content_type, body) else {
            return;
        };
        if names_object && let Some(r) = self.event.object_ref.as_mut() {
            r.fill_from(&value);
        }
        if config.level >= Level::Request {
            if config.omit_managed_fields {
                event::strip_managed_fields(&mut value);
            }
            self.event.request_object = Some(value);
        }
    }

    /// Adds the response: its status, and at `RequestResponse` its object.
    /// A stream's `ResponseStarted` is written now and its
    /// `ResponseComplete` when its body ends or is dropped; any other
    /// request's `ResponseComplete` is written now.
    pub async fn finish(mut self, resp: Response<Body>) -> Response<Body> {
        let Some(config) = self.config.clone() else {
            return resp;
        };
        let code = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        if self.long_running {
            self.event.response_status = Some(ResponseStatus::code(code));
            self.write(Stage::ResponseStarted);
            let body = AuditedBody {
                inner: body,
                record: Some(self),
            };
            return Response::from_parts(parts, body.boxed());
        }
        // Whole bodies only: a Status for failures, any object at
        // RequestResponse.
        let wanted = config.level >= Level::RequestResponse || code >= 300;
        let (body, value) = if wanted && body.size_hint().exact().is_some() {
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_else(|never| match never {});
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let value = decode(content_type, &bytes);
            (Full::new(bytes).boxed(), value)
        } else {
            (body, None)
        };
        self.event.response_status = Some(ResponseStatus::of(code, value.as_ref()));
        if config.level >= Level::RequestResponse
            && let Some(mut v) = value
        {
            if config.omit_managed_fields {
                event::strip_managed_fields(&mut v);
            }
            self.event.response_object = Some(v);
        }
        self.write(Stage::ResponseComplete);
        Response::from_parts(parts, body)
    }

    /// The handler panicked: the `Panic` event, with upstream's 500.
    pub fn panicked(mut self, message: &str) {
        self.event.response_status = Some(ResponseStatus {
            status: "Failure".into(),
            reason: "InternalError".into(),
            message: format!("APIServer panic'd: {message}"),
            ..ResponseStatus::code(500)
        });
        self.write(Stage::Panic);
    }

    /// Writes the event at `stage` unless the policy omits that stage.
    fn write(&self, stage: Stage) {
        let Some(config) = &self.config else {
            return;
        };
        if config.omit_stages.contains(&stage) {
            return;
        }
        self.auditor.write(&self.event.at_stage(stage));
    }
}

/// A JSON, YAML or protobuf body as a JSON value (JSON and YAML for the
/// patch types too); `None` when it is none of them or does not parse.
fn decode(content_type: Option<&str>, body: &[u8]) -> Option<Value> {
    let ct = content_type.unwrap_or("application/json");
    if ct.contains("protobuf") {
        super::codec::protobuf::decode(body).ok()
    } else if ct.contains("yaml") {
        serde_yaml_ng::from_slice(body).ok()
    } else if ct.contains("json") {
        serde_json::from_slice(body).ok()
    } else {
        None
    }
}

/// A stream's body: when it ends (or the client goes), the request's
/// `ResponseComplete` event is written.
struct AuditedBody {
    inner: Body,
    record: Option<Record>,
}

impl HttpBody for AuditedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.write(Stage::ResponseComplete);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auditor(dir: &Path, policy: &str) -> (Arc<Auditor>, std::path::PathBuf) {
        let path = dir.join("audit.log");
        let policy = Policy::parse(&format!(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\n{policy}"
        ))
        .unwrap();
        let backend = LogBackend::open(&LogConfig {
            path: path.clone(),
            max_size_mb: 1,
            max_backups: 0,
            max_age_days: 0,
        })
        .unwrap();
        (Arc::new(Auditor::new(policy, backend)), path)
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn admin() -> User {
        User {
            name: "kubernetes-admin".into(),
            groups: vec!["system:masters".into()],
            ..User::default()
        }
    }

    fn json_response(code: u16, v: &Value) -> Response<Body> {
        let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(v).unwrap())).boxed());
        *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().unwrap(),
        );
        r
    }

    #[tokio::test]
    async fn a_write_is_logged_at_each_stage_with_its_objects() {
        let dir = tempfile::tempdir().unwrap();
        let (a, path) = auditor(
            dir.path(),
            "omitManagedFields: true\nrules: [{level: RequestResponse}]\n",
        );
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", "kubectl/v1.33".parse().unwrap());
        let uri: http::Uri = "/api/v1/namespaces/default/configmaps?fieldManager=x"
            .parse()
            .unwrap();
        let mut r = Record::new(
            a,
            "id-1".into(),
            &uri,
            &headers,
            Some("127.0.0.1".parse().unwrap()),
        );
        let attrs = Attributes {
            user: admin(),
            verb: "create".into(),
            resource_request: true,
            namespace: "default".into(),
            resource: "configmaps".into(),
            ..Attributes::default()
        };
        let oref = ObjectRef {
            resource: "configmaps".into(),
            namespace: "default".into(),
            api_version: "v1".into(),
            ..ObjectRef::default()
        };
        r.begin(&attrs, Some(oref), "create".into());
        r.authorized(true, "");
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "managedFields": [{}]}});
        r.request_body(
            Verb::Create,
            Some("application/json"),
            &serde_json::to_vec(&body).unwrap(),
        );
        let resp = r.finish(json_response(201, &body)).await;
        assert_eq!(resp.status(), 201);
        let out = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), body);
        let l = lines(&path);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0]["stage"], "RequestReceived");
        assert_eq!(l[0]["objectRef"]["name"], Value::Null);
        assert!(l[0].get("requestObject").is_none());
        assert_eq!(l[1]["stage"], "ResponseComplete");
        assert_eq!(l[1]["auditID"], "id-1");
        assert_eq!(l[1]["objectRef"]["name"], "cm");
        assert_eq!(l[1]["responseStatus"]["code"], 201);
        assert_eq!(
            l[1]["requestObject"]["metadata"],
            serde_json::json!({"name": "cm"})
        );
        assert_eq!(
            l[1]["responseObject"]["metadata"],
            serde_json::json!({"name": "cm"})
        );
        assert_eq!(l[1]["annotations"][DECISION_ANNOTATION], "allow");
        assert_eq!(l[1]["sourceIPs"], serde_json::json!(["127.0.0.1"]));
        assert_eq!(l[1]["userAgent"], "kubectl/v1.33");
    }

    #[tokio::test]
    async fn a_refusal_logs_its_status_and_unaudited_requests_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, path) = auditor(
            dir.path(),
            "omitStages: [RequestReceived]\nrules:\n- {level: None, nonResourceURLs: [/healthz*]}\n- {level: Metadata}\n",
        );
        let uri: http::Uri = "/healthz".parse().unwrap();
        let mut quiet = Record::new(a.clone(), "q".into(), &uri, &HeaderMap::new(), None);
        let health = Attributes {
            user: admin(),
            verb: "get".into(),
            path: "/healthz".into(),
            ..Attributes::default()
        };
        quiet.begin(&health, None, "get".into());
        let _ = quiet
            .finish(json_response(200, &serde_json::json!({})))
            .await;
        let uri: http::Uri = "/api/v1/pods".parse().unwrap();
        let mut refused = Record::new(a.clone(), "r".into(), &uri, &HeaderMap::new(), None);
        let attrs = Attributes {
            user: admin(),
            verb: "list".into(),
            resource_request: true,
            resource: "pods".into(),
            ..Attributes::default()
        };
        refused.begin(&attrs, None, "list".into());
        refused.authorized(false, "no RBAC policy matched");
        let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "forbidden", "reason": "Forbidden", "code": 403});
        let _ = refused.finish(json_response(403, &status)).await;
        let mut anonymous = Record::new(a, "u".into(), &uri, &HeaderMap::new(), None);
        anonymous.unauthenticated(
            &Attributes {
                user: User::default(),
                ..attrs
            },
            None,
            "list".into(),
            "Authentication failed, attempted: bearer",
        );
        let _ = anonymous
            .finish(json_response(401, &serde_json::json!({})))
            .await;
        let l = lines(&path);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[0]["auditID"], "r");
        assert_eq!(l[0]["stage"], "ResponseComplete");
        assert_eq!(
            l[0]["responseStatus"],
            serde_json::json!({"metadata": {}, "status": "Failure", "message": "forbidden",
                               "reason": "Forbidden", "code": 403})
        );
        assert_eq!(l[0]["annotations"][DECISION_ANNOTATION], "forbid");
        assert_eq!(
            l[0]["annotations"][REASON_ANNOTATION],
            "no RBAC policy matched"
        );
        assert_eq!(l[1]["auditID"], "u");
        assert_eq!(l[1]["stage"], "ResponseStarted");
        assert_eq!(l[1]["user"], serde_json::json!({}));
        assert_eq!(
            l[1]["responseStatus"],
            serde_json::json!({"metadata": {}, "message": "Authentication failed, attempted: bearer",
                               "code": 401})
        );
    }

    #[tokio::test]
    async fn a_stream_completes_when_its_body_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (a, path) = auditor(dir.path(), "rules: [{level: Metadata}]\n");
        let uri: http::Uri = "/api/v1/pods?watch=true".parse().unwrap();
        let mut r = Record::new(a, "w".into(), &uri, &HeaderMap::new(), None);
        let attrs = Attributes {
            user: admin(),
            verb: "watch".into(),
            resource_request: true,
            resource: "pods".into(),
            ..Attributes::default()
        };
        r.begin(&attrs, None, "watch".into());
        r.long_running();
        let resp = r
            .finish(json_response(200, &serde_json::json!({"type": "ADDED"})))
            .await;
        let stages = |l: Vec<Value>| -> Vec<String> {
            l.iter()
                .map(|v| v["stage"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(stages(lines(&path)), ["RequestReceived", "ResponseStarted"]);
        let _ = resp.into_body().collect().await.unwrap();
        assert_eq!(
            stages(lines(&path)),
            ["RequestReceived", "ResponseStarted", "ResponseComplete"]
        );
    }

    #[test]
    fn a_panic_is_its_own_stage() {
        let dir = tempfile::tempdir().unwrap();
        let (a, path) = auditor(dir.path(), "rules: [{level: Metadata}]\n");
        let uri: http::Uri = "/api/v1/pods".parse().unwrap();
        let mut r = Record::new(a, "p".into(), &uri, &HeaderMap::new(), None);
        let attrs = Attributes {
            user: admin(),
            verb: "list".into(),
            resource_request: true,
            resource: "pods".into(),
            ..Attributes::default()
        };
        r.begin(&attrs, None, "list".into());
        r.panicked("index out of bounds");
        let l = lines(&path);
        assert_eq!(l.len(), 2);
        assert_eq!(l[1]["stage"], "Panic");
        assert_eq!(
            l[1]["responseStatus"],
            serde_json::json!({"metadata": {}, "status": "Failure",
                "message": "APIServer panic'd: index out of bounds",
                "reason": "InternalError", "code": 500})
        );
    }

    #[test]
    fn a_client_audit_id_is_kept() {
        let mut h = HeaderMap::new();
        assert!(uuid::Uuid::parse_str(&audit_id(&h)).is_ok());
        h.insert("audit-id", "mine".parse().unwrap());
        assert_eq!(audit_id(&h), "mine");
    }
}
