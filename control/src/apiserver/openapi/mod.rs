//! OpenAPI v3 as kube-apiserver serves it: an index at `/openapi/v3` naming
//! one document per group-version, each at
//! `/openapi/v3/<api/v1|apis/<group>/<version>>?hash=<HASH>`.
//!
//! kubectl reads these to explain types (`kubectl explain`), to compute
//! client-side apply patches (the patch merge keys) and to decide that the
//! server validates fields itself (the `fieldValidation` parameter of PATCH
//! operations) instead of downloading `/openapi/v2` to validate locally.
//! kubectl 1.33 needs `/openapi/v2` only when these documents are missing or
//! lack that parameter; for group-versions the v3 index does not name, its
//! validator falls back to `/openapi/v2` (module `v2`, built from the same
//! paths and schemas).
//!
//! Serving (for the HTTP layer): a document is immutable for the life of the
//! process; answer it with `Content-Type: application/json` and
//! `ETag: "<hash>"`, honour `If-None-Match` with 304, and when the request's
//! `hash` query parameter equals the document's hash add
//! `Cache-Control: public, immutable` and `Expires` a year ahead (kube-openapi
//! `handler3`); a stale `hash` gets a 301 to the current `serverRelativeURL`.

mod params;
mod paths;
pub mod v2;
mod v2_proto;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::api::resource::Resource;
use crate::kinds;
use crate::schema::{self, REF_PREFIX, Schemas};

/// One group-version's document, serialized once.
#[derive(Debug, Clone)]
pub struct Document {
    /// The JSON bytes served.
    pub bytes: bytes::Bytes,
    /// Upper-case hex SHA-512 of `bytes`: the `hash` of its URL and its ETag.
    pub hash: String,
}

struct Documents {
    /// Keyed by the index path (`api/v1`, `apis/apps/v1`), in discovery order.
    by_path: Vec<(String, Document)>,
}

static DOCUMENTS: LazyLock<Documents> = LazyLock::new(|| {
    let schemas = schema::schemas();
    let by_path = kinds::group_versions()
        .into_iter()
        .map(|(group, version)| {
            let doc = build(schemas, group, version);
            let bytes = serde_json::to_vec(&doc).unwrap_or_default();
            let hash = sha512_hex(&bytes);
            (
                index_path(group, version),
                Document {
                    bytes: bytes.into(),
                    hash,
                },
            )
        })
        .collect();
    Documents { by_path }
});

/// `api/v1` or `apis/<group>/<version>`: a document's key in the index.
pub fn index_path(group: &str, version: &str) -> String {
    paths::prefix(group, version)
        .trim_start_matches('/')
        .to_string()
}

/// The body of `GET /openapi/v3`.
pub fn v3_index() -> Value {
    let paths: Map<String, Value> = DOCUMENTS
        .by_path
        .iter()
        .map(|(path, doc)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// The document of a group-version (`""`, `"v1"` for the core group).
pub fn v3_document(group: &str, version: &str) -> Option<&'static Document> {
    v3_document_at(&index_path(group, version))
}

/// The document at an index path (`api/v1`, `apis/apps/v1`): what follows
/// `/openapi/v3/` in a request's path.
pub fn v3_document_at(path: &str) -> Option<&'static Document> {
    let path = path.trim_matches('/');
    DOCUMENTS
        .by_path
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, doc)| doc)
}

fn sha512_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA512, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// Builds one group-version's document: its paths, and every schema they
/// reach through `$ref`s.
fn build(schemas: &Schemas, group: &str, version: &str) -> Value {
    let served: Vec<&Resource> = kinds::RESOURCES
        .iter()
        .copied()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    let paths = paths::paths(schemas, group, version, &served);

    let mut needed = BTreeSet::new();
    let mut queue = Vec::new();
    collect_refs(&Value::Object(paths.clone()), &mut queue);
    while let Some(name) = queue.pop() {
        if needed.insert(name.clone())
            && let Some(schema) = schemas.definitions().get(&name)
        {
            collect_refs(schema, &mut queue);
        }
    }
    let components: BTreeMap<String, Value> = needed
        .into_iter()
        .filter_map(|name| {
            let schema = schemas.definitions().get(&name)?.clone();
            Some((name, schema))
        })
        .collect();

    json!({
        "components": {
            "schemas": components,
            "securitySchemes": {
                "BearerToken": {
                    "description": "Bearer Token authentication",
                    "in": "header",
                    "name": "authorization",
                    "type": "apiKey",
                },
            },
        },
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "openapi": "3.0.0",
        "paths": paths,
        "security": [{"BearerToken": []}],
    })
}

/// Pushes the schema name of every `$ref` in `v`.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref" {
                    if let Some(name) = child.as_str().and_then(|r| r.strip_prefix(REF_PREFIX)) {
                        out.push(name.to_string());
                    }
                } else {
                    collect_refs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
