//! Rendering objects and lists in the negotiated representation: plain
//! JSON (lists spliced from cached bytes without re-encoding), YAML, a
//! meta.k8s.io Table, or PartialObjectMetadata; events.k8s.io Events are
//! converted from their stored core form.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use super::{Body, respond_json};

/// Bytes per chunk of a streamed LIST.
const CHUNK: usize = 64 * 1024;
use crate::api::resource::Resource;
use crate::apiserver::codec::content::Accept;
use crate::apiserver::codec::table::TableOptions;
use crate::storage::CachedObject;

/// Whether objects of `r` need converting from their stored form (so the
/// stored bytes cannot be served as they are).
pub fn converts(r: &Resource) -> bool {
    r.strategy.stored_as().is_some()
}

/// A stored object as `r` serves it.
pub fn convert_out(r: &Resource, v: Value) -> Value {
    r.strategy.served_form(v)
}

pub use crate::apiserver::codec::table::IncludeObject;

fn partial_metadata(v: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": v.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A Table of `objects` (already converted), with or without headers.
pub fn table(
    r: &Resource,
    objects: &[Value],
    include: IncludeObject,
    headers: bool,
    version: &str,
    list_meta: Value,
) -> Value {
    let mut opts = TableOptions::new(jiff::Timestamp::now());
    opts.include_object = include;
    opts.no_headers = !headers;
    opts.list_meta = list_meta.as_object().cloned().unwrap_or_default();
    let refs: Vec<&Value> = objects.iter().collect();
    let mut t = crate::apiserver::codec::table::to_table(r, &refs, &opts);
    t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
    t
}

/// One object in the negotiated representation.
pub fn object(
    code: u16,
    r: &Resource,
    accept: &Accept,
    v: Value,
    include: IncludeObject,
) -> Response<Body> {
    let v = convert_out(r, v);
    match accept {
        Accept::Table { version } => {
            let rv = v
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            let t = table(
                r,
                std::slice::from_ref(&v),
                include,
                true,
                version,
                json!({"resourceVersion": rv}),
            );
            respond_json(code, accept, &t)
        }
        Accept::Metadata { version } => respond_json(code, accept, &partial_metadata(&v, version)),
        _ => respond_json(code, accept, &v),
    }
}

fn list_meta(revision: i64, cont: Option<&str>, remaining: Option<i64>) -> Value {
    let mut m = json!({"resourceVersion": revision.to_string()});
    if let Some(c) = cont {
        m["continue"] = json!(c);
    }
    if let Some(n) = remaining {
        m["remainingItemCount"] = json!(n);
    }
    m
}

/// A list in the negotiated representation.
pub fn list(
    r: &Resource,
    accept: &Accept,
    items: &[Arc<CachedObject>],
    revision: i64,
    cont: Option<&str>,
    remaining: Option<i64>,
    include: IncludeObject,
) -> Response<Body> {
    let meta = list_meta(revision, cont, remaining);
    match accept {
        Accept::Json if !converts(r) => {
            // The cached JSON of each item is spliced in, without parsing
            // or re-encoding, and streamed in chunks so a LIST of thousands
            // of objects never sits in memory as one buffer.
            let head =
                json!({"kind": r.list_kind, "apiVersion": r.api_version(), "metadata": meta});
            let mut head = serde_json::to_vec(&head).unwrap_or_default();
            head.pop();
            head.extend_from_slice(b",\"items\":[");
            let items: Vec<Arc<CachedObject>> = items.to_vec();
            let stream = futures::stream::unfold(
                (Some(head), items, 0usize),
                |(head, items, next)| async move {
                    if next > items.len() {
                        return None;
                    }
                    let mut buf = BytesMut::with_capacity(CHUNK + 4096);
                    if let Some(h) = head {
                        buf.put_slice(&h);
                    }
                    let mut i = next;
                    while i < items.len() && buf.len() < CHUNK {
                        if i > 0 {
                            buf.put_u8(b',');
                        }
                        buf.put_slice(&items[i].json);
                        i += 1;
                    }
                    if i == items.len() {
                        buf.put_slice(b"]}");
                        i += 1;
                    }
                    let frame: Result<Frame<Bytes>, std::convert::Infallible> =
                        Ok(Frame::data(buf.freeze()));
                    Some((frame, (None, items, i)))
                },
            );
            let mut resp = Response::new(StreamBody::new(stream).boxed());
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(crate::apiserver::codec::content::JSON),
            );
            resp
        }
        Accept::Table { version } => {
            let values: Vec<Value> = items.iter().map(|o| convert_out(r, o.value())).collect();
            respond_json(
                200,
                accept,
                &table(r, &values, include, true, version, meta),
            )
        }
        Accept::Metadata { version } => {
            let values: Vec<Value> = items
                .iter()
                .map(|o| partial_metadata(&o.value(), version))
                .collect();
            let l = json!({"kind": "PartialObjectMetadataList", "apiVersion": format!("meta.k8s.io/{version}"), "metadata": meta, "items": values});
            respond_json(200, accept, &l)
        }
        _ => {
            let values: Vec<Value> = items.iter().map(|o| convert_out(r, o.value())).collect();
            let l = json!({"kind": r.list_kind, "apiVersion": r.api_version(), "metadata": meta, "items": values});
            respond_json(200, accept, &l)
        }
    }
}
