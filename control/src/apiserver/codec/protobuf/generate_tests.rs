//! Derives `fields.txt` from k8s-pb's sources and checks the committed
//! file equals it.

use std::path::PathBuf;

use super::table::{Cardinality, Field, Kind, render};

/// k8s-pb's `src/` directory, found through cargo metadata.
fn k8s_pb_src() -> PathBuf {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "k8s-pb")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("k8s-pb is a dev-dependency");
    PathBuf::from(manifest).parent().unwrap().join("src")
}

/// Modules whose messages the API server decodes.
const MODULES: &[&str] = &[
    "api/core/v1",
    "api/apps/v1",
    "api/authentication/v1",
    "api/authorization/v1",
    "api/autoscaling/v1",
    "api/batch/v1",
    "api/certificates/v1",
    "api/coordination/v1",
    "api/discovery/v1",
    "api/events/v1",
    "api/policy/v1",
    "api/rbac/v1",
    "api/scheduling/v1",
    "apimachinery/pkg/apis/meta/v1",
    "apimachinery/pkg/api/resource",
    "apimachinery/pkg/runtime",
    "apimachinery/pkg/util/intstr",
];

/// `io.k8s.api.core.v1` for `api/core/v1`.
fn package(module: &str) -> String {
    format!("io.k8s.{}", module.replace('/', "."))
}

/// Resolves a Rust type path used in `module` to a full proto name.
fn resolve(module: &str, ty: &str) -> String {
    let ty = ty.trim_start_matches("::");
    let mut base: Vec<&str> = module.split('/').collect();
    let mut rest = ty;
    while let Some(r) = rest.strip_prefix("super::") {
        base.pop();
        rest = r;
    }
    let mut parts: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    parts.extend(rest.split("::").map(str::to_string));
    let name = parts.pop().unwrap();
    format!("io.k8s.{}.{name}", parts.join("."))
}

fn inner_type(ty: &str) -> String {
    // Option<X>, Vec<X>, BTreeMap<String, X>: the last generic argument.
    let t = ty.trim().trim_end_matches(',');
    let start = t.find('<').map(|i| i + 1).unwrap_or(0);
    let end = t.rfind('>').unwrap_or(t.len());
    let inner = t[start..end].trim().trim_end_matches(',');
    let last = inner.rsplit(',').next().unwrap_or(inner).trim();
    if last.contains('<') {
        inner_type(last)
    } else {
        last.to_string()
    }
}

fn parse_module(src: &std::path::Path, module: &str, rows: &mut Vec<(String, Field)>) {
    let text = std::fs::read_to_string(src.join(module).join("mod.rs")).expect("k8s-pb module");
    let pkg = package(module);
    let mut current: Option<String> = None;
    let mut attr: Option<String> = None;
    // rustfmt splits long field types over lines: join them back.
    let mut joined: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let l = line.trim();
        if !pending.is_empty() || (l.starts_with("pub ") && l.contains(':')) {
            pending.push_str(l);
        } else {
            joined.push(l.to_string());
            continue;
        }
        if pending.ends_with(',') && pending.matches('<').count() == pending.matches('>').count() {
            joined.push(std::mem::take(&mut pending));
        }
    }
    for line in &joined {
        let l = line.as_str();
        if let Some(name) = l
            .strip_prefix("pub struct ")
            .and_then(|s| s.strip_suffix(" {"))
        {
            current = Some(format!("{pkg}.{name}"));
            continue;
        }
        if l == "}" {
            current = None;
            continue;
        }
        if let Some(a) = l.strip_prefix("#[prost(") {
            attr = Some(a.trim_end_matches(")]").to_string());
            continue;
        }
        let (Some(msg), Some(a)) = (&current, attr.take()) else {
            continue;
        };
        let Some(decl) = l.strip_prefix("pub ") else {
            continue;
        };
        let (name, ty) = decl.split_once(':').expect("field declaration");
        let name = name.trim().trim_start_matches("r#").to_string();
        let tag: u32 = a
            .split("tag = \"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .and_then(|t| t.parse().ok())
            .expect("tag");
        let (cardinality, kind) = if let Some(m) = a
            .strip_prefix("btree_map = \"")
            .or_else(|| a.strip_prefix("map = \""))
        {
            let v = m.split('"').next().unwrap().split(", ").nth(1).unwrap();
            let kind = match v {
                "message" => Kind::Message(resolve(module, &inner_type(ty))),
                other => scalar(other),
            };
            (Cardinality::Map, kind)
        } else {
            let first = a.split(',').next().unwrap().trim();
            let first = first.split(' ').next().unwrap();
            let kind = match first {
                "message" => Kind::Message(resolve(module, &inner_type(ty))),
                other => scalar(other),
            };
            let card = if a.contains("repeated") {
                Cardinality::Repeated
            } else {
                Cardinality::Single
            };
            (card, kind)
        };
        rows.push((
            msg.clone(),
            Field {
                tag,
                name,
                kind,
                cardinality,
            },
        ));
    }
}

fn scalar(s: &str) -> Kind {
    match s {
        "string" => Kind::String,
        "bool" => Kind::Bool,
        "int32" => Kind::Int32,
        "int64" => Kind::Int64,
        "double" => Kind::Double,
        "float" => Kind::Float,
        "bytes" => Kind::Bytes,
        other => panic!("unknown scalar {other}"),
    }
}

#[test]
fn fields_txt_matches_k8s_pb() {
    let src = k8s_pb_src();
    let mut rows = Vec::new();
    for m in MODULES {
        parse_module(&src, m, &mut rows);
    }
    let rendered = render(&rows);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/apiserver/codec/protobuf/fields.txt"
    );
    if std::env::var_os("BATON_REGENERATE").is_some() {
        std::fs::write(path, &rendered).unwrap();
    }
    assert_eq!(
        super::table::FIELDS_TXT,
        rendered,
        "fields.txt is stale; regenerate it"
    );
}
