//! Request handling: authentication check, routing, body collection,
//! dispatch to the verb handlers, auditing, and metrics.

pub mod access_review;
pub mod delete;
pub mod eviction;
pub mod list;
pub mod node_proxy;
pub mod nonresource;
pub mod output;
pub mod pod_streams;
pub mod self_subject_review;
pub mod subresources;
pub mod token_request;
pub mod token_review;
pub mod watch;
pub mod write;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;

use super::audit;
use super::auth::User;
use super::auth::authorizer::{Attributes, Decision, forbidden};
use super::codec::content::{self, Accept};
use super::metrics::{self, RequestKind};
use super::router::{self, ResourceRequest, Route, Verb};
use crate::api::resource::Handler;
use crate::api::status::ApiError;
use crate::registry::Registry;

/// Response body: whole or streamed.
pub type Body = BoxBody<Bytes, Infallible>;

/// Everything a handler needs.
pub struct Api {
    pub registry: Arc<Registry>,
    /// `host:port` clients reach the server at (discovery).
    pub server_address: String,
    /// Set once the bootstrap objects exist.
    pub bootstrapped: tokio::sync::watch::Receiver<bool>,
    /// HTTPS to the nodes' kubelets (pods/log, exec, attach).
    pub kubelet: Arc<super::kubelet::KubeletClient>,
    /// Signs service-account tokens (`serviceaccounts/token`).
    pub tokens: Arc<super::auth::tokens::ServiceAccountKey>,
    /// The token issuer's discovery documents.
    pub issuer_discovery: Arc<super::auth::issuer_discovery::IssuerDiscovery>,
    /// Authenticates bearer tokens.
    pub token_auth: super::auth::token_auth::TokenAuthenticator,
    /// Decides what the request's user may do.
    pub authorizer: Arc<super::auth::authorizer::Authorizer>,
    /// Writes the audit log, when one is configured.
    pub auditor: Option<Arc<super::audit::Auditor>>,
    /// Requests without credentials are served as `system:anonymous`
    /// (otherwise refused with 401).
    pub anonymous_auth: bool,
}

/// A parsed request.
pub struct Req {
    pub method: Method,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub user: User,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.q("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other}; valid values are: \"All\""
            ))),
        }
    }
}

