//! Server-side printing: the `meta.k8s.io/v1` Table kube-apiserver answers
//! to `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, built from the
//! printer of the object's kind (its strategy's; `kinds/printers`).
//!
//! kube-apiserver always prints the wide columns (priority 1) and lets
//! kubectl drop them without `-o wide`; so does this module. Inside a watch
//! only the first event carries `columnDefinitions`: build later events with
//! [`TableOptions::no_headers`] (or [`rows`] alone).

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::api::resource::Resource;
use crate::api::table::{Doc, Printer};
use crate::schema;

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

/// The `columnDefinitions` of a printer's table (all priorities, as
/// kube-apiserver sends them).
pub fn column_definitions(printer: &Printer) -> Vec<Value> {
    printer
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
    printed_rows(resource.strategy.printer(), objects, options)
}

/// The rows `printer` prints for `objects`.
pub fn printed_rows(printer: &Printer, objects: &[&Value], options: &TableOptions) -> Vec<Value> {
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
    printed_table(resource.strategy.printer(), objects, options)
}

/// A whole Table as `printer` prints `objects` (a subresource's kind:
/// `autoscaling` `Scale`).
pub fn printed_table(printer: &Printer, objects: &[&Value], options: &TableOptions) -> Value {
    let columns = if options.no_headers {
        Value::Null
    } else {
        Value::Array(column_definitions(printer))
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": options.list_meta,
        "columnDefinitions": columns,
        "rows": printed_rows(printer, objects, options),
    })
}

#[cfg(test)]
mod tests;
