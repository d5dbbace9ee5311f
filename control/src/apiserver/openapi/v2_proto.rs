//! The v2 document as gnostic's `openapi.v2.Document` protobuf message —
//! what kube-openapi serves for
//! `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and what
//! client-go's `OpenAPISchema()` decodes.
//!
//! Written by hand from gnostic's `openapiv2/OpenAPIv2.proto` (field
//! numbers below) because no Rust crate carries those messages; only the
//! parts of Swagger 2.0 this server's document uses are encoded. Maps are
//! ordered `Named*` pairs; extension values and enum members are
//! `Any { yaml }` (JSON text is YAML).

use serde_json::{Map, Value};

/// A message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, tag: u32, wire: u8) {
        self.varint(u64::from(tag) << 3 | u64::from(wire));
    }

    fn bytes(&mut self, tag: u32, b: &[u8]) {
        self.key(tag, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// A proto3 string: left out when empty.
    fn string(&mut self, tag: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(tag, s.as_bytes());
        }
    }

    fn str_of(&mut self, tag: u32, v: &Value, key: &str) {
        if let Some(s) = v.get(key).and_then(Value::as_str) {
            self.string(tag, s);
        }
    }

    fn strings_of(&mut self, tag: u32, v: &Value, key: &str) {
        for s in v.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(s) = s.as_str() {
                self.bytes(tag, s.as_bytes());
            }
        }
    }

    fn bool_of(&mut self, tag: u32, v: &Value, key: &str) {
        if v.get(key).and_then(Value::as_bool) == Some(true) {
            self.key(tag, 0);
            self.varint(1);
        }
    }

    fn int_of(&mut self, tag: u32, v: &Value, key: &str) {
        if let Some(n) = v.get(key).and_then(Value::as_i64) {
            self.key(tag, 0);
            self.varint(n as u64);
        }
    }

    fn double_of(&mut self, tag: u32, v: &Value, key: &str) {
        if let Some(n) = v.get(key).and_then(Value::as_f64) {
            self.key(tag, 1);
            self.0.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// An embedded message, written even when empty (presence matters:
    /// an empty `properties` is not an absent one).
    fn message(&mut self, tag: u32, m: Msg) {
        self.bytes(tag, &m.0);
    }
}

/// `Any { yaml = 2 }`.
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    let text = match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    m.string(2, &format!("{text}\n"));
    m
}

/// `NamedAny { name = 1; value = 2 }` for each `x-` key of `v`.
fn vendor_extensions(msg: &mut Msg, tag: u32, v: &Value) {
    let Some(obj) = v.as_object() else { return };
    for (k, val) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut named = Msg::default();
        named.string(1, k);
        named.message(2, any(val));
        msg.message(tag, named);
    }
}

/// `Schema`.
fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, v, "$ref");
    m.str_of(2, v, "format");
    m.str_of(3, v, "title");
    m.str_of(4, v, "description");
    if let Some(d) = v.get("default") {
        m.message(5, any(d));
    }
    m.double_of(6, v, "multipleOf");
    m.double_of(7, v, "maximum");
    m.bool_of(8, v, "exclusiveMaximum");
    m.double_of(9, v, "minimum");
    m.bool_of(10, v, "exclusiveMinimum");
    m.int_of(11, v, "maxLength");
    m.int_of(12, v, "minLength");
    m.str_of(13, v, "pattern");
    m.int_of(14, v, "maxItems");
    m.int_of(15, v, "minItems");
    m.bool_of(16, v, "uniqueItems");
    m.int_of(17, v, "maxProperties");
    m.int_of(18, v, "minProperties");
    m.strings_of(19, v, "required");
    for e in v
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(20, any(e));
    }
    match v.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            // AdditionalPropertiesItem { bool boolean = 2 }
            let mut item = Msg::default();
            item.key(2, 0);
            item.varint(u64::from(*b));
            m.message(21, item);
        }
        Some(s @ Value::Object(_)) => {
            let mut item = Msg::default();
            item.message(1, schema(s));
            m.message(21, item);
        }
        _ => {}
    }
    if let Some(t) = v.get("type") {
        // TypeItem { repeated string value = 1 }
        let mut item = Msg::default();
        match t {
            Value::String(s) => item.bytes(1, s.as_bytes()),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .for_each(|s| item.bytes(1, s.as_bytes())),
            _ => {}
        }
        m.message(22, item);
    }
    if let Some(items) = v.get("items") {
        // ItemsItem { repeated Schema schema = 1 }
        let mut item = Msg::default();
        match items {
            Value::Array(list) => list.iter().for_each(|s| item.message(1, schema(s))),
            s => item.message(1, schema(s)),
        }
        m.message(23, item);
    }
    for s in v
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(s));
    }
    if let Some(Value::Object(props)) = v.get("properties") {
        m.message(25, named_schemas(props));
    }
    m.str_of(26, v, "discriminator");
    m.bool_of(27, v, "readOnly");
    if let Some(e) = v.get("example") {
        m.message(30, any(e));
    }
    vendor_extensions(&mut m, 31, v);
    m
}

