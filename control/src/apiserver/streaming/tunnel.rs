//! kube-apiserver's `TunnelingHandler`, which serves kubectl's port
//! forwarding (1.31 and later): the client offers SPDY tunnelled through a
//! websocket (subprotocol `SPDY/3.1+portforward.k8s.io`). The API server
//! opens SPDY/3.1 to the kubelet with the protocols so offered and, once
//! the kubelet has switched, answers the websocket handshake with the
//! chosen protocol under the same prefix. From then on each binary message
//! carries the next bytes of the SPDY connection, both ways; the SPDY
//! frames are the client's and the runtime's business, and nothing here
//! reads them.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::{handshake, kubelet_spdy, subprotocols};
use crate::api::status::ApiError;
use crate::apiserver::handlers::Body;
use crate::apiserver::kubelet::{Endpoint, KubeletClient};

/// What a websocket subprotocol tunnelling SPDY starts with.
pub const TUNNELING_PREFIX: &str = "SPDY/3.1+";

/// How long the client may take to close its side once the kubelet's has
/// ended.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The largest piece of the kubelet's stream one message carries.
const CHUNK: usize = 32 * 1024;

/// The SPDY protocols a websocket request asks to tunnel (kube's
/// `spdyProtocolsFromWebsocketProtocols`): its subprotocols of the form
/// `SPDY/3.1+<protocol>.k8s.io`, without the prefix.
pub fn tunneled_protocols(headers: &HeaderMap) -> Vec<String> {
    subprotocols(headers)
        .into_iter()
        .filter_map(|p| p.strip_prefix(TUNNELING_PREFIX))
        .filter(|p| p.ends_with(".k8s.io"))
        .map(str::to_owned)
        .collect()
}

/// Opens the SPDY connection to the kubelet, answers the client's
/// websocket handshake and carries the bytes between the two in the
/// background. When the kubelet refuses, so is the client (which then
/// falls back to plain SPDY).
pub async fn tunnel(
    kubelet: Arc<KubeletClient>,
    endpoint: Endpoint,
    path_and_query: String,
    req: &mut Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let protocols = tunneled_protocols(req.headers());
    if protocols.is_empty() {
        return Err(ApiError::bad_request(
            "unable to upgrade: no tunneling spdy protocols provided",
        ));
    }
    let offered: Vec<&str> = protocols.iter().map(String::as_str).collect();
    let (backend, chosen) =
        kubelet_spdy::connect(&kubelet, &endpoint, &path_and_query, &offered).await?;
    let (resp, upgrade) = handshake::accept(req, &format!("{TUNNELING_PREFIX}{chosen}"))?;
    tokio::spawn(splice(upgrade, backend));
    Ok(resp)
}

/// Carries websocket binary messages to the kubelet's connection and its
/// bytes back as binary messages, until either side ends.
async fn splice(upgrade: OnUpgrade, backend: Upgraded) {
    let client = match upgrade.await {
        Ok(client) => client,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade did not complete");
            return;
        }
    };
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, None).await;
    let (mut to_client, mut from_client) = ws.split();
    let (mut from_kubelet, mut to_kubelet) = tokio::io::split(TokioIo::new(backend));
    let mut upstream = pin!(async move {
        while let Some(Ok(message)) = from_client.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                // Pings are answered by the websocket layer; text has no
                // meaning in a tunnel.
                _ => continue,
            };
            if to_kubelet.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = to_kubelet.shutdown().await;
    });
    let mut downstream = pin!(async move {
        let mut buf = vec![0; CHUNK];
        loop {
            match from_kubelet.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = Bytes::copy_from_slice(&buf[..n]);
                    if to_client.send(Message::Binary(data)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = to_client
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
    });
    tokio::select! {
        () = &mut upstream => {}
        () = &mut downstream => {
            // The client's close answer, so the last bytes are not cut
            // off by a reset.
            let _ = tokio::time::timeout(CLOSE_GRACE, upstream).await;
        }
    }
}
