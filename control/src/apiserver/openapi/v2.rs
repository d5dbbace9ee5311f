//! OpenAPI v2 (Swagger 2.0) at `/openapi/v2`, built from the same paths
//! and schemas as the v3 documents: one document for every group-version,
//! `$ref`s into `#/definitions/`, request bodies as `body` parameters,
//! parameter schemas flattened, media types as `consumes`/`produces`.
//!
//! kubectl still reads it where v3 has nothing: its client-side validator
//! and query-parameter check fall back to v2 for a group-version the v3
//! index lacks (`apps/v1beta1`), and it asks for the protobuf form
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, gnostic's
//! `openapi.v2.Document`, encoded in `v2_proto`).

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use super::{DOCUMENTS, sha512_hex, v2_proto};
use crate::schema::REF_PREFIX;

/// Where v2 `$ref`s point.
pub const DEFINITIONS_PREFIX: &str = "#/definitions/";

/// The media type of the protobuf form, as served (a valid MIME type).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// The deprecated spelling clients (client-go's `OpenAPISchema`) still ask
/// for; answered with `PROTOBUF`, as kube-openapi does (`@` is no token
/// character, so Go's MIME parser would refuse it in a Content-Type).
pub const PROTOBUF_DEPRECATED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The v2 document, serialized once in both forms.
pub struct V2 {
    pub json: bytes::Bytes,
    pub protobuf: bytes::Bytes,
    /// ETag of the JSON form (kube-openapi: upper-case hex SHA-512).
    pub json_etag: String,
    pub protobuf_etag: String,
}

static V2_DOCUMENT: LazyLock<V2> = LazyLock::new(|| {
    let doc = document();
    let json = serde_json::to_vec(&doc).unwrap_or_default();
    let protobuf = v2_proto::encode(&doc);
    V2 {
        json_etag: sha512_hex(&json),
        protobuf_etag: sha512_hex(&protobuf),
        json: json.into(),
        protobuf: protobuf.into(),
    }
});

/// The served v2 document.
pub fn v2() -> &'static V2 {
    &V2_DOCUMENT
}

/// Rewrites a v3 schema into v2 form: `$ref`s into `#/definitions/`, a
/// `$ref` wrapped in `allOf` (v3's way to give it siblings) unwrapped, and
/// `oneOf` alternatives (IntOrString, Quantity) served as strings the way
/// kube-openapi's v2 documents type them.
pub fn schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("$ref", Value::String(r)) => {
                        let name = r.strip_prefix(REF_PREFIX).unwrap_or(r);
                        out.insert(k.clone(), json!(format!("{DEFINITIONS_PREFIX}{name}")));
                    }
                    ("allOf", Value::Array(items)) if items.len() == 1 => {
                        if let Value::Object(inner) = schema(&items[0]) {
                            out.extend(inner);
                        }
                    }
                    ("oneOf" | "anyOf", _) if !m.contains_key("type") => {
                        out.insert("type".into(), json!("string"));
                    }
                    // Property names and extension values are data.
                    ("properties", Value::Object(props)) => {
                        let props = props
                            .iter()
                            .map(|(name, s)| (name.clone(), schema(s)))
                            .collect();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    (key, _) if key.starts_with("x-") || key == "enum" || key == "default" => {
                        out.insert(k.clone(), child.clone());
                    }
                    _ => {
                        out.insert(k.clone(), schema(child));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(schema).collect()),
        other => other.clone(),
    }
}

