//! kube-apiserver's `StreamTranslatorHandler`: a client's websocket
//! `v5.channel.k8s.io` session (what kubectl 1.29+ tries first) served by
//! the API server itself and carried to the kubelet over SPDY/3.1 with the
//! `v4.channel.k8s.io` protocol, which every kubelet and container runtime
//! speaks (containerd 1.6's streaming server knows no v5). v5 adds what
//! v4-over-websocket lacks: closing stdin alone, so `kubectl exec -i … cat`
//! sees end of input.
//!
//! Websocket messages are `[channel, data…]`: 0 stdin, 1 stdout, 2 stderr,
//! 3 error (a JSON `Status` at the end), 4 resize, and `[255, channel]` to
//! close one channel. On the SPDY side each channel is a stream opened with
//! a `streamType` header; the error stream carries the same `Status`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt as _, StreamExt as _};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWriteExt as _, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::spdy::{self, Frame, HeaderEncoder};
use super::{V4_CHANNEL, V5_CHANNEL, handshake, kubelet_spdy};
use crate::api::status::ApiError;
use crate::apiserver::handlers::Body;
use crate::apiserver::kubelet::{Endpoint, KubeletClient};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// `[255, channel]`: the sender is done with `channel`.
const CLOSE: u8 = 255;

/// How long the kubelet may take to accept the streams (client-go's
/// `createStreamResponseTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Which streams the session has (`PodExecOptions`/`PodAttachOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    /// The SPDY streams client-go's v4 protocol opens, in its order: error,
    /// stdin, stdout, stderr (not with a TTY), resize (with a TTY).
    fn channels(&self) -> Vec<(u8, &'static str)> {
        let mut out = vec![(ERROR, "error")];
        if self.stdin {
            out.push((STDIN, "stdin"));
        }
        if self.stdout {
            out.push((STDOUT, "stdout"));
        }
        if self.stderr && !self.tty {
            out.push((STDERR, "stderr"));
        }
        if self.tty {
            out.push((RESIZE, "resize"));
        }
        out
    }
}

/// Answers the websocket handshake (`101` with `v5.channel.k8s.io`) and
/// runs the session in the background. A request that is no valid
/// websocket handshake gets 400.
pub fn translate(
    kubelet: Arc<KubeletClient>,
    endpoint: Endpoint,
    path_and_query: String,
    opts: StreamOptions,
    req: &mut Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (resp, upgrade) = handshake::accept(req, V5_CHANNEL)?;
    tokio::spawn(session(upgrade, kubelet, endpoint, path_and_query, opts));
    Ok(resp)
}

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// A Status as written on the error channel.
fn status_message(e: &ApiError) -> Message {
    let mut status = e.to_status();
    if let Some(m) = status.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    let mut data = vec![ERROR];
    data.extend(serde_json::to_vec(&status).unwrap_or_default());
    Message::Binary(Bytes::from(data))
}

async fn close(mut ws: Ws) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = ws.flush().await;
    // Wait briefly for the client's close answer so the last messages are
    // not cut off by a reset.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

async fn session(
    upgrade: OnUpgrade,
    kubelet: Arc<KubeletClient>,
    endpoint: Endpoint,
    path_and_query: String,
    opts: StreamOptions,
) {
    let ws = match upgrade.await {
        Ok(u) => WebSocketStream::from_raw_socket(TokioIo::new(u), Role::Server, None).await,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade did not complete");
            return;
        }
    };
    let mut ws = ws;
    let spdy =
        match kubelet_spdy::connect(&kubelet, &endpoint, &path_and_query, &[V4_CHANNEL]).await {
            Ok((s, _)) => s,
            Err(e) => {
                let _ = ws.send(status_message(&e)).await;
                close(ws).await;
                return;
            }
        };
    if let Err(e) = Bridge::new(opts).run(&mut ws, spdy).await {
        let _ = ws.send(status_message(&e)).await;
    }
    close(ws).await;
}

/// Reads SPDY frames into a channel (reading a frame is not cancel-safe,
/// so it is not done inside `select!`).
fn spawn_reader(mut r: ReadHalf<TokioIo<Upgraded>>) -> mpsc::Receiver<Frame> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            match spdy::read_frame(&mut r).await {
                Ok(Some(f)) => {
                    if tx.send(f).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY connection to the kubelet ended");
                    return;
                }
            }
        }
    });
    rx
}

/// One translated session's state.
struct Bridge {
    opts: StreamOptions,
    /// SPDY stream id → websocket channel.
    channels: HashMap<u32, u8>,
    /// Streams the kubelet has not accepted yet.
    unreplied: usize,
    /// Streams the kubelet has finished (FIN or reset).
    finished: Vec<u32>,
    /// Client input that arrived before the kubelet accepted the streams.
    pending: Vec<(u8, Bytes, bool)>,
}

