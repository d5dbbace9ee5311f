//! GET of one object and LIST: label and field selectors, limit/continue
//! paging from etcd at a consistent revision, and LISTs at "any" or a
//! not-older-than revision served from the watch cache.

use std::sync::Arc;
use std::time::Duration;

use http::Response;

use super::output::{self, IncludeObject};
use super::{Api, Body, Req};
use crate::api::status::ApiError;
use crate::apiserver::codec::content::{self, Accept};
use crate::apiserver::router::ResourceRequest;
use crate::apiserver::selectors::{FieldSelector, LabelSelector};
use crate::storage::keys::{self, ContinueToken};
use crate::storage::object::decode;
use crate::storage::{CachedObject, StorageError};

/// Negotiates the representation of a resource request's response:
/// protobuf is offered when the kind it returns (the subresource's, for
/// `deployments/scale`) has a protobuf message.
pub fn accept(rr: &ResourceRequest, r: &Req) -> Result<Accept, ApiError> {
    let res = rr.resource;
    let or = |own: &'static str, parent: &'static str| if own.is_empty() { parent } else { own };
    let (group, version, kind) = match rr.subresource.as_deref().and_then(|s| res.subresource(s)) {
        Some(s) => (or(s.group, res.group), or(s.version, res.version), s.kind),
        None => (res.group, res.version, res.kind),
    };
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let offers = content::Offers {
        tables: true,
        discovery: false,
        protobuf: crate::apiserver::codec::protobuf::serves(&api_version, kind),
    };
    content::negotiate_offers(r.header("accept"), offers)
}

pub fn include_object(r: &Req) -> Result<IncludeObject, ApiError> {
    IncludeObject::parse(r.q("includeObject")).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unrecognized includeObject value: {:?}",
            r.q("includeObject").unwrap_or("")
        ))
    })
}

/// GET one object.
pub async fn get(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let include = include_object(r)?;
    let storage_res = storage_resource(rr.resource);
    if accept == Accept::Json && !output::converts(rr.resource) {
        // A quorum read of the key; when the watch cache already holds that
        // revision, its encoded bytes are served without re-encoding.
        let key = keys::object_key(storage_res, rr.namespace(), rr.name());
        let (kv, _) = api.registry.store.etcd.get(&key).await?;
        let Some(kv) = kv else {
            return Err(ApiError::not_found(storage_res, rr.name()));
        };
        let cached = api
            .registry
            .store
            .cache(storage_res)
            .and_then(|c| c.get(&key))
            .flatten();
        let json = match cached {
            Some(o) if o.revision == kv.mod_revision => o.json.clone(),
            _ => {
                let fields = storage_res.strategy.selectable_fields();
                decode(&key, &kv.value, kv.mod_revision, fields)
                    .map(|o| o.json.clone())
                    .ok_or_else(|| ApiError::internal(format!("decoding {key}")))?
            }
        };
        return Ok(super::respond(200, content::JSON, json));
    }
    let v = api
        .registry
        .get(storage_res, rr.namespace(), rr.name())
        .await?;
    Ok(output::object(200, rr.resource, &accept, v, include))
}

/// The resource whose store holds `r`'s objects (itself, or the one its
/// kind names: events.k8s.io Events are core/v1 Events).
pub fn storage_resource(
    r: &'static crate::api::resource::Resource,
) -> &'static crate::api::resource::Resource {
    r.strategy.stored_as().unwrap_or(r)
}

/// Parsed selectors of a list or watch.
pub struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub prefix: String,
}

impl Filter {
    pub fn from_request(rr: &ResourceRequest, r: &Req) -> Result<Self, ApiError> {
        let res = storage_resource(rr.resource);
        let labels = LabelSelector::parse(r.q("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let mut field_str = r.q("fieldSelector").unwrap_or("").to_string();
        if let Some(name) = &rr.name {
            // A watch on one object: a metadata.name field selector.
            if !field_str.is_empty() {
                field_str.push(',');
            }
            field_str.push_str(&format!("metadata.name={name}"));
        }
        let fields = FieldSelector::parse(
            &field_str,
            &res.strategy
                .selectable_fields()
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>(),
        )
        .map_err(|e| ApiError::bad_request(format!("field label not supported: {e}")))?;
        let ns = rr
            .namespace
            .clone()
            .or_else(|| fields.required("metadata.namespace").map(str::to_string));
        let prefix = keys::list_prefix(res, ns.as_deref().filter(|_| res.namespaced));
        Ok(Filter {
            labels,
            fields,
            prefix,
        })
    }

    pub fn matches(&self, o: &CachedObject) -> bool {
        o.key.starts_with(&self.prefix) && self.labels.matches(o) && self.fields.matches(o)
    }
}

fn parse_rv(s: Option<&str>) -> Result<Option<i64>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}"))),
    }
}

