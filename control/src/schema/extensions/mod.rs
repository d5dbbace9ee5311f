//! The Kubernetes extensions that the generated schemas lack, written as data.
//!
//! k8s-openapi's schemas carry names, types and descriptions but not the
//! markers kube-openapi turns into `x-kubernetes-*` extensions: how strategic
//! merge patch merges a list (`+patchStrategy`, `+patchMergeKey`), how
//! server-side apply owns it (`+listType`, `+listMapKey`, `+mapType`,
//! `+structType`). kubectl computes client-side apply patches from the first,
//! server-side apply needs the second, so they are restored here from the
//! markers in the upstream `types.go` files, one table per marker.

use serde_json::{Map, Value, json};

macro_rules! core {
    ($t:literal) => {
        concat!("io.k8s.api.core.v1.", $t)
    };
}
macro_rules! meta {
    ($t:literal) => {
        concat!("io.k8s.apimachinery.pkg.apis.meta.v1.", $t)
    };
}
macro_rules! apps {
    ($t:literal) => {
        concat!("io.k8s.api.apps.v1.", $t)
    };
}
macro_rules! batch {
    ($t:literal) => {
        concat!("io.k8s.api.batch.v1.", $t)
    };
}
macro_rules! discovery {
    ($t:literal) => {
        concat!("io.k8s.api.discovery.v1.", $t)
    };
}
macro_rules! rbac {
    ($t:literal) => {
        concat!("io.k8s.api.rbac.v1.", $t)
    };
}

mod core;
mod others;

/// `+patchStrategy` (and `+patchMergeKey`) of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Patch {
    /// `merge` with a merge key: list items are matched by that key.
    Merge(&'static str),
    /// `merge` on a list of scalars: the lists are unioned.
    MergeScalars,
    /// `merge,retainKeys` with a merge key.
    MergeRetainKeys(&'static str),
    /// `retainKeys` on a struct: fields absent from the patch are cleared.
    RetainKeys,
}

/// `+listType` (and `+listMapKey`) of a list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum List {
    Atomic,
    Set,
    Map(&'static [&'static str]),
}

/// `+mapType` of a map field or `+structType` of a struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MapType {
    Atomic,
    Granular,
}

impl MapType {
    fn as_str(self) -> &'static str {
        match self {
            MapType::Atomic => "atomic",
            MapType::Granular => "granular",
        }
    }
}

fn patch_tables() -> impl Iterator<Item = &'static (&'static str, &'static str, Patch)> {
    core::PATCH.iter().chain(others::PATCH)
}

fn list_tables() -> impl Iterator<Item = &'static (&'static str, &'static str, List)> {
    core::LIST.iter().chain(others::LIST)
}

fn type_map_tables() -> impl Iterator<Item = &'static (&'static str, MapType)> {
    core::TYPE_MAP.iter().chain(others::TYPE_MAP)
}

/// Writes every extension into the schemas it belongs to. A marker naming a
/// type or field the schemas do not have is reported, so a table that drifts
/// from the API types fails the tests instead of silently doing nothing.
pub(super) fn apply(definitions: &mut Map<String, Value>) -> Vec<String> {
    let mut missing = Vec::new();
    for &(schema, field, patch) in patch_tables() {
        let Some(prop) = property(definitions, schema, field) else {
            missing.push(format!("{schema}.{field}"));
            continue;
        };
        let (strategy, key) = match patch {
            Patch::Merge(key) => ("merge", Some(key)),
            Patch::MergeScalars => ("merge", None),
            Patch::MergeRetainKeys(key) => ("merge,retainKeys", Some(key)),
            Patch::RetainKeys => ("retainKeys", None),
        };
        prop.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
        if let Some(key) = key {
            prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
    }
    for &(schema, field, list) in list_tables() {
        let Some(prop) = property(definitions, schema, field) else {
            missing.push(format!("{schema}.{field}"));
            continue;
        };
        match list {
            List::Atomic => {
                prop.insert("x-kubernetes-list-type".into(), json!("atomic"));
            }
            List::Set => {
                prop.insert("x-kubernetes-list-type".into(), json!("set"));
            }
            List::Map(keys) => {
                prop.insert("x-kubernetes-list-type".into(), json!("map"));
                prop.insert("x-kubernetes-list-map-keys".into(), json!(keys));
            }
        }
    }
    for &(schema, field, map) in core::FIELD_MAP {
        let Some(prop) = property(definitions, schema, field) else {
            missing.push(format!("{schema}.{field}"));
            continue;
        };
        prop.insert("x-kubernetes-map-type".into(), json!(map.as_str()));
    }
    for &(schema, map) in type_map_tables() {
        match definitions.get_mut(schema) {
            Some(Value::Object(obj)) => {
                obj.insert("x-kubernetes-map-type".into(), json!(map.as_str()));
            }
            _ => missing.push(schema.to_string()),
        }
    }
    missing
}

fn property<'a>(
    definitions: &'a mut Map<String, Value>,
    schema: &str,
    field: &str,
) -> Option<&'a mut Map<String, Value>> {
    definitions
        .get_mut(schema)?
        .get_mut("properties")?
        .get_mut(field)?
        .as_object_mut()
}
