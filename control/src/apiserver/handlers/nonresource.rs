//! Non-resource endpoints: /version, health checks, /metrics, OpenAPI,
//! discovery, and the service-account issuer's discovery documents.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Response};
use serde_json::json;

use super::{Api, Body, Req, respond, respond_json};
use crate::api::status::ApiError;
use crate::apiserver::auth::issuer_discovery;
use crate::apiserver::codec::content::{self, Accept};
use crate::apiserver::router::Route;
use crate::apiserver::{discovery, metrics, openapi};

/// The Kubernetes version served (k8s-openapi's `v1_33` types).
pub const KUBE_MINOR: &str = "33";

pub fn version() -> serde_json::Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "emulationMajor": "1",
        "emulationMinor": KUBE_MINOR,
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": format!("v1.{KUBE_MINOR}.0-baton.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

async fn checks(api: &Arc<Api>, endpoint: &str) -> Vec<(&'static str, Result<(), String>)> {
    let etcd_ok = match tokio::time::timeout(
        Duration::from_secs(2),
        api.registry.store.etcd.current_revision(),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("etcd did not answer within 2s".to_string()),
    };
    let mut out = vec![("ping", Ok(())), ("log", Ok(())), ("etcd", etcd_ok.clone())];
    if endpoint == "readyz" {
        out.push(("etcd-readiness", etcd_ok));
        out.push((
            "informer-sync",
            if api.registry.store.caches_ready() {
                Ok(())
            } else {
                Err("watch caches not synced".into())
            },
        ));
        out.push((
            "poststarthook/bootstrap-controller",
            if *api.bootstrapped.borrow() {
                Ok(())
            } else {
                Err("not finished".into())
            },
        ));
        out.push(("shutdown", Ok(())));
    }
    out
}

async fn health(
    api: &Arc<Api>,
    endpoint: &'static str,
    single: Option<String>,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let all = checks(api, endpoint).await;
    if let Some(name) = single {
        return match all.iter().find(|(n, _)| *n == name) {
            Some((_, Ok(()))) => Ok(respond(200, "text/plain; charset=utf-8", "ok")),
            Some((_, Err(_))) => Ok(respond(
                500,
                "text/plain; charset=utf-8",
                format!("internal server error: {name} check failed"),
            )),
            None => Err(ApiError::not_found_path()),
        };
    }
    let failed = all.iter().any(|(_, r)| r.is_err());
    let verbose = r.query.contains_key("verbose") || failed;
    let mut text = String::new();
    if verbose {
        for (name, res) in &all {
            match res {
                Ok(()) => text.push_str(&format!("[+]{name} ok\n")),
                Err(_) => text.push_str(&format!("[-]{name} failed: reason withheld\n")),
            }
        }
        if failed {
            text.push_str(&format!("{endpoint} check failed\n"));
        } else {
            text.push_str(&format!("{endpoint} check passed\n"));
        }
    } else {
        text.push_str("ok");
    }
    let mut resp = respond(
        if failed { 500 } else { 200 },
        "text/plain; charset=utf-8",
        text,
    );
    resp.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

fn openapi_doc(path: &str, r: &Req) -> Result<Response<Body>, ApiError> {
    let Some(doc) = openapi::v3_document_at(path) else {
        return Err(ApiError::not_found_path());
    };
    let etag = format!("\"{}\"", doc.hash);
    if r.header("if-none-match") == Some(etag.as_str()) {
        let mut resp = respond(304, "application/json", bytes::Bytes::new());
        if let Ok(v) = HeaderValue::from_str(&etag) {
            resp.headers_mut().insert(http::header::ETAG, v);
        }
        return Ok(resp);
    }
    if let Some(h) = r.q("hash")
        && h != doc.hash
    {
        let mut resp = respond(301, "text/plain", bytes::Bytes::new());
        if let Ok(v) = HeaderValue::from_str(&format!(
            "/openapi/v3/{}?hash={}",
            path.trim_matches('/'),
            doc.hash
        )) {
            resp.headers_mut().insert(http::header::LOCATION, v);
        }
        return Ok(resp);
    }
    let mut resp = respond(200, "application/json", doc.bytes.clone());
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(http::header::ETAG, v);
    }
    if r.q("hash").is_some() {
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("public, immutable"),
        );
    }
    Ok(resp)
}

