//! The server side of a websocket handshake (RFC 6455 §4.2) for sessions
//! this server runs itself: the request is checked, and the `101` answer
//! names the subprotocol chosen.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::api::status::ApiError;
use crate::apiserver::handlers::{Body, full};

/// Accepts the websocket handshake of `req` with `protocol`: the `101`
/// answer and the connection it will upgrade. A request that is no valid
/// handshake (a GET with a key, version 13) gets 400.
pub fn accept(
    req: &mut Request<Incoming>,
    protocol: &str,
) -> Result<(Response<Body>, OnUpgrade), ApiError> {
    let key = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec());
    let version_ok = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let (Some(key), true, true) = (key, version_ok, req.method() == http::Method::GET) else {
        return Err(ApiError::bad_request(
            "websocket: not a websocket handshake",
        ));
    };
    let protocol = HeaderValue::from_str(protocol)
        .map_err(|_| ApiError::internal("an invalid websocket subprotocol"))?;
    let upgrade = hyper::upgrade::on(req);
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(&key)) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
    Ok((resp, upgrade))
}
