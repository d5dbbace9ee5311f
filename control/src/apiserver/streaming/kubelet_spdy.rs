//! The SPDY/3.1 connection to a kubelet that a translated or tunnelled
//! session rides on (client-go's SPDY upgrader: POST with `Upgrade:
//! SPDY/3.1` and the protocol versions offered).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper::upgrade::Upgraded;

use crate::api::status::ApiError;
use crate::apiserver::kubelet::{Endpoint, KubeletClient};

/// The header naming the stream protocols offered, then the one chosen.
const PROTOCOL_VERSION: &str = "X-Stream-Protocol-Version";

/// Upgrades a request for `path_and_query` on the kubelet to SPDY, offering
/// `protocols`; returns the upgraded connection and the protocol the
/// kubelet chose. A refusal carrying a `Status` becomes that status.
pub async fn connect(
    kubelet: &KubeletClient,
    endpoint: &Endpoint,
    path_and_query: &str,
    protocols: &[&str],
) -> Result<(Upgraded, String), ApiError> {
    let url = format!("https://{}{path_and_query}", endpoint.authority());
    let mut req = Request::builder()
        .method(http::Method::POST)
        .uri(path_and_query)
        .header(http::header::HOST, endpoint.authority())
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "SPDY/3.1");
    for protocol in protocols {
        req = req.header(PROTOCOL_VERSION, *protocol);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = kubelet
        .send(endpoint, req)
        .await
        .map_err(|e| ApiError::internal(format!("Post \"{url}\": {e}")))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let code = resp.status().as_u16();
        let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        // A Status body is passed on as is (client-go's SPDY upgrader).
        if let Ok(status) = serde_json::from_slice::<serde_json::Value>(&body)
            && status.get("kind").and_then(|k| k.as_str()) == Some("Status")
        {
            let message = status["message"].as_str().unwrap_or("").to_string();
            let code = status["code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(code);
            let reason = known_reason(status["reason"].as_str().unwrap_or(""));
            return Err(ApiError::new(code, reason, message));
        }
        return Err(ApiError::internal(format!(
            "unable to upgrade connection: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    let negotiated = resp
        .headers()
        .get(PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !protocols.contains(&negotiated.as_str()) {
        return Err(ApiError::internal(format!(
            "unable to upgrade streaming request: the kubelet negotiated {negotiated:?}, not one of {protocols:?}"
        )));
    }
    let upgraded = hyper::upgrade::on(&mut resp)
        .await
        .map_err(|e| ApiError::internal(format!("unable to upgrade connection: {e}")))?;
    Ok((upgraded, negotiated))
}

/// The reasons a kubelet's Status may carry, as this server names them.
fn known_reason(reason: &str) -> &'static str {
    [
        "BadRequest",
        "NotFound",
        "Forbidden",
        "Unauthorized",
        "InternalError",
        "ServiceUnavailable",
        "Timeout",
        "Invalid",
    ]
    .into_iter()
    .find(|r| *r == reason)
    .unwrap_or("")
}