/// `/openapi/v2` as kube-openapi serves it: JSON or gnostic protobuf by
/// the Accept header (406 for anything else), with an ETag.
fn openapi_v2(r: &Req) -> Result<Response<Body>, ApiError> {
    let doc = openapi::v2::v2();
    let accept = r
        .header("accept")
        .filter(|a| !a.trim().is_empty())
        .unwrap_or("*/*");
    let chosen = accept.split(',').find_map(|clause| {
        let essence = clause.split(';').next().unwrap_or("").trim();
        match essence {
            "application/json" | "application/*" | "*/*" => {
                Some((content::JSON, &doc.json, &doc.json_etag))
            }
            openapi::v2::PROTOBUF | openapi::v2::PROTOBUF_DEPRECATED => {
                Some((openapi::v2::PROTOBUF, &doc.protobuf, &doc.protobuf_etag))
            }
            _ => None,
        }
    });
    let Some((content_type, bytes, etag)) = chosen else {
        return Ok(respond(406, "text/plain", bytes::Bytes::new()));
    };
    let etag = format!("\"{etag}\"");
    let mut resp = if r.header("if-none-match") == Some(etag.as_str()) {
        respond(304, content_type, bytes::Bytes::new())
    } else {
        respond(200, content_type, bytes.clone())
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(http::header::ETAG, v);
    }
    resp.headers_mut()
        .insert(http::header::VARY, HeaderValue::from_static("Accept"));
    Ok(resp)
}

/// One of the issuer's discovery documents, with kube-apiserver's
/// caching headers; only GET is served, as upstream's routes do.
fn issuer_document(
    r: &Req,
    content_type: &str,
    body: bytes::Bytes,
) -> Result<Response<Body>, ApiError> {
    if r.method != http::Method::GET {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow the method {}", r.method),
        ));
    }
    let mut resp = respond(200, content_type, body);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "public, max-age={}",
        issuer_discovery::MAX_AGE_SECONDS
    )) {
        resp.headers_mut().insert(http::header::CACHE_CONTROL, v);
    }
    Ok(resp)
}

pub async fn handle(api: &Arc<Api>, route: Route, r: &Req) -> Result<Response<Body>, ApiError> {
    match route {
        Route::Version => Ok(respond_json(200, &Accept::Json, &version())),
        Route::Health(endpoint, single) => health(api, endpoint, single, r).await,
        Route::Metrics => Ok(respond(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(),
        )),
        Route::OpenApiV2 => openapi_v2(r),
        Route::OpenApiV3Index => Ok(respond_json(200, &Accept::Json, &openapi::v3_index())),
        Route::OpenApiV3(path) => openapi_doc(&path, r),
        Route::OpenIdConfiguration => issuer_document(
            r,
            issuer_discovery::CONFIG_CONTENT_TYPE,
            api.issuer_discovery.config(),
        ),
        Route::OpenIdKeySet => issuer_document(
            r,
            issuer_discovery::JWKS_CONTENT_TYPE,
            api.issuer_discovery.keyset(),
        ),
        Route::CoreVersions => {
            let accept = content::negotiate(r.header("accept"), false, true)?;
            match accept {
                Accept::Discovery { version } => Ok(respond(
                    200,
                    &accept.content_type(),
                    serde_json::to_vec(&discovery::aggregated(true, version)).unwrap_or_default(),
                )),
                other => Ok(respond_json(
                    200,
                    &other,
                    &discovery::api_versions(&api.server_address),
                )),
            }
        }
        Route::Groups => {
            let accept = content::negotiate(r.header("accept"), false, true)?;
            match accept {
                Accept::Discovery { version } => Ok(respond(
                    200,
                    &accept.content_type(),
                    serde_json::to_vec(&discovery::aggregated(false, version)).unwrap_or_default(),
                )),
                other => Ok(respond_json(200, &other, &discovery::api_group_list())),
            }
        }
        Route::Group(g) => discovery::api_group(&g)
            .map(|d| respond_json(200, &Accept::Json, &d))
            .ok_or_else(ApiError::not_found_path),
        Route::ResourceList(g, v) => discovery::api_resource_list(&g, &v)
            .map(|d| respond_json(200, &Accept::Json, &d))
            .ok_or_else(ApiError::not_found_path),
        Route::Resource(_) | Route::NotFound => Err(ApiError::not_found_path()),
    }
}
