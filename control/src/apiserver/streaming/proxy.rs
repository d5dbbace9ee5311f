//! The upgrade-aware pass-through (kube's `proxy.UpgradeAwareHandler`): the
//! client's request goes to the kubelet with its upgrade headers; a `101`
//! is returned to the client and the two upgraded connections are spliced
//! until either side closes; any other answer is returned as it came.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::super::handlers::{Body, full};
use super::super::kubelet::{Endpoint, KubeletClient, KubeletError};
use super::stream_body;

/// Headers that belong to one hop (RFC 9110 §7.6.1); `Connection` and
/// `Upgrade` are kept on upgrade requests.
fn hop_by_hop(name: &http::header::HeaderName, upgrading: bool) -> bool {
    use http::header::*;
    if upgrading && (name == CONNECTION || name == UPGRADE) {
        return false;
    }
    name == CONNECTION
        || name == UPGRADE
        || name == TRANSFER_ENCODING
        || name == TE
        || name == TRAILER
        || name == PROXY_AUTHORIZATION
        || name == PROXY_AUTHENTICATE
        || name.as_str() == "keep-alive"
}

/// Proxies `req` to `path_and_query` on the kubelet at `endpoint`.
pub async fn pass_through(
    kubelet: Arc<KubeletClient>,
    endpoint: &Endpoint,
    path_and_query: &str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, KubeletError> {
    let upgrading = super::is_upgrade(req.headers());
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(path_and_query)
        .body(Empty::<Bytes>::new())
        .map_err(|e| KubeletError::Tls(e.to_string()))?;
    for (name, value) in req.headers() {
        if name == http::header::HOST
            || name == http::header::CONTENT_LENGTH
            || name == http::header::AUTHORIZATION
            || hop_by_hop(name, upgrading)
        {
            continue;
        }
        out.headers_mut().append(name.clone(), value.clone());
    }
    if let Ok(host) = HeaderValue::from_str(&endpoint.authority()) {
        out.headers_mut().insert(http::header::HOST, host);
    }
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let mut resp = kubelet.send(endpoint, out).await?;
    let status = resp.status();
    if status == http::StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        let mut answer = Response::new(full(Bytes::new()));
        *answer.status_mut() = status;
        *answer.headers_mut() = resp.headers().clone();
        tokio::spawn(async move {
            let (client, backend) = match tokio::join!(client_upgrade, backend_upgrade) {
                (Ok(c), Ok(b)) => (c, b),
                (c, b) => {
                    tracing::debug!(
                        client = ?c.err(),
                        kubelet = ?b.err(),
                        "upgrade did not complete"
                    );
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut backend = TokioIo::new(backend);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                tracing::debug!(error = %e, "upgraded stream ended");
            }
        });
        return Ok(answer);
    }
    let (parts, body) = resp.into_parts();
    let mut answer = Response::new(stream_body(body));
    *answer.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if !hop_by_hop(name, false) {
            answer.headers_mut().append(name.clone(), value.clone());
        }
    }
    // The body is re-framed by this server.
    answer.headers_mut().remove(http::header::CONTENT_LENGTH);
    Ok(answer)
}