/// `Properties`/`Definitions { repeated NamedSchema additional_properties = 1 }`.
fn named_schemas(map: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for (name, s) in map {
        let mut named = Msg::default();
        named.string(1, name);
        named.message(2, schema(s));
        m.message(1, named);
    }
    m
}

/// `QueryParameterSubSchema`, `PathParameterSubSchema`,
/// `HeaderParameterSubSchema`: the same fields, numbered per message.
fn non_body_parameter(p: &Value) -> Msg {
    let location = p.get("in").and_then(Value::as_str).unwrap_or("");
    let mut sub = Msg::default();
    sub.bool_of(1, p, "required");
    sub.str_of(2, p, "in");
    sub.str_of(3, p, "description");
    sub.str_of(4, p, "name");
    // Query (and form) parameters have `allow_empty_value` (5) before the type
    // fields, shifting them by one.
    let (ty, uniq, ext) = match location {
        "query" | "formData" => {
            sub.bool_of(5, p, "allowEmptyValue");
            (6, 20, 23)
        }
        _ => (5, 19, 22),
    };
    sub.str_of(ty, p, "type");
    sub.str_of(ty + 1, p, "format");
    sub.bool_of(uniq, p, "uniqueItems");
    vendor_extensions(&mut sub, ext, p);
    // NonBodyParameter { header = 1, form_data = 2, query = 3, path = 4 }
    let which = match location {
        "header" => 1,
        "formData" => 2,
        "path" => 4,
        _ => 3,
    };
    let mut nb = Msg::default();
    nb.message(which, sub);
    nb
}

/// `ParametersItem { Parameter parameter = 1 }`.
fn parameters_item(p: &Value) -> Msg {
    let mut param = Msg::default();
    if p.get("in").and_then(Value::as_str) == Some("body") {
        // BodyParameter
        let mut body = Msg::default();
        body.str_of(1, p, "description");
        body.str_of(2, p, "name");
        body.str_of(3, p, "in");
        body.bool_of(4, p, "required");
        if let Some(s) = p.get("schema") {
            body.message(5, schema(s));
        }
        vendor_extensions(&mut body, 6, p);
        param.message(1, body);
    } else {
        param.message(2, non_body_parameter(p));
    }
    let mut item = Msg::default();
    item.message(1, param);
    item
}

/// `Responses { repeated NamedResponseValue response_code = 1 }`.
fn responses(v: &Value) -> Msg {
    let mut m = Msg::default();
    for (code, r) in v.as_object().into_iter().flatten() {
        let mut resp = Msg::default();
        resp.str_of(1, r, "description");
        if let Some(s) = r.get("schema") {
            // SchemaItem { Schema schema = 1 }
            let mut item = Msg::default();
            item.message(1, schema(s));
            resp.message(2, item);
        }
        vendor_extensions(&mut resp, 5, r);
        // ResponseValue { Response response = 1 }
        let mut value = Msg::default();
        value.message(1, resp);
        let mut named = Msg::default();
        named.string(1, code);
        named.message(2, value);
        m.message(1, named);
    }
    m
}

/// `Operation`.
fn operation(op: &Value) -> Msg {
    let mut m = Msg::default();
    m.strings_of(1, op, "tags");
    m.str_of(2, op, "summary");
    m.str_of(3, op, "description");
    m.str_of(5, op, "operationId");
    m.strings_of(6, op, "produces");
    m.strings_of(7, op, "consumes");
    for p in op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(8, parameters_item(p));
    }
    if let Some(r) = op.get("responses") {
        m.message(9, responses(r));
    }
    m.strings_of(10, op, "schemes");
    m.bool_of(11, op, "deprecated");
    vendor_extensions(&mut m, 13, op);
    m
}

/// `PathItem`.
fn path_item(item: &Value) -> Msg {
    let mut m = Msg::default();
    for (tag, verb) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(op) = item.get(verb) {
            m.message(tag, operation(op));
        }
    }
    for p in item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(9, parameters_item(p));
    }
    vendor_extensions(&mut m, 10, item);
    m
}

/// `SecurityRequirement { repeated NamedStringArray additional_properties = 1 }`.
fn security_requirement(v: &Value) -> Msg {
    let mut m = Msg::default();
    for (name, scopes) in v.as_object().into_iter().flatten() {
        let mut array = Msg::default();
        for s in scopes
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            array.bytes(1, s.as_bytes());
        }
        let mut named = Msg::default();
        named.string(1, name);
        named.message(2, array);
        m.message(1, named);
    }
    m
}

