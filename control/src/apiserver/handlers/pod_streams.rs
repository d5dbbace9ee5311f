//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward` (kube's
//! `LogREST`, `ExecREST`, `AttachREST` and `PortForwardREST`): the options
//! from the query, the pod's container and node, the node's kubelet
//! (`pkg/registry/core/pod/strategy.go`: `LogLocation`, `streamLocation`,
//! `PortForwardLocation`), then the stream — a log body passed on as it
//! comes, an exec/attach session proxied through its upgrade or, for
//! websocket `v5.channel.k8s.io` clients, translated to SPDY, a port
//! forwarding session proxied through its SPDY upgrade or, for clients
//! tunnelling SPDY through a websocket, carried through that tunnel.

use std::sync::Arc;

use http::{Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::Value;

use super::{Api, Body, respond};
use crate::api::status::{ApiError, Cause};
use crate::apiserver::kubelet::{self, Endpoint};
use crate::apiserver::router::ResourceRequest;
use crate::apiserver::streaming::{self, StreamOptions};
use crate::kinds;

/// Whether the request is for one of the streaming subresources.
pub fn is_stream(rr: &ResourceRequest) -> bool {
    rr.resource.group.is_empty()
        && rr.resource.plural == "pods"
        && matches!(
            rr.subresource.as_deref(),
            Some("log" | "exec" | "attach" | "portforward")
        )
}

/// Query parameters in order, repeated keys kept (`command`).
fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    let dec = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

/// Go's `url.QueryEscape` set: everything but `A-Za-z0-9-_.~` (and space,
/// which becomes `+`).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b' ');

/// Go's `url.Values.Encode`: keys sorted, values in order.
fn encode_query(mut pairs: Vec<(&str, String)>) -> String {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY).to_string().replace(' ', "+"),
                utf8_percent_encode(v, QUERY).to_string().replace(' ', "+")
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

struct Query(Vec<(String, String)>);

impl Query {
    fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// apimachinery's `Convert_Slice_string_To_bool`: present and neither
    /// `0` nor `false`.
    fn flag(&self, key: &str) -> bool {
        match self.first(key) {
            None => false,
            Some(v) => v != "0" && !v.eq_ignore_ascii_case("false"),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.first(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
            }),
        }
    }

    fn container(&self) -> Option<&str> {
        self.first("container").filter(|c| !c.is_empty())
    }
}

/// Names of the pod's containers in kube's `VisitContainers` order:
/// init containers, containers, ephemeral containers.
fn container_names(pod: &Value) -> Vec<String> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| {
            pod.pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
        })
        .collect()
}

/// kube's `validateContainer`: a named container must exist; none named
/// means the only one, or a 400 listing them.
fn validate_container(
    container: Option<&str>,
    pod: &Value,
    name: &str,
) -> Result<String, ApiError> {
    if let Some(c) = container {
        if container_names(pod).iter().any(|n| n == c) {
            return Ok(c.to_string());
        }
        return Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        )));
    }
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name")?.as_str())
        .collect();
    match containers.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            container_names(pod).join(" ")
        ))),
    }
}

/// The kubelet endpoint of node `node` (kube's `GetConnectionInfo`).
pub(super) async fn node_endpoint(api: &Api, node: &str) -> Result<Endpoint, ApiError> {
    let nodes = kinds::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("the nodes resource is not served"))?;
    let n = api.registry.get(nodes, "", node).await?;
    kubelet::endpoint_of(&n, &api.kubelet.preferred_address_types)
        .map_err(|msg| ApiError::new(500, "", msg))
}

/// The kubelet of the node pod `name` is bound to; 400 while it is bound
/// to none (exec, attach and port forwarding need a running pod).
async fn assigned_kubelet(api: &Api, pod: &Value, name: &str) -> Result<Endpoint, ApiError> {
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    node_endpoint(api, node).await
}

