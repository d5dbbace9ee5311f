//! Schema knowledge of every served kind: the JSON schemas generated from the
//! Rust API types (k8s-openapi's `schemars` support) with the Kubernetes
//! extensions restored, and the questions the API server asks of them while
//! walking an object — how a field merges under strategic merge patch and
//! server-side apply, and which fields of a request body are unknown.
//!
//! ```text
//! let s = schema::schemas();
//! let containers = s.kind("apps", "v1", "Deployment")?
//!     .path(&["spec", "template", "spec", "containers"])?;
//! containers.strategy().patch.merge_key == Some("name")
//! schema::unknown_fields("apps", "v1", "Deployment", &body) == ["spec.foo"]
//! ```

mod extensions;
pub mod generate;
mod node;
mod unknown;

use std::sync::LazyLock;

use serde_json::{Map, Value};

pub use generate::{KindSchema, REF_PREFIX};
pub use node::{ApplyStrategy, FieldStrategy, Node, PatchStrategy, Shape};
pub use unknown::{strict_decoding_message, unknown_fields};

/// Every schema, keyed by kube-apiserver's schema names, and the kinds served.
pub struct Schemas {
    definitions: Map<String, Value>,
    kinds: Vec<KindSchema>,
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| {
    let generated = generate::generate();
    if !generated.missing.is_empty() {
        tracing::warn!(missing = ?generated.missing, "extension markers name unknown schema fields");
    }
    Schemas {
        definitions: generated.definitions,
        kinds: generated.kinds,
    }
});

/// The schemas, generated on first use and shared for the process' life.
pub fn schemas() -> &'static Schemas {
    &SCHEMAS
}

impl Schemas {
    /// `components.schemas` of every document: name → schema.
    pub fn definitions(&self) -> &Map<String, Value> {
        &self.definitions
    }

    /// Every kind with a group-version-kind (resources, their lists, the
    /// subresource kinds Scale, Binding and Eviction, and Status).
    pub fn kinds(&self) -> &[KindSchema] {
        &self.kinds
    }

    /// The schema name of a kind (`io.k8s.api.apps.v1.Deployment`).
    pub fn schema_name(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
            .map(|k| k.schema.as_str())
    }

    /// The root of a kind's schema, to walk an object of that kind.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<Node<'_>> {
        self.named(self.schema_name(group, version, kind)?)
    }

    /// A schema by name.
    pub fn named(&self, name: &str) -> Option<Node<'_>> {
        self.definitions.get(name).map(|v| Node::new(self, v))
    }

    /// Resolves a `$ref` (`#/components/schemas/<name>`).
    pub(crate) fn resolve_ref(&self, reference: &str) -> Option<&Value> {
        self.definitions.get(reference.strip_prefix(REF_PREFIX)?)
    }
}

/// How the field at `path` of a kind merges, for strategic merge patch and
/// server-side apply. `path` holds field names only: lists are stepped
/// through (`["spec", "template", "spec", "containers", "ports"]`), and a
/// segment under a map names a key. `None` when the kind or a field is
/// unknown.
pub fn merge_strategy(
    group: &str,
    version: &str,
    kind: &str,
    path: &[&str],
) -> Option<FieldStrategy<'static>> {
    Some(schemas().kind(group, version, kind)?.path(path)?.strategy())
}

#[cfg(test)]
mod tests;
