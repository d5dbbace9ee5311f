//! The node's HTTPS endpoint (the kubelet's API on `daemonEndpoints`
//! port), which the API server proxies `pods/log`, `pods/exec`,
//! `pods/attach`, `pods/portforward` and `nodes/proxy` to:
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}` with `follow`,
//!   `tailLines`, `previous`, `timestamps`, `sinceSeconds`, `limitBytes`:
//!   the container's CRI log file, decoded (`<time> <stream> <P|F> <line>`).
//! - `/exec/{namespace}/{pod}/{container}?command=…&stdin&stdout&stderr&tty`
//!   and `/attach/{namespace}/{pod}/{container}?…`: prepared through CRI
//!   `Exec`/`Attach`, then the upgrade request (websocket
//!   `v5/v4.channel.k8s.io` or SPDY `v4.channel.k8s.io`) is proxied to the
//!   runtime's streaming server and the upgraded connection spliced, as
//!   the kubelet does with its runtime's streaming URL.
//! - `/portForward/{namespace}/{pod}[/{uid}]`: prepared through CRI
//!   `PortForward` for the pod's sandbox, then proxied the same way (SPDY
//!   `portforward.k8s.io`).
//! - `GET /healthz`.
//! - `GET /metrics`: the kubelet's metrics ([`super::metrics`]).
//!
//! TLS: the serving certificate comes from a `kubernetes.io/kubelet-serving`
//! CertificateSigningRequest for the node's name and InternalIP
//! ([`super::serving_cert`]); clients are verified against the cluster CA
//! (`--ca-cert`). Every request is authenticated (a client
//! certificate signed by that CA, or a bearer token) and authorized by the
//! API server ([`super::auth`]); the API server itself calls with its
//! kubelet client certificate, which `system:kubelet-api-admin` allows.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::auth::{Caller, KubeletAuth, certificate_caller};
use super::runtime_view::container_log::render;
use super::runtime_view::observed::{Container, State};
use super::runtime_view::read;
use super::serving_cert;
use super::{Config, Context};
use crate::cri::api as cri;

/// Starting the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(text.into()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

fn read(path: &Path) -> Result<String, ServerError> {
    std::fs::read_to_string(path).map_err(|source| ServerError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })
}

/// Starts the server in the background when the cluster CA is configured:
/// it listens at once, and serves TLS as soon as it has a serving
/// certificate ([`serving_cert`]), which it renews before it expires.
pub async fn spawn(ctx: Arc<Context>, config: &Config) -> Result<(), ServerError> {
    let Some(ca_cert) = &config.ca_cert else {
        tracing::warn!("no --ca-cert: the kubelet server (logs, exec, metrics) is off");
        return Ok(());
    };
    let ca_pem = read(ca_cert)?;
    let addr = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    tracing::info!(%addr, "kubelet server listening");
    let acceptor: Arc<std::sync::RwLock<Option<tokio_rustls::TlsAcceptor>>> = Arc::default();
    tokio::spawn(serving_cert::keep(
        ctx.client.clone(),
        config.clone(),
        ca_pem,
        Arc::clone(&acceptor),
    ));
    let auth = Arc::new(KubeletAuth::new(
        ctx.client.clone(),
        config.node_name.clone(),
    ));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let current = acceptor
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            // No serving certificate yet: the connection is closed.
            let Some(tls) = current else {
                continue;
            };
            let ctx = Arc::clone(&ctx);
            let auth = Arc::clone(&auth);
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                let certified = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| certificate_caller(c));
                let service = hyper::service::service_fn(move |req| {
                    let ctx = Arc::clone(&ctx);
                    let auth = Arc::clone(&auth);
                    let certified = certified.clone();
                    async move {
                        let resp = match admit(&auth, certified, &req).await {
                            Ok(()) => handle(ctx, req).await,
                            Err((status, message)) => full(status, message),
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(())
}

/// Authenticates and authorizes a request ([`super::auth`]): a client
/// certificate, else a bearer token; neither is 401.
async fn admit(
    auth: &KubeletAuth,
    certified: Option<Caller>,
    req: &Request<Incoming>,
) -> Result<(), (StatusCode, String)> {
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .map(|(_, token)| token.trim().to_owned());
    let caller = match (certified, bearer) {
        (Some(caller), _) => caller,
        (None, Some(token)) => auth
            .token_caller(&token)
            .await
            .ok_or((StatusCode::UNAUTHORIZED, "Unauthorized".to_owned()))?,
        (None, None) => return Err((StatusCode::UNAUTHORIZED, "Unauthorized".to_owned())),
    };
    auth.authorize(&caller, req.method(), req.uri().path())
        .await
}

fn query(req: &Request<Incoming>) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for pair in req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        out.entry(decode(k)).or_default().push(decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn flag(q: &HashMap<String, Vec<String>>, key: &str) -> bool {
    q.get(key)
        .and_then(|v| v.first())
        .is_some_and(|v| v.is_empty() || v == "1" || v.eq_ignore_ascii_case("true"))
}

async fn handle(ctx: Arc<Context>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["healthz"] => full(StatusCode::OK, "ok"),
        ["metrics"] => {
            let text = {
                let relist = ctx
                    .relist
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                ctx.metrics
                    .render(&relist, &ctx.volumes.metrics, ctx.cri.metrics())
            };
            let mut resp = full(StatusCode::OK, text);
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            resp
        }
        ["containerLogs", ns, pod, container] => logs(&ctx, &req, ns, pod, container).await,
        ["exec", ns, pod, container] | ["exec", ns, pod, _, container] => {
            stream(&ctx, req, true, ns, pod, container).await
        }
        ["attach", ns, pod, container] | ["attach", ns, pod, _, container] => {
            stream(&ctx, req, false, ns, pod, container).await
        }
        ["portForward", ns, pod] => port_forward(&ctx, req, ns, pod, None).await,
        ["portForward", ns, pod, uid] => port_forward(&ctx, req, ns, pod, Some(uid)).await,
        _ => full(StatusCode::NOT_FOUND, format!("404 page not found: {path}")),
    }
}

/// The newest (or, with `previous`, the one before) container of a pod.
async fn find_container(
    ctx: &Context,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<Container, Response<Body>> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let p = match api.get_opt(pod).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(full(
                StatusCode::NOT_FOUND,
                format!("pod \"{pod}\" not found"),
            ));
        }
        Err(err) => return Err(full(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())),
    };
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let runtime = read::observe(&ctx.cri, &ctx.runtime_cache, &uid)
        .await
        .map_err(|e| full(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut attempts = runtime.containers.iter().filter(|c| c.name == container);
    let found = if previous {
        attempts.nth(1)
    } else {
        attempts.next()
    };
    found.cloned().ok_or_else(|| {
        let msg = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is not available")
        };
        full(StatusCode::BAD_REQUEST, msg)
    })
}

async fn logs(
    ctx: &Context,
    req: &Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let q = query(req);
    let previous = flag(&q, "previous");
    let follow = flag(&q, "follow") && !previous;
    let timestamps = flag(&q, "timestamps");
    let tail: Option<usize> = q
        .get("tailLines")
        .and_then(|v| v.first())
        .and_then(|v| v.parse().ok());
    let limit: Option<usize> = q
        .get("limitBytes")
        .and_then(|v| v.first())
        .and_then(|v| v.parse().ok());
    let since = q
        .get("sinceSeconds")
        .and_then(|v| v.first())
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|s| {
            jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_secs(s))
                .ok()
        })
        .or_else(|| {
            q.get("sinceTime")
                .and_then(|v| v.first())
                .and_then(|v| v.parse().ok())
        });
    let c = match find_container(ctx, ns, pod, container, previous).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let path = PathBuf::from(&c.log_path);
    let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = tail.map_or(0, |t| lines.len().saturating_sub(t));
    let mut body = String::new();
    for line in &lines[start..] {
        if let Some(l) = render(line, timestamps, since) {
            body.push_str(&l);
        }
    }
    if let Some(limit) = limit {
        body.truncate(limit);
    }
    if !follow {
        let mut r = full(StatusCode::OK, body);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        return r;
    }
    // Follow: what is there, then new lines until the container stops.
    let offset = text.len() as u64;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    let cri = ctx.cri.clone();
    let id = c.id.clone();
    tokio::spawn(async move {
        if tx.send(Ok(Frame::data(Bytes::from(body)))).await.is_err() {
            return;
        }
        let Ok(mut file) = tokio::fs::File::open(&path).await else {
            return;
        };
        if file.seek(SeekFrom::Start(offset)).await.is_err() {
            return;
        }
        let mut reader = tokio::io::BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) => {
                    let running = cri
                        .container_status(&id)
                        .await
                        .is_ok_and(|s| s.state == cri::ContainerState::ContainerRunning as i32);
                    if !running || tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(_) if line.ends_with('\n') => {
                    if let Some(out) = render(line.trim_end_matches('\n'), timestamps, None)
                        && tx.send(Ok(Frame::data(Bytes::from(out)))).await.is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {
                    // A line still being written: read it whole next time.
                    let back = i64::try_from(line.len()).unwrap_or(0);
                    if reader.seek(SeekFrom::Current(-back)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => return,
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut r = Response::new(StreamBody::new(stream).boxed());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Exec or attach: asks CRI for a streaming URL, then proxies the upgrade.
async fn stream(
    ctx: &Context,
    req: Request<Incoming>,
    exec: bool,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let q = query(&req);
    let c = match find_container(ctx, ns, pod, container, false).await {
        Ok(c) if c.state == State::Running => c,
        Ok(_) => {
            return full(
                StatusCode::BAD_REQUEST,
                format!("container {container} is not running"),
            );
        }
        Err(r) => return r,
    };
    let (stdin, stdout, stderr, tty) = (
        flag(&q, "stdin"),
        flag(&q, "stdout"),
        flag(&q, "stderr"),
        flag(&q, "tty"),
    );
    let url = if exec {
        let cmd = q.get("command").cloned().unwrap_or_default();
        if cmd.is_empty() {
            return full(
                StatusCode::BAD_REQUEST,
                "you must specify at least 1 command",
            );
        }
        ctx.cri
            .exec(cri::ExecRequest {
                container_id: c.id.clone(),
                cmd,
                tty,
                stdin,
                stdout,
                stderr: stderr && !tty,
            })
            .await
    } else {
        ctx.cri
            .attach(cri::AttachRequest {
                container_id: c.id.clone(),
                stdin,
                tty,
                stdout,
                stderr: stderr && !tty,
            })
            .await
    };
    to_streaming_server(req, url).await
}

/// Port forwarding into a pod: CRI `PortForward` for its running sandbox,
/// then the upgrade (SPDY `portforward.k8s.io`, or a websocket with the
/// ports in `port` query parameters) proxied to the runtime's streaming
/// server, which dials the ports inside the pod's network namespace.
async fn port_forward(
    ctx: &Context,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
) -> Response<Body> {
    let mut ports = Vec::new();
    for port in query(&req).remove("port").unwrap_or_default() {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => ports.push(i32::from(p)),
            _ => {
                return full(
                    StatusCode::BAD_REQUEST,
                    format!("unable to parse {port:?} as a port"),
                );
            }
        }
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let p = match api.get_opt(pod).await {
        Ok(Some(p)) if uid.is_none_or(|u| p.metadata.uid.as_deref() == Some(u)) => p,
        Ok(_) => return full(StatusCode::NOT_FOUND, "pod does not exist"),
        Err(err) => return full(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    let uid = p.metadata.uid.as_deref().unwrap_or_default();
    let runtime = match read::observe(&ctx.cri, &ctx.runtime_cache, uid).await {
        Ok(r) => r,
        Err(err) => return full(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    let Some(sandbox) = runtime.sandbox().filter(|s| s.ready) else {
        return full(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("pod not found (\"{pod}_{ns}\")"),
        );
    };
    to_streaming_server(req, ctx.cri.port_forward(&sandbox.id, ports).await).await
}

/// Proxies a streaming request to the URL the runtime prepared for it (500
/// when it could not).
async fn to_streaming_server(
    req: Request<Incoming>,
    url: Result<String, crate::cri::CriError>,
) -> Response<Body> {
    let url = match url {
        Ok(u) => u,
        Err(err) => return full(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    match proxy_upgrade(req, &url).await {
        Ok(r) => r,
        Err(err) => full(
            StatusCode::BAD_GATEWAY,
            format!("proxying to the runtime's streaming server: {err}"),
        ),
    }
}

/// Sends the client's upgrade request to `url` (the runtime's streaming
/// server, plain HTTP inside the node), returns its answer, and on `101`
/// splices the two upgraded connections. Written over raw TCP because the
/// upgrade must pass through byte for byte (SPDY or websocket framing is
/// the two ends' business).
async fn proxy_upgrade(
    mut req: Request<Incoming>,
    url: &str,
) -> Result<Response<Body>, std::io::Error> {
    let uri: http::Uri = url.parse().map_err(std::io::Error::other)?;
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let mut backend = TcpStream::connect(&authority).await?;
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {authority}\r\n",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    for (name, value) in req.headers() {
        if name == http::header::HOST || name == http::header::CONTENT_LENGTH {
            continue;
        }
        head.push_str(&format!(
            "{}: {}\r\n",
            name,
            value.to_str().unwrap_or_default()
        ));
    }
    head.push_str("\r\n");
    backend.write_all(head.as_bytes()).await?;
    // Read the backend's response head.
    let mut buf = Vec::with_capacity(1024);
    let header_end = loop {
        let mut chunk = [0u8; 1024];
        let n = backend.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "the streaming server closed the connection",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("response head too large"));
        }
    };
    let text = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(502);
    let mut response = Response::builder().status(code);
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((k, v)) = line.split_once(':') {
            response = response.header(k.trim(), v.trim());
        }
    }
    let rest = buf[header_end..].to_vec();
    if code != 101 {
        // Not upgraded: hand the answer (and whatever body came) back.
        let mut body = rest;
        let _ = tokio::time::timeout(Duration::from_secs(2), backend.read_to_end(&mut body)).await;
        return response
            .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
            .map_err(std::io::Error::other);
    }
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let mut client = TokioIo::new(upgraded);
        if !rest.is_empty() && client.write_all(&rest).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    });
    response
        .body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_repeated_commands() {
        assert_eq!(
            percent_decode("cat%20%2Fetc%2Fcfg%2Fkey"),
            "cat /etc/cfg/key"
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