/// `PodLogOptions` from the query, validated like `ValidatePodLogOptions`.
#[derive(Debug)]
struct LogOptions {
    container: Option<String>,
    params: Vec<(&'static str, String)>,
}

fn log_options(q: &Query, name: &str) -> Result<LogOptions, ApiError> {
    let tail = q.int("tailLines")?;
    let limit = q.int("limitBytes")?;
    let since_seconds = q.int("sinceSeconds")?;
    let since_time = match q.first("sinceTime").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<jiff::Timestamp>().map_err(|_| {
            ApiError::bad_request(format!(
                "parsing time {s:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {s:?} as \"2006\""
            ))
        })?),
    };
    let mut causes = Vec::new();
    let invalid = |field: &str, value: i64, why: &str| Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {why}"),
        field: field.into(),
    };
    if let Some(t) = tail
        && t < 0
    {
        causes.push(invalid(
            "tailLines",
            t,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(l) = limit
        && l < 1
    {
        causes.push(invalid("limitBytes", l, "must be greater than 0"));
    }
    match (since_seconds, since_time) {
        (Some(_), Some(_)) => causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                .into(),
            field: String::new(),
        }),
        (Some(s), None) if s < 1 => {
            causes.push(invalid("sinceSeconds", s, "must be greater than 0"))
        }
        _ => {}
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("PodLogOptions", "", name, &causes));
    }
    let mut params = Vec::new();
    for (key, on) in [
        ("follow", q.flag("follow")),
        ("previous", q.flag("previous")),
        ("timestamps", q.flag("timestamps")),
    ] {
        if on {
            params.push((key, "true".to_string()));
        }
    }
    if let Some(s) = since_seconds {
        params.push(("sinceSeconds", s.to_string()));
    }
    if let Some(t) = since_time {
        params.push(("sinceTime", t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
    }
    if let Some(t) = tail {
        params.push(("tailLines", t.to_string()));
    }
    if let Some(l) = limit {
        params.push(("limitBytes", l.to_string()));
    }
    Ok(LogOptions {
        container: q.container().map(str::to_string),
        params,
    })
}

/// A kubelet's non-2xx answer to a log request, as kube's
/// `GenericHttpResponseChecker` turns it into a Status.
fn checked_error(code: u16, body: &str, pod: &str) -> ApiError {
    match code {
        500 => ApiError::internal(body),
        400 => ApiError::bad_request(body),
        _ => {
            let (reason, message) = match code {
                404 => (
                    "NotFound",
                    "the server could not find the requested resource".to_string(),
                ),
                403 => ("Forbidden", body.to_string()),
                401 => (
                    "Unauthorized",
                    "the server has asked for the client to provide credentials".to_string(),
                ),
                503 => (
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request".to_string(),
                ),
                c if c >= 500 => (
                    "InternalError",
                    format!(
                        "an error on the server ({body:?}) has prevented the request from succeeding"
                    ),
                ),
                c => (
                    "",
                    format!(
                        "the server responded with the status code {c} but did not return more information"
                    ),
                ),
            };
            ApiError::new(code, reason, format!("{message} ( pods/log {pod})"))
                .with_details(serde_json::json!({"name": pod, "kind": "pods/log"}))
        }
    }
}

async fn log(api: &Arc<Api>, rr: &ResourceRequest, q: &Query) -> Result<Response<Body>, ApiError> {
    let name = rr.name();
    let opts = log_options(q, name)?;
    let pod = api.registry.get(rr.resource, rr.namespace(), name).await?;
    let container = validate_container(opts.container.as_deref(), &pod, name)?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        // kube's LocationStreamer without a location: an empty stream.
        return Ok(respond(200, "text/plain", bytes::Bytes::new()));
    }
    let endpoint = node_endpoint(api, node).await?;
    let mut path = format!("/containerLogs/{}/{name}/{container}", rr.namespace());
    if !opts.params.is_empty() {
        path.push('?');
        path.push_str(&encode_query(opts.params));
    }
    let req = Request::get(path.as_str())
        .header(http::header::HOST, endpoint.authority())
        .body(Empty::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = api.kubelet.send(&endpoint, req).await.map_err(|e| {
        ApiError::new(
            500,
            "",
            format!("Get \"https://{}{path}\": {e}", endpoint.authority()),
        )
    })?;
    let status = resp.status().as_u16();
    if !(200..=206).contains(&status) {
        use http_body_util::BodyExt as _;
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]).into_owned();
        return Err(checked_error(status, &text, name));
    }
    let mut out = Response::new(streaming::stream_body(resp.into_body()));
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(out)
}

async fn exec_or_attach(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    q: &Query,
    exec: bool,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let name = rr.name();
    let opts = StreamOptions {
        stdin: q.flag("stdin"),
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        tty: q.flag("tty"),
    };
    let pod = api.registry.get(rr.resource, rr.namespace(), name).await?;
    let container = validate_container(q.container(), &pod, name)?;
    let endpoint = assigned_kubelet(api, &pod, name).await?;
    // kube's `streamParams`.
    let mut params: Vec<(&str, String)> = Vec::new();
    for (key, on) in [
        ("stdin", opts.stdin),
        ("stdout", opts.stdout),
        ("stderr", opts.stderr),
        ("tty", opts.tty),
    ] {
        if on {
            params.push((key, "1".into()));
        }
    }
    if exec {
        params.extend(q.all("command").into_iter().map(|c| ("command", c)));
    }
    let what = if exec { "exec" } else { "attach" };
    let mut path = format!("/{what}/{}/{name}/{container}", rr.namespace());
    if !params.is_empty() {
        path.push('?');
        path.push_str(&encode_query(params));
    }
    if streaming::wants_stream_translation(req.headers()) {
        return streaming::translate(api.kubelet.clone(), endpoint, path, opts, &mut req);
    }
    streaming::pass_through(api.kubelet.clone(), &endpoint, &path, req)
        .await
        .map_err(|e| ApiError::new(500, "", format!("error dialing backend: {e}")))
}