/// `SecurityDefinitions`: API-key schemes only (bearer tokens).
fn security_definitions(v: &Value) -> Msg {
    let mut m = Msg::default();
    for (name, def) in v.as_object().into_iter().flatten() {
        let mut key = Msg::default();
        key.str_of(1, def, "type");
        key.str_of(2, def, "name");
        key.str_of(3, def, "in");
        key.str_of(4, def, "description");
        // SecurityDefinitionsItem { ApiKeySecurity api_key_security = 2 }
        let mut item = Msg::default();
        item.message(2, key);
        let mut named = Msg::default();
        named.string(1, name);
        named.message(2, item);
        m.message(1, named);
    }
    m
}

/// Encodes a Swagger 2.0 document as `openapi.v2.Document`.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    m.str_of(1, doc, "swagger");
    if let Some(info) = doc.get("info") {
        let mut i = Msg::default();
        i.str_of(1, info, "title");
        i.str_of(2, info, "version");
        i.str_of(3, info, "description");
        m.message(2, i);
    }
    if let Some(Value::Object(paths)) = doc.get("paths") {
        let mut p = Msg::default();
        for (path, item) in paths {
            let mut named = Msg::default();
            named.string(1, path);
            named.message(2, path_item(item));
            p.message(2, named);
        }
        m.message(8, p);
    }
    if let Some(Value::Object(defs)) = doc.get("definitions") {
        m.message(9, named_schemas(defs));
    }
    for s in doc
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(12, security_requirement(s));
    }
    if let Some(defs) = doc.get("securityDefinitions") {
        m.message(13, security_definitions(defs));
    }
    m.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Reads fields of a message: (tag, wire, payload bytes or varint).
    fn fields(mut b: &[u8]) -> Vec<(u32, Vec<u8>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut out = 0;
            let mut shift = 0;
            loop {
                let x = b[0];
                *b = &b[1..];
                out |= u64::from(x & 0x7f) << shift;
                if x & 0x80 == 0 {
                    return out;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let tag = (key >> 3) as u32;
            match key & 7 {
                0 => out.push((tag, varint(&mut b).to_le_bytes().to_vec())),
                1 => {
                    out.push((tag, b[..8].to_vec()));
                    b = &b[8..];
                }
                2 => {
                    let n = varint(&mut b) as usize;
                    out.push((tag, b[..n].to_vec()));
                    b = &b[n..];
                }
                w => panic!("wire type {w}"),
            }
        }
        out
    }

    fn field(b: &[u8], tag: u32) -> Vec<u8> {
        fields(b)
            .into_iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no field {tag}"))
    }

    #[test]
    fn documents_encode_to_gnostics_field_numbers() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "definitions": {
                "io.k8s.api.apps.v1.Deployment": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {"spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"}},
                    "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Deployment", "version": "v1"}],
                },
            },
            "paths": {"/apis/apps/v1/namespaces/{namespace}/deployments/{name}": {"patch": {
                "parameters": [{"in": "query", "name": "fieldValidation", "type": "string", "uniqueItems": true}],
                "x-kubernetes-group-version-kind": {"group": "apps", "kind": "Deployment", "version": "v1"},
            }}},
        });
        let b = encode(&doc);
        assert_eq!(field(&b, 1), b"2.0");
        assert_eq!(field(&field(&b, 2), 2), b"v1.33.0");
        // definitions → NamedSchema → Schema
        let named = field(&field(&b, 9), 1);
        assert_eq!(field(&named, 1), b"io.k8s.api.apps.v1.Deployment");
        let s = field(&named, 2);
        assert_eq!(field(&field(&s, 22), 1), b"object");
        assert_eq!(field(&s, 19), b"spec");
        let prop = field(&field(&s, 25), 1);
        assert_eq!(
            field(&field(&prop, 2), 1),
            b"#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let ext = field(&s, 31);
        assert_eq!(field(&ext, 1), b"x-kubernetes-group-version-kind");
        let yaml = String::from_utf8(field(&field(&ext, 2), 2)).unwrap();
        assert!(yaml.contains("\"kind\":\"Deployment\""), "{yaml}");
        // paths → NamedPathItem → PathItem.patch → parameters[0] →
        // Parameter.non_body → query sub-schema named fieldValidation.
        let item = field(&field(&field(&b, 8), 2), 2);
        let op = field(&item, 8);
        let query = field(&field(&field(&field(&op, 8), 1), 2), 3);
        assert_eq!(field(&query, 4), b"fieldValidation");
        assert_eq!(field(&query, 2), b"query");
        assert_eq!(field(&query, 6), b"string");
        assert_eq!(
            field(&field(&op, 13), 1),
            b"x-kubernetes-group-version-kind"
        );
    }
}
