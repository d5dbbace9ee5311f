//! WATCH: a chunked stream of `{"type":…,"object":…}` lines (or
//! length-prefixed protobuf WatchEvents) from the watch cache (or etcd's history for revisions older than the cache window),
//! with selector transitions, bookmarks, timeouts, initial events, Table
//! rows, and a 410 Expired ERROR event for compacted revisions.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::list::{Filter, accept, include_object, storage_resource};
use super::output::{self, IncludeObject};
use super::{Api, Body, Req};
use crate::api::resource::Resource;
use crate::api::status::ApiError;
use crate::apiserver::codec::content::Accept;
use crate::apiserver::codec::protobuf;
use crate::apiserver::metrics::{LongRunning, RequestKind};
use crate::apiserver::router::ResourceRequest;
use crate::storage::watch_cache::{WatchStart, watch_etcd};
use crate::storage::{EventType, Notice, StorageError, WatchEvent};

/// kube-apiserver's --min-request-timeout: watches end after about this.
const MAX_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a bookmark may be sent.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

struct Encoder {
    resource: &'static Resource,
    accept: Accept,
    include: IncludeObject,
    headers_sent: bool,
}

/// A protobuf watch frame: the 4-byte big-endian length, then a
/// `meta.v1.WatchEvent` without envelope whose object is the object's own
/// protobuf (`k8s\0` + Unknown) — client-go's LengthDelimitedFramer around
/// its raw protobuf stream serializer.
fn protobuf_frame(kind: &str, object: &Value) -> Bytes {
    let (kind, encoded) = match protobuf::encode(object) {
        Ok(b) => (kind, b),
        Err(e) => {
            tracing::warn!(kind = %object["kind"], error = %e, "watch object not encodable as protobuf");
            let status =
                ApiError::internal(format!("encoding {}: {e}", object["kind"])).to_status();
            ("ERROR", protobuf::encode(&status).unwrap_or_default())
        }
    };
    Bytes::from(protobuf::frame(&protobuf::watch_event(kind, &encoded)))
}

impl Encoder {
    fn event(&mut self, kind: &str, obj: &crate::storage::CachedObject) -> Bytes {
        match &self.accept {
            Accept::Protobuf => {
                protobuf_frame(kind, &output::convert_out(self.resource, obj.value()))
            }
            Accept::Json if !output::converts(self.resource) => {
                let mut out = Vec::with_capacity(obj.json.len() + 32);
                out.extend_from_slice(b"{\"type\":\"");
                out.extend_from_slice(kind.as_bytes());
                out.extend_from_slice(b"\",\"object\":");
                out.extend_from_slice(&obj.json);
                out.extend_from_slice(b"}\n");
                Bytes::from(out)
            }
            _ => {
                let v = output::convert_out(self.resource, obj.value());
                self.value(kind, v)
            }
        }
    }

    fn value(&mut self, kind: &str, v: Value) -> Bytes {
        let object = match &self.accept {
            Accept::Protobuf => return protobuf_frame(kind, &v),
            Accept::Table { version } => {
                let rv = v
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(json!(""));
                let t = output::table(
                    self.resource,
                    std::slice::from_ref(&v),
                    self.include,
                    !self.headers_sent,
                    version,
                    json!({"resourceVersion": rv}),
                );
                self.headers_sent = true;
                t
            }
            Accept::Metadata { version } => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": format!("meta.k8s.io/{version}"),
                "metadata": v.get("metadata").cloned().unwrap_or(json!({})),
            }),
            _ => v,
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&mut self, revision: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": revision.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": meta});
        if self.accept == Accept::Protobuf {
            return protobuf_frame("BOOKMARK", &obj);
        }
        let mut line =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn error(&mut self, e: &ApiError) -> Bytes {
        if self.accept == Accept::Protobuf {
            return protobuf_frame("ERROR", &e.to_status());
        }
        let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()}))
            .unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// Which event, if any, a change is for this watcher (selector transitions
/// as kube-apiserver's cacher computes them).
fn translate(
    filter: &Filter,
    ev: &WatchEvent,
) -> Option<(&'static str, Arc<crate::storage::CachedObject>)> {
    let now = filter.matches(&ev.object);
    let before = ev.prev.as_ref().is_some_and(|p| filter.matches(p));
    match ev.kind {
        EventType::Added => now.then(|| ("ADDED", ev.object.clone())),
        EventType::Modified => match (before, now) {
            (true, true) => Some(("MODIFIED", ev.object.clone())),
            (false, true) => Some(("ADDED", ev.object.clone())),
            (true, false) => Some(("DELETED", ev.object.clone())),
            (false, false) => None,
        },
        EventType::Deleted => before.then(|| ("DELETED", ev.object.clone())),
    }
}

type Tx = mpsc::Sender<Result<Frame<Bytes>, std::convert::Infallible>>;

async fn send(tx: &mut Tx, b: Bytes) -> bool {
    tx.send(Ok(Frame::data(b))).await.is_ok()
}

fn closed(tx: &Tx) -> impl std::future::Future<Output = ()> + '_ {
    tx.closed()
}