/// Largest request body accepted (kube-apiserver's 3 MiB).
pub(super) const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A response with a body of the given content type.
pub fn respond(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// A response value in the negotiated representation. Protobuf is encoded
/// from the value's apiVersion and kind; a value without a protobuf form
/// is sent as JSON, as kube-apiserver sends kinds it cannot encode.
pub fn respond_json(code: u16, accept: &Accept, v: &serde_json::Value) -> Response<Body> {
    let ct = match accept {
        Accept::Yaml => content::YAML,
        Accept::Protobuf => match super::codec::protobuf::encode(v) {
            Ok(bytes) => return respond(code, super::codec::protobuf::MEDIA_TYPE, bytes),
            Err(e) => {
                tracing::warn!(kind = %v["kind"], error = %e, "response not encodable as protobuf, sending JSON");
                content::JSON
            }
        },
        _ => content::JSON,
    };
    respond(code, ct, content::encode(accept, v))
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    respond(
        e.code,
        content::JSON,
        serde_json::to_vec(&e.to_status()).unwrap_or_default(),
    )
}

/// An error Status in the representation the request's Accept header
/// prefers: protobuf when it comes first (as kube-apiserver encodes errors
/// with the negotiated serializer), JSON otherwise.
pub fn error_response_for(e: &ApiError, accept: Option<&str>) -> Response<Body> {
    let offers = content::Offers {
        protobuf: true,
        ..Default::default()
    };
    match content::negotiate_offers(accept, offers) {
        Ok(a @ Accept::Protobuf) if e.code != 406 => respond_json(e.code, &a, &e.to_status()),
        _ => error_response(e),
    }
}

/// Handles one HTTP request from `peer`: serves it, audits it when
/// auditing is on, and names its audit ID in the `Audit-ID` header. A
/// handler that panics gets kube-apiserver's 500 (and a `Panic` event).
pub async fn handle(
    api: Arc<Api>,
    req: hyper::Request<Incoming>,
    user: Option<User>,
    peer: Option<IpAddr>,
) -> Result<Response<Body>, Infallible> {
    let id = audit::audit_id(req.headers());
    let mut record = api
        .auditor
        .clone()
        .map(|a| audit::Record::new(a, id.clone(), req.uri(), req.headers(), peer));
    let served = AssertUnwindSafe(crate::registry::audit_annotations::collect(serve(
        api,
        req,
        user,
        &mut record,
    )))
    .catch_unwind()
    .await;
    let mut resp = match (served, record) {
        (Ok((resp, annotations)), Some(mut record)) => {
            record.annotate(annotations);
            record.finish(resp).await
        }
        (Ok((resp, _)), None) => resp,
        (Err(panic), record) => {
            let message = panic_message(panic.as_ref());
            tracing::error!(panic = %message, "request handler panicked");
            if let Some(record) = record {
                record.panicked(&message);
            }
            error_response(&ApiError::new(
                500,
                "InternalError",
                "This request caused apiserver to panic. Look in the logs for details.",
            ))
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(audit::AUDIT_ID_HEADER, v);
    }
    Ok(resp)
}

/// What a panic said.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// The authorization attributes of a routed request.
fn attributes(
    route: &Route,
    user: User,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> Attributes {
    match route {
        Route::Resource(rr) => Attributes::of_resource(user, rr, query),
        _ => Attributes::of_path(user, method, path),
    }
}

/// Starts a request's audit (when audited) with `user` as the one who sent
/// it; `unauthenticated` is the message of a refusal at authentication.
fn begin_audit(
    record: &mut Option<audit::Record>,
    route: &Route,
    user: User,
    parts: &http::request::Parts,
    query: &HashMap<String, String>,
    unauthenticated: Option<&str>,
) {
    let Some(record) = record.as_mut() else {
        return;
    };
    let rr = match route {
        Route::Resource(rr) => Some(rr),
        _ => None,
    };
    let verb = audit::verb(rr, &parts.method);
    let mut attrs = attributes(route, user, &parts.method, parts.uri.path(), query);
    // The policy sees the request's own verb (a stream's GET is a get).
    attrs.verb = verb.clone();
    let object_ref = rr.map(|rr| audit::object_ref(rr, &attrs));
    match unauthenticated {
        Some(message) => record.unauthenticated(&attrs, object_ref, verb, message),
        None => record.begin(&attrs, object_ref, verb),
    }
}

/// What a refused authentication tried, as kube-apiserver's audit of it
/// says.
fn failed_authentication(parts: &http::request::Parts) -> &'static str {
    if bearer_token(&parts.headers).is_some() {
        "Authentication failed, attempted: bearer"
    } else {
        "Authentication failed, no credentials provided"
    }
}

/// Serves one request, telling `record` what the audit needs.
async fn serve(
    api: Arc<Api>,
    req: hyper::Request<Incoming>,
    user: Option<User>,
    record: &mut Option<audit::Record>,
) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let query = router::parse_query(parts.uri.query());
    let path = parts.uri.path().to_string();
    // A request the router refuses (a method a path does not take) is
    // still authenticated and audited, as kube-apiserver's filters do
    // before its handlers answer; its audit record names the path.
    let (route, refused) = match router::route(&parts.method, &path, &query) {
        Ok(r) => (r, None),
        Err(e) => (Route::NotFound, Some(e)),
    };
    // Without a client certificate, a bearer token; one that does not
    // authenticate is refused whatever the path, as kube-apiserver does.
    // Without either, `system:anonymous` (with `--anonymous-auth`, as
    // kube-apiserver's default), whom the authorizers judge like anyone.
    let authenticated = match (user, bearer_token(&parts.headers)) {
        (Some(user), _) => Some(user),
        (None, Some(token)) => {
            match super::auth::bootstrap_tokens::authenticate(&api.registry, token).await {
                Some(bootstrap) => bootstrap,
                None => api.token_auth.authenticate(token).await,
            }
        }
        (None, None) => api.anonymous_auth.then(|| User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..User::default()
        }),
    };
    let Some(user) = authenticated else {
        let message = failed_authentication(&parts);
        begin_audit(
            record,
            &route,
            User::default(),
            &parts,
            &query,
            Some(message),
        );
        return error_response(&ApiError::unauthorized());
    };
    begin_audit(record, &route, user.clone(), &parts, &query, None);
    if let Some(e) = refused {
        return error_response(&e);
    }
    for asked in super::auth::impersonation::requested_access(&user, &parts.headers) {
        if let Err(e) = api.authorizer.check(&asked) {
            return error_response(&e);
        }
    }
    let impersonating = parts.headers.contains_key("impersonate-user");
    let user = match super::auth::impersonation::acting_user(user, &parts.headers) {
        Ok(user) => user,
        Err(e) => return error_response(&e),
    };
    if impersonating && let Some(record) = record.as_mut() {
        record.impersonating(&user);
    }
    let attributes = attributes(&route, user.clone(), &parts.method, &path, &query);
    let (decision, reason) = api.authorizer.authorize(&attributes);
    let allowed = decision == Decision::Allow;
    if let Some(record) = record.as_mut() {
        record.authorized(allowed, &reason);
    }
    if !allowed {
        return error_response_for(
            &forbidden(&attributes, &reason),
            parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        );
    }
    if let Route::Resource(rr) = &route
        && audit::is_long_running(rr)
        && let Some(record) = record.as_mut()
    {
        record.long_running();
    }
    if let Route::Resource(rr) = &route
        && (pod_streams::is_stream(rr) || node_proxy::is_node_proxy(rr))
    {
        // Streams keep the connection (upgrades) and pass their bodies on.
        let kind = request_kind(rr);
        let req = hyper::Request::from_parts(parts, body);
        let resp = match check_verb(rr) {
            Ok(()) if node_proxy::is_node_proxy(rr) => node_proxy::handle(&api, rr, req).await,
            Ok(()) => pod_streams::handle(&api, rr, req).await,
            Err(e) => Err(e),
        }
        .unwrap_or_else(|e| error_response(&e));
        metrics::observe_request(&kind, resp.status().as_u16(), started.elapsed());
        return resp;
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error_response(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                "Request entity too large: limit is 3145728",
            ));
        }
    };
    if let Route::Resource(rr) = &route
        && let Some(record) = record.as_mut()
    {
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        record.request_body(rr.verb, content_type, &body);
    }
    let r = Req {
        method: parts.method,
        query,
        headers: parts.headers,
        body,
        user,
    };
    let (kind, resp) = match route {
        Route::Resource(rr) => {
            let kind = request_kind(&rr);
            let resp = match resource(&api, &rr, &r, &kind).await {
                Ok(resp) => resp,
                Err(e) => error_response_for(&e, r.header("accept")),
            };
            (kind, resp)
        }
        other => {
            let resp = match nonresource::handle(&api, other, &r).await {
                Ok(resp) => resp,
                Err(e) => error_response(&e),
            };
            (
                RequestKind {
                    verb: "GET",
                    ..Default::default()
                },
                resp,
            )
        }
    };
    metrics::observe_request(&kind, resp.status().as_u16(), started.elapsed());
    resp
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn request_kind(rr: &ResourceRequest) -> RequestKind {
    RequestKind {
        verb: rr.verb.metric(),
        group: rr.resource.group.to_string(),
        version: rr.resource.version.to_string(),
        resource: rr.resource.plural.to_string(),
        subresource: rr.subresource.clone().unwrap_or_default(),
        scope: if rr.name.is_some() {
            "resource"
        } else if rr.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        },
    }
}