/// A v3 parameter in v2 form: its schema's type and flags inline.
fn parameter(p: &Value) -> Value {
    let mut out = p.as_object().cloned().unwrap_or_default();
    if let Some(Value::Object(s)) = out.remove("schema") {
        for (k, v) in s {
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

/// The media types and (single) schema of a v3 `content` map.
fn content(c: Option<&Value>) -> (Vec<String>, Option<Value>) {
    let Some(Value::Object(c)) = c else {
        return (Vec::new(), None);
    };
    let types = c.keys().cloned().collect();
    let schema = c.values().find_map(|m| m.get("schema")).map(schema);
    (types, schema)
}

/// A v3 operation in v2 form.
fn operation(op: &Value) -> Value {
    let Some(m) = op.as_object() else {
        return op.clone();
    };
    let mut out = Map::new();
    let mut params: Vec<Value> = Vec::new();
    let mut consumes = vec!["*/*".to_string()];
    if let Some(body) = m.get("requestBody") {
        let (types, body_schema) = content(body.get("content"));
        if m.get("x-kubernetes-action").and_then(Value::as_str) == Some("patch") {
            consumes = types;
        }
        let mut p = json!({"in": "body", "name": "body", "required": true});
        if let Some(s) = body_schema {
            p["schema"] = s;
        }
        params.push(p);
    }
    if let Some(Value::Array(ps)) = m.get("parameters") {
        params.extend(ps.iter().map(parameter));
    }
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    if let Some(Value::Object(rs)) = m.get("responses") {
        for (code, r) in rs {
            let (types, s) = content(r.get("content"));
            for t in types {
                if !produces.contains(&t) {
                    produces.push(t);
                }
            }
            let mut resp =
                json!({"description": r.get("description").cloned().unwrap_or(json!(""))});
            if let Some(s) = s {
                resp["schema"] = s;
            }
            responses.insert(code.clone(), resp);
        }
    }
    for (k, v) in m {
        match k.as_str() {
            "requestBody" | "parameters" | "responses" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.insert("consumes".into(), json!(consumes));
    out.insert("produces".into(), json!(produces));
    out.insert("schemes".into(), json!(["https"]));
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

/// One path's item in v2 form.
fn path_item(item: &Value) -> Value {
    let Some(m) = item.as_object() else {
        return item.clone();
    };
    let out: Map<String, Value> = m
        .iter()
        .map(|(k, v)| match k.as_str() {
            "parameters" => (
                k.clone(),
                Value::Array(v.as_array().into_iter().flatten().map(parameter).collect()),
            ),
            _ => (k.clone(), operation(v)),
        })
        .collect();
    Value::Object(out)
}

/// The whole v2 document: every group-version's paths and the schemas
/// they use.
fn document() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (_, doc) in &DOCUMENTS.by_path {
        let Ok(v3) = serde_json::from_slice::<Value>(&doc.bytes) else {
            continue;
        };
        if let Some(Value::Object(ps)) = v3.get("paths") {
            for (p, item) in ps {
                paths.insert(p.clone(), path_item(item));
            }
        }
        if let Some(Value::Object(schemas)) = v3.pointer("/components/schemas") {
            for (name, s) in schemas {
                definitions.entry(name.clone()).or_insert_with(|| schema(s));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {
            "title": "Kubernetes",
            "version": format!("v1.{}.0", crate::apiserver::handlers::nonresource::KUBE_MINOR),
        },
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "type": "apiKey",
                "name": "authorization",
                "in": "header",
            },
        },
        "security": [{"BearerToken": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::from_slice(&v2().json).unwrap()
    }

    #[test]
    fn schemas_use_v2_references_and_types() {
        let d = doc();
        assert_eq!(d["swagger"], "2.0");
        let strategy = &d["definitions"]["io.k8s.api.apps.v1.DeploymentStrategy"];
        assert_eq!(
            strategy["properties"]["rollingUpdate"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.RollingUpdateDeployment"
        );
        assert!(
            strategy["properties"]["rollingUpdate"]
                .get("allOf")
                .is_none()
        );
        let ios = &d["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
        assert_eq!(
            (&ios["type"], &ios["format"]),
            (&json!("string"), &json!("int-or-string"))
        );
        assert!(ios.get("oneOf").is_none());
        assert_eq!(
            d["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"][0]
                ["kind"],
            "Deployment"
        );
        // No v3 reference is left anywhere.
        assert!(!String::from_utf8_lossy(&v2().json).contains("#/components/schemas/"));
    }

    #[test]
    fn operations_take_body_parameters_and_flat_query_parameters() {
        let d = doc();
        let patch = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        let params = patch["parameters"].as_array().unwrap();
        assert_eq!(params[0]["in"], "body");
        assert_eq!(
            params[0]["schema"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
        );
        let fv = params
            .iter()
            .find(|p| p["name"] == "fieldValidation")
            .unwrap();
        assert_eq!(
            (&fv["in"], &fv["type"]),
            (&json!("query"), &json!("string"))
        );
        assert!(fv.get("schema").is_none());
        assert!(
            patch["consumes"]
                .as_array()
                .unwrap()
                .contains(&json!("application/strategic-merge-patch+json"))
        );
        let ok = &patch["responses"]["200"];
        assert_eq!(
            ok["schema"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.Deployment"
        );
        let path_params = d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["parameters"]
            .as_array()
            .unwrap();
        assert!(
            path_params
                .iter()
                .any(|p| p["name"] == "name" && p["in"] == "path" && p["type"] == "string")
        );
    }
}