/// WATCH.
pub async fn watch(
    api: Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
    kind: &RequestKind,
) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let include = include_object(r)?;
    let filter = Filter::from_request(rr, r)?;
    let res = storage_resource(rr.resource);
    let rv: i64 = match r.q("resourceVersion") {
        None => 0,
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
    };
    let bookmarks = matches!(r.q("allowWatchBookmarks"), Some("true" | "1"));
    let send_initial = r.q("sendInitialEvents").map(|v| v == "true");
    if send_initial == Some(true) && r.q("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[crate::api::status::Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan".into(),
                field: "sendInitialEvents".into(),
            }],
        ));
    }
    // Initial ADDED events for "now" (resourceVersion unset or 0), as
    // kube-apiserver sends them, or when asked for with sendInitialEvents.
    let initial = match send_initial {
        Some(v) => v,
        None => rv == 0,
    };
    let timeout = match r.q("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        None => MAX_TIMEOUT,
    }
    .min(MAX_TIMEOUT * 2);
    let store = api.registry.store.clone();
    let Some(cache) = store.cache(res).cloned() else {
        return Err(ApiError::method_not_supported(res, "watch"));
    };
    let start = if rv > 0 && send_initial == Some(true) {
        // Initial events at a not-older-than revision come from the cache.
        if !cache.wait_for(rv, Duration::from_secs(3)).await {
            return Err(ApiError::timeout(format!(
                "Too large resource version: {rv}, current: {}",
                cache.revision()
            )));
        }
        cache.watch(0, &filter.prefix, true)
    } else {
        if rv > cache.revision()
            && cache.is_ready()
            && !cache.wait_for(rv, Duration::from_secs(3)).await
        {
            return Err(ApiError::timeout(format!(
                "Too large resource version: {rv}, current: {}",
                cache.revision()
            )));
        }
        cache.watch(rv, &filter.prefix, initial)
    };
    if matches!(start, WatchStart::Etcd) && rv == 0 {
        return Err(ApiError::unavailable("storage is (re)initializing"));
    }
    let (mut tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(256);
    let mut enc = Encoder {
        resource: rr.resource,
        accept: accept.clone(),
        include,
        headers_sent: false,
    };
    let guard = LongRunning::start(kind, rr.resource.kind);
    let etcd = store.etcd.clone();
    let prefix = cache.prefix().to_string();
    let fields = cache.fields();
    let end_bookmark = bookmarks && send_initial == Some(true);
    tokio::spawn(async move {
        let _guard = guard;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_rv = rv;
        let mut last_bookmark = tokio::time::Instant::now();
        match start {
            WatchStart::Cache(mut w) => {
                while let Some(ev) = w.initial.pop_front() {
                    if let Some((kind, obj)) = translate(&filter, &ev) {
                        if !send(&mut tx, enc.event(kind, &obj)).await {
                            return;
                        }
                        _guard.event_sent();
                    }
                    last_rv = last_rv.max(ev.revision);
                }
                last_rv = last_rv.max(w.start_revision);
                if end_bookmark && !send(&mut tx, enc.bookmark(last_rv, true)).await {
                    return;
                }
                loop {
                    let msg = tokio::select! {
                        m = w.rx.recv() => m,
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = closed(&tx) => return,
                    };
                    match msg {
                        Ok(Notice::Event(ev)) => {
                            if ev.revision <= last_rv {
                                continue;
                            }
                            last_rv = ev.revision;
                            if let Some((kind, obj)) = translate(&filter, &ev) {
                                if !send(&mut tx, enc.event(kind, &obj)).await {
                                    return;
                                }
                                _guard.event_sent();
                            }
                        }
                        Ok(Notice::Progress(p)) => {
                            if p > last_rv {
                                last_rv = p;
                                if bookmarks && last_bookmark.elapsed() >= BOOKMARK_EVERY {
                                    last_bookmark = tokio::time::Instant::now();
                                    if !send(&mut tx, enc.bookmark(last_rv, false)).await {
                                        return;
                                    }
                                }
                            }
                        }
                        Ok(Notice::Reset) | Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                            return;
                        }
                    }
                }
            }
            WatchStart::Etcd => {
                let mut rx = watch_etcd(etcd, prefix, rv + 1, fields);
                loop {
                    let msg = tokio::select! {
                        m = rx.recv() => m,
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = closed(&tx) => return,
                    };
                    match msg {
                        Some(Ok(Notice::Event(ev))) => {
                            last_rv = ev.revision;
                            if let Some((kind, obj)) = translate(&filter, &ev)
                                && !send(&mut tx, enc.event(kind, &obj)).await
                            {
                                return;
                            }
                        }
                        Some(Ok(Notice::Progress(p))) => {
                            if p > last_rv {
                                last_rv = p;
                                if bookmarks && last_bookmark.elapsed() >= BOOKMARK_EVERY {
                                    last_bookmark = tokio::time::Instant::now();
                                    if !send(&mut tx, enc.bookmark(last_rv, false)).await {
                                        return;
                                    }
                                }
                            }
                        }
                        Some(Err(StorageError::Compacted { revision })) => {
                            let e = ApiError::too_old(rv, revision);
                            let _ = send(&mut tx, enc.error(&e)).await;
                            return;
                        }
                        Some(Err(e)) => {
                            let e: ApiError = e.into();
                            let _ = send(&mut tx, enc.error(&e)).await;
                            return;
                        }
                        Some(Ok(Notice::Reset)) | None => return,
                    }
                }
            }
        }
        if bookmarks {
            let _ = send(&mut tx, enc.bookmark(last_rv, false)).await;
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let body = StreamBody::new(stream).boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let ct = match &accept {
        Accept::Json | Accept::Yaml => "application/json".to_string(),
        Accept::Protobuf => format!("{};stream=watch", protobuf::MEDIA_TYPE),
        other => other.content_type(),
    };
    if let Ok(v) = HeaderValue::from_str(&ct) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