/// 405 unless the resource (or subresource) serves the verb.
fn check_verb(rr: &ResourceRequest) -> Result<(), ApiError> {
    let res = rr.resource;
    let allowed = match &rr.subresource {
        Some(s) => res.subresource(s).map(|s| s.verbs).unwrap_or(&[]),
        None => res.verbs,
    };
    let verb_name = match rr.verb {
        Verb::Watch if rr.subresource.is_none() => "watch",
        v => v.as_str(),
    };
    if !allowed.contains(&verb_name) {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "{} is not supported on resources of kind \"{}\"",
                verb_name,
                res.group_resource()
            ),
        ));
    }
    Ok(())
}

async fn resource(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
    kind: &RequestKind,
) -> Result<Response<Body>, ApiError> {
    check_verb(rr)?;
    match rr.resource.strategy.handler() {
        Handler::SelfSubjectReview => return self_subject_review::create(rr, r),
        Handler::AccessReview => return access_review::create(api, rr, r),
        Handler::TokenReview => return token_review::create(api, rr, r).await,
        Handler::Registry => {}
    }
    let verb = rr.verb;
    if let Some(sub) = rr.subresource.as_deref()
        && !crate::registry::strategy::writes_the_object(sub)
    {
        return subresources::handle(api, rr, r, sub).await;
    }
    match verb {
        Verb::Get => list::get(api, rr, r).await,
        Verb::List => list::list(api, rr, r).await,
        Verb::Watch => watch::watch(api.clone(), rr, r, kind).await,
        Verb::Create => write::create(api, rr, r).await,
        Verb::Update => write::update(api, rr, r).await,
        Verb::Patch => write::patch(api, rr, r).await,
        Verb::Delete => delete::delete(api, rr, r).await,
        Verb::DeleteCollection => delete::delete_collection(api, rr, r).await,
    }
}
