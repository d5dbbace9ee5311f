//! A position in a kind's schema, stepped through like the JSON it describes.

use serde_json::Value;

use super::Schemas;

/// A schema at one place of an object: the schema written at the use site
/// (a property, with the field's description and patch extensions) and the
/// type it refers to (through `$ref` or a single `allOf`).
#[derive(Clone, Copy)]
pub struct Node<'a> {
    schemas: &'a Schemas,
    site: &'a Value,
    ty: &'a Value,
}

/// What a schema describes, as far as walking JSON is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An object with known fields (a Go struct).
    Struct,
    /// An array.
    List,
    /// An object with arbitrary keys and one value schema (a Go map).
    Map,
    /// Any JSON kept as is: RawExtension, FieldsV1, Patch, or a schema with
    /// `x-kubernetes-preserve-unknown-fields`.
    Opaque,
    /// A string, number, boolean, or an int-or-string / quantity.
    Scalar,
}

/// How strategic merge patch treats a field, from
/// `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key` — what
/// apimachinery's `strategicpatch.PatchMeta` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatchStrategy<'a> {
    /// `merge`: a list is merged with the patch's list instead of being
    /// replaced — by `merge_key` for lists of objects, as a union for lists
    /// of scalars.
    pub merge: bool,
    pub merge_key: Option<&'a str>,
    /// `retainKeys`: fields the patch leaves out are cleared (a union type
    /// such as a Deployment's strategy or a volume's source).
    pub retain_keys: bool,
}

/// How server-side apply owns a list, map or struct, from
/// `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and
/// `x-kubernetes-map-type` (structured-merge-diff's element relationship).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyStrategy<'a> {
    /// Owned and replaced as one value (`atomic`; also a list without
    /// `x-kubernetes-list-type`, and every scalar).
    Atomic,
    /// A list of unique scalars, each item owned on its own.
    Set,
    /// An associative list: items are identified by these fields.
    Map(Vec<&'a str>),
    /// A struct or map whose fields are owned one by one (the default).
    Granular,
}

/// Both merge strategies of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldStrategy<'a> {
    pub patch: PatchStrategy<'a>,
    pub apply: ApplyStrategy<'a>,
}

/// Follows `$ref`s and single-element `allOf`s to the schema of the type.
fn resolve<'a>(schemas: &'a Schemas, mut v: &'a Value) -> &'a Value {
    // Bounded: definitions never alias themselves directly.
    for _ in 0..8 {
        if let Some(r) = v.get("$ref").and_then(Value::as_str) {
            match schemas.resolve_ref(r) {
                Some(target) => v = target,
                None => return v,
            }
        } else if let Some([only]) = v.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            v = only;
        } else {
            return v;
        }
    }
    v
}

impl<'a> Node<'a> {
    pub(super) fn new(schemas: &'a Schemas, site: &'a Value) -> Self {
        Node {
            schemas,
            site,
            ty: resolve(schemas, site),
        }
    }

    /// The schema written at the use site.
    pub fn site(&self) -> &'a Value {
        self.site
    }

    /// The schema of the type (after `$ref`s).
    pub fn type_schema(&self) -> &'a Value {
        self.ty
    }

    /// The name of the referenced schema, if the site refers to one.
    pub fn schema_name(&self) -> Option<&'a str> {
        let mut v = self.site;
        loop {
            if let Some(r) = v.get("$ref").and_then(Value::as_str) {
                return r.strip_prefix(super::REF_PREFIX);
            }
            match v.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                Some([only]) => v = only,
                _ => return None,
            }
        }
    }

    pub fn shape(&self) -> Shape {
        let ty = self.ty;
        if self.extension("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            return Shape::Opaque;
        }
        if ty.get("properties").is_some() {
            return Shape::Struct;
        }
        match ty.get("type").and_then(Value::as_str) {
            Some("array") => Shape::List,
            Some("object") => match ty.get("additionalProperties") {
                Some(Value::Object(_)) => Shape::Map,
                _ => Shape::Opaque,
            },
            _ => Shape::Scalar,
        }
    }

    /// The schema of field `name` of a struct.
    pub fn field(&self, name: &str) -> Option<Node<'a>> {
        let prop = self.ty.get("properties")?.get(name)?;
        Some(Node::new(self.schemas, prop))
    }

    /// The names of a struct's fields.
    pub fn field_names(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.ty
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }

    /// The schema of a list's items.
    pub fn items(&self) -> Option<Node<'a>> {
        Some(Node::new(self.schemas, self.ty.get("items")?))
    }

    /// The schema of a map's values.
    pub fn values(&self) -> Option<Node<'a>> {
        match self.ty.get("additionalProperties") {
            Some(v @ Value::Object(_)) => Some(Node::new(self.schemas, v)),
            _ => None,
        }
    }

    /// One step of a field path: a field of a struct, a key of a map, or —
    /// for a list — the field of its items.
    pub fn step(&self, segment: &str) -> Option<Node<'a>> {
        match self.shape() {
            Shape::Struct => self.field(segment),
            Shape::Map => self.values(),
            Shape::List => self.items()?.step(segment),
            Shape::Opaque | Shape::Scalar => None,
        }
    }

    /// Follows a path of field names (see [`Node::step`]).
    pub fn path(&self, path: &[&str]) -> Option<Node<'a>> {
        path.iter()
            .try_fold(*self, |node, segment| node.step(segment))
    }

    /// An `x-kubernetes-*` (or any) keyword, from the use site first, then
    /// the type (where `x-kubernetes-map-type` of a struct lives).
    pub fn extension(&self, name: &str) -> Option<&'a Value> {
        self.site.get(name).or_else(|| self.ty.get(name))
    }

    /// The field's description (the use site's, else the type's).
    pub fn description(&self) -> Option<&'a str> {
        self.extension("description").and_then(Value::as_str)
    }

    pub fn patch_strategy(&self) -> PatchStrategy<'a> {
        let strategies = self
            .site
            .get("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .unwrap_or("");
        PatchStrategy {
            merge: strategies.split(',').any(|s| s == "merge"),
            merge_key: self
                .site
                .get("x-kubernetes-patch-merge-key")
                .and_then(Value::as_str),
            retain_keys: strategies.split(',').any(|s| s == "retainKeys"),
        }
    }

    pub fn apply_strategy(&self) -> ApplyStrategy<'a> {
        match self.shape() {
            Shape::List => match self
                .extension("x-kubernetes-list-type")
                .and_then(Value::as_str)
            {
                Some("set") => ApplyStrategy::Set,
                Some("map") => ApplyStrategy::Map(
                    self.extension("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default(),
                ),
                _ => ApplyStrategy::Atomic,
            },
            Shape::Struct | Shape::Map => {
                // A field's own marker overrides its type's (a PV's
                // `claimRef` is granular though ObjectReference is atomic).
                match self
                    .extension("x-kubernetes-map-type")
                    .and_then(Value::as_str)
                {
                    Some("atomic") => ApplyStrategy::Atomic,
                    _ => ApplyStrategy::Granular,
                }
            }
            Shape::Opaque | Shape::Scalar => ApplyStrategy::Atomic,
        }
    }

    pub fn strategy(&self) -> FieldStrategy<'a> {
        FieldStrategy {
            patch: self.patch_strategy(),
            apply: self.apply_strategy(),
        }
    }
}