/// LIST.
pub async fn list(
    api: &Arc<Api>,
    rr: &ResourceRequest,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let accept = accept(rr, r)?;
    let include = include_object(r)?;
    let filter = Filter::from_request(rr, r)?;
    let res = storage_resource(rr.resource);
    let limit: i64 = match r.q("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let rv = parse_rv(r.q("resourceVersion"))?;
    let exact = r.q("resourceVersionMatch") == Some("Exact");
    let token = match r.q("continue") {
        Some(t) => {
            Some(ContinueToken::decode(t).map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
        None => None,
    };
    let store = &api.registry.store;
    let cache = store.cache(res);
    // From the cache: no continuation, no exact revision, and either no
    // limit or a read at "any" revision (resourceVersion=0, where the limit
    // is ignored like kube-apiserver's cache does).
    let from_cache = token.is_none() && !exact && (limit <= 0 || rv == Some(0));
    if from_cache && let Some(cache) = cache {
        let want = match rv {
            Some(0) => 0,
            Some(n) => n,
            None => store.etcd.current_revision().await?,
        };
        let fresh = if want == 0 {
            cache.is_ready()
        } else {
            cache.wait_for(want, Duration::from_secs(3)).await
        };
        if fresh && let Some((revision, objs)) = cache.snapshot(&filter.prefix) {
            let items: Vec<Arc<CachedObject>> =
                objs.into_iter().filter(|o| filter.matches(o)).collect();
            return Ok(output::list(
                rr.resource,
                &accept,
                &items,
                revision,
                None,
                None,
                include,
            ));
        }
        if let Some(n) = rv
            && n > 0
            && cache.is_ready()
        {
            return Err(ApiError::timeout(format!(
                "Too large resource version: {n}, current: {}",
                cache.revision()
            )));
        }
    }
    // From etcd, a page at a time at one revision.
    let revision = match (&token, rv, exact) {
        (Some(t), _, _) => t.revision,
        (None, Some(n), true) => n,
        _ => 0,
    };
    let start = match &token {
        Some(t) => t.start_key(&filter.prefix),
        None => filter.prefix.clone(),
    };
    let end = keys::prefix_end(&filter.prefix);
    let fields = cache
        .map(|c| c.fields())
        .unwrap_or(res.strategy.selectable_fields());
    let mut items = Vec::new();
    let mut next = start;
    let mut read_rev = revision;
    let page_size = if limit > 0 { limit.max(1) } else { 0 };
    let mut cont = None;
    let mut remaining = None;
    loop {
        let page = match store
            .etcd
            .range(&next, &end, read_rev, page_size, false)
            .await
        {
            Ok(p) => p,
            Err(StorageError::Compacted { .. }) if token.is_some() => {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            Err(StorageError::Compacted { .. }) => {
                return Err(ApiError::too_old(
                    revision,
                    store.compacted.load(std::sync::atomic::Ordering::Relaxed),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if read_rev == 0 {
            read_rev = page.revision;
        }
        let last_key = page.kvs.last().map(|kv| kv.key.clone());
        let total = page.count;
        let n = page.kvs.len();
        for (i, kv) in page.kvs.into_iter().enumerate() {
            let Some(obj) = decode(&kv.key, &kv.value, kv.mod_revision, fields) else {
                continue;
            };
            if filter.matches(&obj) {
                items.push(obj);
            }
            let taken = kv.key;
            if limit > 0 && items.len() as i64 >= limit {
                let more_here = i + 1 < n;
                if more_here || page.more {
                    let k = taken.clone();
                    cont = Some(ContinueToken::after(&filter.prefix, &k, read_rev).encode());
                    if filter.labels.is_empty() && filter.fields.is_empty() {
                        remaining = Some(total - (i as i64 + 1));
                    }
                }
                break;
            }
        }
        if cont.is_some() || !page.more || limit <= 0 {
            break;
        }
        match last_key {
            Some(k) => next = format!("{k}\0"),
            None => break,
        }
    }
    Ok(output::list(
        rr.resource,
        &accept,
        &items,
        read_rev,
        cont.as_deref(),
        remaining,
        include,
    ))
}
