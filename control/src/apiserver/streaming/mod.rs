//! Streams proxied to kubelets: plain responses (`pods/log`), upgraded
//! connections passed through byte for byte (SPDY/3.1 and websocket
//! remote-command protocols the kubelet negotiates itself), and websocket
//! `v5.channel.k8s.io` sessions translated to SPDY, as kube-apiserver's
//! upgrade-aware proxy and `StreamTranslatorHandler` do.

mod proxy;
pub mod spdy;
mod translator;

use std::convert::Infallible;

use futures::StreamExt as _;
use http::HeaderMap;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Incoming;

pub use proxy::pass_through;
pub use translator::{StreamOptions, translate};

use super::handlers::Body;

/// The websocket remote-command protocol with stream CLOSE signals.
pub const V5_CHANNEL: &str = "v5.channel.k8s.io";
/// The remote-command protocol spoken to kubelets over SPDY.
pub const V4_CHANNEL: &str = "v4.channel.k8s.io";

/// `Connection: upgrade` with an `Upgrade` header.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    has(http::header::CONNECTION, "upgrade") && headers.contains_key(http::header::UPGRADE)
}

/// A websocket upgrade offering `v5.channel.k8s.io` (kube's
/// `IsWebSocketRequestWithStreamCloseProtocol`): served by translation.
pub fn wants_stream_translation(headers: &HeaderMap) -> bool {
    let websocket = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    websocket
        && is_upgrade(headers)
        && headers
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .any(|p| p.trim() == V5_CHANNEL)
}

/// A response body streamed from a kubelet's; a read error ends it.
pub fn stream_body(body: Incoming) -> Body {
    let frames = BodyStream::new(body)
        .take_while(|f| std::future::ready(f.is_ok()))
        .filter_map(|f| std::future::ready(f.ok().map(Ok::<_, Infallible>)));
    BodyExt::boxed(StreamBody::new(frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_v5_websockets_are_translated() {
        let kubectl = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        assert!(wants_stream_translation(&kubectl));
        let older = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            (
                "sec-websocket-protocol",
                "v4.channel.k8s.io, channel.k8s.io",
            ),
        ]);
        assert!(is_upgrade(&older));
        assert!(!wants_stream_translation(&older));
        let spdy = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v5.channel.k8s.io"),
        ]);
        assert!(is_upgrade(&spdy));
        assert!(!wants_stream_translation(&spdy));
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])));
    }
}
