//! `nodes/{name}/proxy/{path}` (kube's `ProxyREST` for nodes): the
//! request — method, rest of the path, query, body — sent to the node's
//! kubelet with the API server's kubelet client certificate, and the
//! kubelet's answer passed back as it comes. `kubectl get --raw
//! /api/v1/nodes/<node>/proxy/metrics` reads a kubelet's metrics this way.
//! The node may be named `name:port` to reach another kubelet port.

use std::sync::Arc;

use http::{Request, Response};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;

use super::{Api, Body, MAX_BODY, pod_streams};
use crate::api::status::ApiError;
use crate::apiserver::router::ResourceRequest;
use crate::apiserver::streaming;

/// Whether the request is for a node's proxy subresource.
pub fn is_node_proxy(rr: &ResourceRequest) -> bool {
    rr.resource.group.is_empty()
        && rr.resource.plural == "nodes"
        && rr.subresource.as_deref() == Some("proxy")
}

/// The kubelet path of a request for `…/nodes/{name}/proxy{rest}`: `rest`
/// as the client sent it (percent-encoding kept), `/` when empty.
fn kubelet_path(request_path: &str, name: &str) -> String {
    let marker = format!("/nodes/{name}/proxy");
    let rest = request_path
        .find(&marker)
        .map_or("", |at| &request_path[at + marker.len()..]);
    if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    }
}

/// `name` or `name:port` (kube's `SplitSchemeNamePort`, https only: the
/// kubelet serves nothing else).
fn split_port(name: &str) -> Result<(&str, Option<u16>), ApiError> {
    match name.split_once(':') {
        None => Ok((name, None)),
        Some((node, port)) => port
            .parse()
            .map(|p| (node, Some(p)))
            .map_err(|_| ApiError::bad_request(format!("invalid node request {name:?}"))),
    }
}

/// Serves a node's proxy subresource.
pub async fn handle(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (node, port) = split_port(rr.name())?;
    let mut endpoint = pod_streams::node_endpoint(api, node).await?;
    if let Some(port) = port {
        endpoint.port = port;
    }
    let (parts, body) = req.into_parts();
    let mut path = kubelet_path(parts.uri.path(), rr.name());
    if let Some(query) = parts.uri.query() {
        path.push('?');
        path.push_str(query);
    }
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| ApiError::new(413, "RequestEntityTooLarge", "Request entity too large"))?
        .to_bytes();
    let mut out = Request::builder()
        .method(parts.method)
        .uri(path.as_str())
        .header(http::header::HOST, endpoint.authority());
    for name in [http::header::ACCEPT, http::header::CONTENT_TYPE] {
        if let Some(value) = parts.headers.get(&name) {
            out = out.header(name, value);
        }
    }
    let out = out
        .body(Full::new(body))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = api.kubelet.send(&endpoint, out).await.map_err(|e| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    })?;
    let (parts, body) = resp.into_parts();
    let mut answer = Response::new(streaming::stream_body(body));
    *answer.status_mut() = parts.status;
    for name in [http::header::CONTENT_TYPE, http::header::CONTENT_ENCODING] {
        if let Some(value) = parts.headers.get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_the_path_goes_to_the_kubelet() {
        let path = |p| kubelet_path(p, "node-1");
        assert_eq!(path("/api/v1/nodes/node-1/proxy/metrics"), "/metrics");
        assert_eq!(
            path("/api/v1/nodes/node-1/proxy/metrics/resource"),
            "/metrics/resource"
        );
        assert_eq!(path("/api/v1/nodes/node-1/proxy"), "/");
        assert_eq!(path("/api/v1/nodes/node-1/proxy/"), "/");
        assert_eq!(path("/api/v1/nodes/node-1/proxy/a%2Fb"), "/a%2Fb");
    }

    #[test]
    fn a_node_may_name_its_port() {
        assert_eq!(split_port("node-1").unwrap(), ("node-1", None));
        assert_eq!(split_port("node-1:10255").unwrap(), ("node-1", Some(10255)));
        assert_eq!(split_port("node-1:x").unwrap_err().code, 400);
    }
}
