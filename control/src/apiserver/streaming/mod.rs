//! Streams proxied to kubelets: plain responses (`pods/log`), upgraded
//! connections passed through byte for byte (SPDY/3.1 and websocket
//! remote-command protocols the kubelet negotiates itself), and websocket
//! `v5.channel.k8s.io` sessions translated to SPDY, and SPDY tunnelled
//! through websockets (port forwarding), as kube-apiserver's upgrade-aware
//! proxy, `StreamTranslatorHandler` and `TunnelingHandler` do.

mod handshake;
mod kubelet_spdy;
mod proxy;
pub mod spdy;
mod translator;
mod tunnel;

use std::convert::Infallible;

use futures::StreamExt as _;
use http::HeaderMap;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Incoming;

pub use proxy::pass_through;
pub use translator::{StreamOptions, translate};
pub use tunnel::{tunnel, tunneled_protocols};

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

/// The websocket subprotocols a websocket upgrade offers, in its order
/// (none for any other request).
fn subprotocols(headers: &HeaderMap) -> Vec<&str> {
    let websocket = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    if !websocket || !is_upgrade(headers) {
        return Vec::new();
    }
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// A websocket upgrade offering `v5.channel.k8s.io` (kube's
/// `IsWebSocketRequestWithStreamCloseProtocol`): served by translation.
pub fn wants_stream_translation(headers: &HeaderMap) -> bool {
    subprotocols(headers).contains(&V5_CHANNEL)
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

    #[test]
    fn only_k8s_protocols_prefixed_with_spdy_are_tunnelled() {
        let kubectl = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            (
                "sec-websocket-protocol",
                "SPDY/3.1+portforward.k8s.io, v4.channel.k8s.io",
            ),
        ]);
        assert_eq!(tunneled_protocols(&kubectl), ["portforward.k8s.io"]);
        let foreign = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "SPDY/3.1+chat.example.com"),
        ]);
        assert!(tunneled_protocols(&foreign).is_empty());
        let spdy = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
        ]);
        assert!(tunneled_protocols(&spdy).is_empty());
    }
}