/// `pods/portforward`: the pod's kubelet at `/portForward/<ns>/<pod>`, with
/// the `ports` asked for passed on as `port`.
async fn port_forward(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    q: &Query,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let name = rr.name();
    let mut params = Vec::new();
    for port in q.all("ports") {
        let port: i32 = port.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "strconv.ParseInt: parsing {port:?}: invalid syntax"
            ))
        })?;
        params.push(("port", port.to_string()));
    }
    let pod = api.registry.get(rr.resource, rr.namespace(), name).await?;
    let endpoint = assigned_kubelet(api, &pod, name).await?;
    let mut path = format!("/portForward/{}/{name}", rr.namespace());
    if !params.is_empty() {
        path.push('?');
        path.push_str(&encode_query(params));
    }
    if !streaming::tunneled_protocols(req.headers()).is_empty() {
        return streaming::tunnel(api.kubelet.clone(), endpoint, path, &mut req).await;
    }
    streaming::pass_through(api.kubelet.clone(), &endpoint, &path, req)
        .await
        .map_err(|e| ApiError::new(500, "", format!("error dialing backend: {e}")))
}

/// Serves a streaming subresource of a pod.
pub async fn handle(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let q = Query(query_pairs(req.uri().query()));
    match rr.subresource.as_deref() {
        Some("log") => log(api, rr, &q).await,
        Some("exec") => exec_or_attach(api, rr, &q, true, req).await,
        Some("portforward") => port_forward(api, rr, &q, req).await,
        _ => exec_or_attach(api, rr, &q, false, req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_keep_repeated_commands_and_encode_like_go() {
        let q = Query(query_pairs(Some(
            "command=sh&command=-c&command=echo+a%20b&stdin=true&tty=false&container=c",
        )));
        assert_eq!(q.all("command"), ["sh", "-c", "echo a b"]);
        assert!(q.flag("stdin"));
        assert!(!q.flag("tty"));
        assert!(!q.flag("stdout"));
        assert_eq!(q.container(), Some("c"));
        assert_eq!(
            encode_query(vec![
                ("stdout", "1".into()),
                ("command", "sh".into()),
                ("command", "echo a/b&c".into()),
            ]),
            "command=sh&command=echo+a%2Fb%26c&stdout=1"
        );
    }

    #[test]
    fn containers_default_to_the_only_one_or_are_named() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(validate_container(None, &one, "p").unwrap(), "app");
        let two = json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "app"}, {"name": "side"}],
        }});
        let e = validate_container(None, &two, "p").unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [init app side]"
        );
        assert_eq!(validate_container(Some("init"), &two, "p").unwrap(), "init");
        let e = validate_container(Some("nope"), &two, "p").unwrap_err();
        assert_eq!(e.message, "container nope is not valid for pod p");
    }

    #[test]
    fn log_options_are_validated_and_passed_on() {
        let q = Query(query_pairs(Some("follow=true&tailLines=2&timestamps=1")));
        let o = log_options(&q, "p").unwrap();
        assert_eq!(
            encode_query(o.params),
            "follow=true&tailLines=2&timestamps=true"
        );
        let q = Query(query_pairs(Some("tailLines=-1&limitBytes=0")));
        let e = log_options(&q, "p").unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "PodLogOptions \"p\" is invalid: [tailLines: Invalid value: -1: must be greater than or equal to 0, limitBytes: Invalid value: 0: must be greater than 0]"
        );
        let q = Query(query_pairs(Some(
            "sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z",
        )));
        assert_eq!(log_options(&q, "p").unwrap_err().code, 422);
        let q = Query(query_pairs(Some("tailLines=x")));
        assert_eq!(log_options(&q, "p").unwrap_err().code, 400);
    }

    #[test]
    fn kubelet_answers_become_kubes_statuses() {
        let e = checked_error(400, "container \"c\" in pod \"p\" is waiting to start", "p");
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert_eq!(
            e.message,
            "container \"c\" in pod \"p\" is waiting to start"
        );
        let e = checked_error(404, "nope", "p");
        assert_eq!(
            e.message,
            "the server could not find the requested resource ( pods/log p)"
        );
        let e = checked_error(500, "boom", "p");
        assert_eq!(e.message, "Internal error occurred: boom");
    }
}
