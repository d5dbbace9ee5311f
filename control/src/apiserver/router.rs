//! Request routing: maps a URL path and method to what is asked for — a
//! non-resource endpoint or a resource request (group, version, resource,
//! namespace, name, subresource, verb), like kube-apiserver's RequestInfo.

use std::collections::HashMap;

use percent_encoding::percent_decode_str;

use crate::api::resource::Resource;
use crate::api::status::ApiError;
use crate::kinds;

/// The verb of a resource request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    /// The verb as discovery names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// The verb as apiserver_request_total labels it.
    pub fn metric(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::List => "LIST",
            Verb::Watch => "WATCH",
            Verb::Create => "POST",
            Verb::Update => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
            Verb::DeleteCollection => "DELETECOLLECTION",
        }
    }
}

/// A request for a resource.
#[derive(Debug, Clone)]
pub struct ResourceRequest {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub verb: Verb,
}

impl ResourceRequest {
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

/// Where a request goes.
#[derive(Debug)]
pub enum Route {
    Version,
    Health(&'static str, Option<String>),
    Metrics,
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3(String),
    /// `/.well-known/openid-configuration`: the service-account issuer.
    OpenIdConfiguration,
    /// `/openid/v1/jwks`: the keys that verify service-account tokens.
    OpenIdKeySet,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`
    ResourceList(String, String),
    Resource(ResourceRequest),
    NotFound,
}

/// Parses `a=b&c=d` (form-encoded) into a map; later values win.
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        out.insert(dec(k), dec(v));
    }
    out
}

fn is_true(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1"))
}

/// Routes a request.
pub fn route(
    method: &http::Method,
    path: &str,
    query: &HashMap<String, String>,
) -> Result<Route, ApiError> {
    let trimmed = path.trim_end_matches('/');
    let parts: Vec<String> = trimmed
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(match p.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] => Route::Health("healthz", None),
        ["healthz", c] => Route::Health("healthz", Some(c.to_string())),
        ["livez"] => Route::Health("livez", None),
        ["livez", c] => Route::Health("livez", Some(c.to_string())),
        ["readyz"] => Route::Health("readyz", None),
        ["readyz", c] => Route::Health("readyz", Some(c.to_string())),
        ["metrics"] => Route::Metrics,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        [".well-known", "openid-configuration"] => Route::OpenIdConfiguration,
        ["openid", "v1", "jwks"] => Route::OpenIdKeySet,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["api", v] => Route::ResourceList(String::new(), v.to_string()),
        ["apis", g, v] => Route::ResourceList(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => resource_route("", v, rest, method, query)?,
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest, method, query)?,
        _ => Route::NotFound,
    })
}

fn resource_route(
    group: &str,
    version: &str,
    rest: &[&str],
    method: &http::Method,
    query: &HashMap<String, String>,
) -> Result<Route, ApiError> {
    // The deprecated `/watch/` prefix.
    let (rest, watch_prefix) = match rest {
        ["watch", r @ ..] => (r, true),
        r => (r, false),
    };
    let (namespace, tail): (Option<String>, &[&str]) = match rest {
        ["namespaces", ns, r @ ..]
            if !r.is_empty()
                && (r.len() != 1
                    || !group.is_empty()
                    || !matches!(r[0], "status" | "finalize")) =>
        {
            (Some(ns.to_string()), r)
        }
        r => (None, r),
    };
    let (plural, name, sub) = match tail {
        [res] => (*res, None, None),
        [res, name] => (*res, Some(name.to_string()), None),
        [res, name, sub] => (*res, Some(name.to_string()), Some(sub.to_string())),
        // A proxy subresource takes the rest of the path along.
        [res, name, "proxy", ..] => (*res, Some(name.to_string()), Some("proxy".to_owned())),
        _ => return Ok(Route::NotFound),
    };
    let Some(resource) = kinds::find(group, version, plural) else {
        return Ok(Route::NotFound);
    };
    if namespace.is_some() && !resource.namespaced {
        return Ok(Route::NotFound);
    }
    if let Some(s) = &sub
        && resource.subresource(s).is_none()
    {
        return Ok(Route::NotFound);
    }
    let watch = watch_prefix || is_true(query.get("watch"));
    let verb = match (method.as_str(), &name) {
        ("GET" | "HEAD", None) if watch => Verb::Watch,
        ("GET" | "HEAD", Some(_)) if watch_prefix => Verb::Watch,
        ("GET" | "HEAD", None) => Verb::List,
        ("GET" | "HEAD", Some(_)) => Verb::Get,
        ("POST", _) => Verb::Create,
        ("PUT", Some(_)) => Verb::Update,
        ("PATCH", Some(_)) => Verb::Patch,
        ("DELETE", Some(_)) => Verb::Delete,
        ("DELETE", None) => Verb::DeleteCollection,
        _ => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    Ok(Route::Resource(ResourceRequest {
        resource,
        namespace,
        name,
        subresource: sub,
        verb,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn r(method: Method, path: &str, q: &str) -> Route {
        route(&method, path, &parse_query(Some(q))).unwrap()
    }

    #[test]
    fn resource_paths() {
        let Route::Resource(rr) = r(Method::GET, "/api/v1/namespaces/default/pods/nginx", "")
        else {
            panic!()
        };
        assert_eq!(
            (rr.namespace(), rr.name(), rr.verb),
            ("default", "nginx", Verb::Get)
        );
        let Route::Resource(rr) = r(Method::GET, "/apis/apps/v1/deployments", "watch=true") else {
            panic!()
        };
        assert_eq!(rr.verb, Verb::Watch);
        let Route::Resource(rr) = r(Method::PUT, "/api/v1/namespaces/kube-system/finalize", "")
        else {
            panic!()
        };
        assert_eq!(rr.resource.plural, "namespaces");
        assert_eq!(rr.name(), "kube-system");
        assert_eq!(rr.subresource.as_deref(), Some("finalize"));
        let Route::Resource(rr) = r(Method::GET, "/api/v1/namespaces/x", "") else {
            panic!()
        };
        assert_eq!((rr.resource.plural, rr.name()), ("namespaces", "x"));
        let Route::Resource(rr) = r(Method::POST, "/api/v1/namespaces/d/pods/p/eviction", "")
        else {
            panic!()
        };
        assert_eq!(rr.subresource.as_deref(), Some("eviction"));
        let Route::Resource(rr) = r(Method::GET, "/api/v1/nodes/n1/proxy/metrics/resource", "")
        else {
            panic!()
        };
        assert_eq!(
            (
                rr.resource.plural,
                rr.name(),
                rr.subresource.as_deref(),
                rr.verb
            ),
            ("nodes", "n1", Some("proxy"), Verb::Get)
        );
        assert!(matches!(
            r(Method::GET, "/api/v1/nodes/n1/status/x", ""),
            Route::NotFound
        ));
        let Route::Resource(rr) = r(Method::DELETE, "/api/v1/namespaces/d/configmaps", "") else {
            panic!()
        };
        assert_eq!(rr.verb, Verb::DeleteCollection);
        assert!(matches!(
            r(Method::GET, "/api/v1/namespaces/d/nope", ""),
            Route::NotFound
        ));
        assert!(matches!(
            r(Method::GET, "/api/v1/namespaces/d/nodes", ""),
            Route::NotFound
        ));
    }

    #[test]
    fn issuer_discovery_paths_with_or_without_a_trailing_slash() {
        for path in [
            "/.well-known/openid-configuration",
            "/.well-known/openid-configuration/",
        ] {
            assert!(matches!(
                r(Method::GET, path, ""),
                Route::OpenIdConfiguration
            ));
        }
        for path in ["/openid/v1/jwks", "/openid/v1/jwks/"] {
            assert!(matches!(r(Method::GET, path, ""), Route::OpenIdKeySet));
        }
        assert!(matches!(
            r(Method::GET, "/openid/v1/keys", ""),
            Route::NotFound
        ));
    }

    #[test]
    fn query_is_decoded() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&limit=5"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["limit"], "5");
    }
}