impl Bridge {
    fn new(opts: StreamOptions) -> Self {
        Bridge {
            opts,
            channels: HashMap::new(),
            unreplied: 0,
            finished: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn stream_of(&self, channel: u8) -> Option<u32> {
        self.channels
            .iter()
            .find(|(_, c)| **c == channel)
            .map(|(s, _)| *s)
    }

    /// Whether everything the kubelet sends has arrived: the error stream
    /// and the output streams are finished.
    fn done(&self) -> bool {
        self.channels
            .iter()
            .filter(|(_, c)| matches!(**c, ERROR | STDOUT | STDERR))
            .all(|(s, _)| self.finished.contains(s))
    }

    /// Client input for the kubelet: data, or (with `fin`) the end of it.
    async fn forward_input(
        &self,
        w: &mut WriteHalf<TokioIo<Upgraded>>,
        channel: u8,
        data: &[u8],
        fin: bool,
    ) -> std::io::Result<()> {
        if let Some(stream) = self.stream_of(channel)
            && matches!(channel, STDIN | RESIZE)
        {
            w.write_all(&spdy::data(stream, fin, data)).await?;
            w.flush().await?;
        }
        Ok(())
    }

    async fn run(&mut self, ws: &mut Ws, upgraded: Upgraded) -> Result<(), ApiError> {
        let (r, mut w) = tokio::io::split(TokioIo::new(upgraded));
        let mut frames = spawn_reader(r);
        let mut headers = HeaderEncoder::default();
        let io = |e: std::io::Error| ApiError::internal(e.to_string());
        let mut next_id = 1u32;
        for (channel, kind) in self.opts.channels() {
            let frame = headers
                .syn_stream(next_id, &[("streamType", kind)])
                .map_err(|e| ApiError::internal(e.to_string()))?;
            w.write_all(&frame).await.map_err(io)?;
            self.channels.insert(next_id, channel);
            self.unreplied += 1;
            next_id += 2;
        }
        w.flush().await.map_err(io)?;
        let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
        loop {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(b))) if !b.is_empty() => {
                        let (channel, data, fin) = if b[0] == CLOSE {
                            (b.get(1).copied().unwrap_or(CLOSE), Bytes::new(), true)
                        } else {
                            (b[0], b.slice(1..), false)
                        };
                        if self.unreplied > 0 {
                            self.pending.push((channel, data, fin));
                        } else {
                            self.forward_input(&mut w, channel, &data, fin).await.map_err(io)?;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        // The client went away: so does the session.
                        let _ = w.write_all(&spdy::goaway(0)).await;
                        let _ = w.shutdown().await;
                        return Ok(());
                    }
                    Some(Ok(_)) => {}
                },
                frame = frames.recv() => match frame {
                    Some(Frame::Data { stream, fin, data }) => {
                        if let Some(channel) = self.channels.get(&stream).copied()
                            && !data.is_empty()
                            && matches!(channel, STDOUT | STDERR | ERROR)
                        {
                            let mut msg = BytesMut::with_capacity(data.len() + 1);
                            msg.extend_from_slice(&[channel]);
                            msg.extend_from_slice(&data);
                            if ws.send(Message::Binary(msg.freeze())).await.is_err() {
                                return Ok(());
                            }
                        }
                        if fin {
                            self.finished.push(stream);
                        }
                    }
                    Some(Frame::SynReply { stream, fin }) => {
                        if self.channels.contains_key(&stream) {
                            self.unreplied = self.unreplied.saturating_sub(1);
                        }
                        if fin {
                            self.finished.push(stream);
                        }
                        if self.unreplied == 0 {
                            for (channel, data, fin) in std::mem::take(&mut self.pending) {
                                self.forward_input(&mut w, channel, &data, fin).await.map_err(io)?;
                            }
                        }
                    }
                    Some(Frame::RstStream { stream, .. }) => {
                        if self.unreplied > 0 && self.channels.contains_key(&stream) {
                            return Err(ApiError::internal(format!(
                                "the kubelet refused stream {stream}"
                            )));
                        }
                        self.finished.push(stream);
                    }
                    Some(Frame::Ping(id)) => {
                        w.write_all(&spdy::ping(id)).await.map_err(io)?;
                        w.flush().await.map_err(io)?;
                    }
                    Some(Frame::Headers { stream, fin: true }) => self.finished.push(stream),
                    Some(_) => {}
                    None => return Ok(()),
                },
                _ = tokio::time::sleep_until(deadline), if self.unreplied > 0 => {
                    return Err(ApiError::internal(
                        "timed out waiting for the kubelet to accept the streams",
                    ));
                }
            }
            if self.unreplied == 0 && self.done() {
                let _ = w.write_all(&spdy::goaway(0)).await;
                let _ = w.shutdown().await;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_opened_as_client_go_opens_them() {
        let exec_i = StreamOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        assert_eq!(
            exec_i.channels(),
            vec![
                (ERROR, "error"),
                (STDIN, "stdin"),
                (STDOUT, "stdout"),
                (STDERR, "stderr")
            ]
        );
        let exec_it = StreamOptions {
            tty: true,
            ..exec_i
        };
        assert_eq!(
            exec_it.channels(),
            vec![
                (ERROR, "error"),
                (STDIN, "stdin"),
                (STDOUT, "stdout"),
                (RESIZE, "resize")
            ]
        );
    }

    #[test]
    fn errors_go_out_as_a_status_on_the_error_channel() {
        let Message::Binary(b) = status_message(&ApiError::internal("boom")) else {
            panic!("binary")
        };
        assert_eq!(b[0], ERROR);
        let v: serde_json::Value = serde_json::from_slice(&b[1..]).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["message"], "Internal error occurred: boom");
        assert_eq!(v["code"], 500);
        assert_eq!(v["details"]["causes"][0]["message"], "boom");
    }
}
