//! Server-side printing: the `meta.k8s.io/v1` Table kube-apiserver answers
//! to `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, with the
//! columns and cells of its printers (`pkg/printers/internalversion/printers.go`)
//! and, for kinds without a printer (roles, cluster roles), its default
//! table (`k8s.io/apiserver/pkg/registry/rest/table.go`: NAME, CREATED AT).
//!
//! kube-apiserver always prints the wide columns (priority 1) and lets
//! kubectl drop them without `-o wide`; so does this module. Inside a watch
//! only the first event carries `columnDefinitions`: build later events with
//! [`TableOptions::no_headers`] (or [`rows`] alone).

mod cluster;
mod format;
mod network;
mod storage;
mod workloads;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::apiserver::resources::Resource;
use crate::apiserver::schema;

/// `includeObject`: what each row carries in its `object`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// Nothing (`"object": null`).
    None,
    /// The object's metadata as a `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; `None` for a value
    /// kube-apiserver rejects with 400 (`unrecognized includeObject value`).
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value.unwrap_or("") {
            "" | "Metadata" => Some(IncludeObject::Metadata),
            "None" => Some(IncludeObject::None),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// How to build a table.
#[derive(Debug, Clone)]
pub struct TableOptions {
    pub include_object: IncludeObject,
    /// Leave out `columnDefinitions` (every watch event after the first).
    pub no_headers: bool,
    /// The time ages are measured against.
    pub now: Timestamp,
    /// `metadata` of the table: the list's resourceVersion, continue and
    /// remainingItemCount, or the single object's resourceVersion.
    pub list_meta: Map<String, Value>,
}

impl TableOptions {
    pub fn new(now: Timestamp) -> Self {
        TableOptions {
            include_object: IncludeObject::default(),
            no_headers: false,
            now,
            list_meta: Map::new(),
        }
    }
}

/// Where a column's description comes from: the documentation of an API
/// field (kube-apiserver uses the Go types' `SwaggerDoc()`; the same text is
/// in the schemas' descriptions), or a sentence of the printer's own.
#[derive(Debug, Clone, Copy)]
enum Doc {
    Field(&'static str, &'static str),
    Text(&'static str),
}

/// One column of a printer.
#[derive(Debug, Clone, Copy)]
struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    priority: i32,
    doc: Doc,
}

const fn col(name: &'static str, ty: &'static str, doc: Doc) -> Column {
    Column {
        name,
        ty,
        format: "",
        priority: 0,
        doc,
    }
}

const fn wide(name: &'static str, ty: &'static str, doc: Doc) -> Column {
    Column {
        priority: 1,
        ..col(name, ty, doc)
    }
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The NAME column every printer starts with.
const NAME: Column = Column {
    format: "name",
    ..col("Name", "string", Doc::Field(META, "name"))
};

/// The AGE column.
const AGE: Column = col("Age", "string", Doc::Field(META, "creationTimestamp"));

/// The cells of one object, and the row's conditions (a finished pod's
/// `Completed` condition).
struct Printed {
    cells: Vec<Value>,
    conditions: Option<Value>,
}

impl From<Vec<Value>> for Printed {
    fn from(cells: Vec<Value>) -> Self {
        Printed {
            cells,
            conditions: None,
        }
    }
}

/// A kind's printer: its columns and how to fill them.
struct Printer {
    columns: &'static [Column],
    print: fn(&Value, Timestamp) -> Printed,
}

fn printer(group: &str, kind: &str) -> Printer {
    match (group, kind) {
        ("", "Pod") => workloads::POD,
        ("apps", "Deployment") => workloads::DEPLOYMENT,
        ("apps", "ReplicaSet") => workloads::REPLICA_SET,
        ("autoscaling", "Scale") => workloads::SCALE,
        ("", "Service") => network::SERVICE,
        ("", "Endpoints") => network::ENDPOINTS,
        ("discovery.k8s.io", "EndpointSlice") => network::ENDPOINT_SLICE,
        ("", "Node") => cluster::NODE,
        ("", "Namespace") => cluster::NAMESPACE,
        ("", "Event") => cluster::EVENT,
        ("events.k8s.io", "Event") => cluster::EVENTS_V1_EVENT,
        ("", "ConfigMap") => storage::CONFIG_MAP,
        ("", "Secret") => storage::SECRET,
        ("", "ServiceAccount") => storage::SERVICE_ACCOUNT,
        ("", "PersistentVolume") => storage::PERSISTENT_VOLUME,
        ("", "PersistentVolumeClaim") => storage::PERSISTENT_VOLUME_CLAIM,
        ("coordination.k8s.io", "Lease") => cluster::LEASE,
        ("scheduling.k8s.io", "PriorityClass") => cluster::PRIORITY_CLASS,
        ("rbac.authorization.k8s.io", "RoleBinding") => cluster::ROLE_BINDING,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => cluster::CLUSTER_ROLE_BINDING,
        _ => cluster::DEFAULT,
    }
}

fn describe(doc: Doc) -> String {
    match doc {
        Doc::Text(text) => text.to_string(),
        Doc::Field(schema_name, field) => schema::schemas()
            .named(schema_name)
            .and_then(|n| n.field(field))
            .and_then(|f| f.description())
            .unwrap_or("")
            .to_string(),
    }
}

/// The `columnDefinitions` of a kind's table (all priorities, as
/// kube-apiserver sends them).
pub fn column_definitions(group: &str, kind: &str) -> Vec<Value> {
    printer(group, kind)
        .columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.ty,
                "format": c.format,
                "description": describe(c.doc),
                "priority": c.priority,
            })
        })
        .collect()
}

/// The `rows` of a table of these objects (of `resource`'s kind).
pub fn rows(resource: &Resource, objects: &[&Value], options: &TableOptions) -> Vec<Value> {
    rows_of_kind(resource.group, resource.kind, objects, options)
}

/// [`rows`] for a kind given by name (a subresource's: `autoscaling`, `Scale`).
pub fn rows_of_kind(
    group: &str,
    kind: &str,
    objects: &[&Value],
    options: &TableOptions,
) -> Vec<Value> {
    let printer = printer(group, kind);
    objects
        .iter()
        .map(|obj| {
            let printed = (printer.print)(obj, options.now);
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(printed.cells));
            if let Some(conditions) = printed.conditions {
                row.insert("conditions".into(), conditions);
            }
            row.insert("object".into(), row_object(obj, options.include_object));
            Value::Object(row)
        })
        .collect()
}

/// A row's `object` for `includeObject` (`asTable` in kube-apiserver's
/// `endpoints/handlers/response.go`).
fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

/// A whole `meta.k8s.io/v1` Table of `objects` of `resource`'s kind.
pub fn to_table(resource: &Resource, objects: &[&Value], options: &TableOptions) -> Value {
    to_table_of_kind(resource.group, resource.kind, objects, options)
}

/// [`to_table`] for a kind given by name (a subresource's: `autoscaling`, `Scale`).
pub fn to_table_of_kind(
    group: &str,
    kind: &str,
    objects: &[&Value],
    options: &TableOptions,
) -> Value {
    let columns = if options.no_headers {
        Value::Null
    } else {
        Value::Array(column_definitions(group, kind))
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": options.list_meta,
        "columnDefinitions": columns,
        "rows": rows_of_kind(group, kind, objects, options),
    })
}

#[cfg(test)]
mod tests;
