//! A kind's table printer: the columns and cells of the `meta.k8s.io/v1`
//! Table kube-apiserver answers for `kubectl get` (its
//! `pkg/printers/internalversion` printers). The kinds declare printers;
//! the API server's table codec builds Tables from them.

use jiff::Timestamp;
use serde_json::Value;

/// Where a column's description comes from: the documentation of an API
/// field (kube-apiserver uses the Go types' `SwaggerDoc()`; the same text is
/// in the schemas' descriptions), or a sentence of the printer's own.
#[derive(Debug, Clone, Copy)]
pub enum Doc {
    Field(&'static str, &'static str),
    Text(&'static str),
}

/// One column of a printer.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: &'static str,
    pub format: &'static str,
    pub priority: i32,
    pub doc: Doc,
}

pub const fn col(name: &'static str, ty: &'static str, doc: Doc) -> Column {
    Column {
        name,
        ty,
        format: "",
        priority: 0,
        doc,
    }
}

pub const fn wide(name: &'static str, ty: &'static str, doc: Doc) -> Column {
    Column {
        priority: 1,
        ..col(name, ty, doc)
    }
}

pub const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The NAME column every printer starts with.
pub const NAME: Column = Column {
    format: "name",
    ..col("Name", "string", Doc::Field(META, "name"))
};

/// The AGE column.
pub const AGE: Column = col("Age", "string", Doc::Field(META, "creationTimestamp"));

/// The cells of one object, and the row's conditions (a finished pod's
/// `Completed` condition).
pub struct Printed {
    pub cells: Vec<Value>,
    pub conditions: Option<Value>,
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
pub struct Printer {
    pub columns: &'static [Column],
    pub print: fn(&Value, Timestamp) -> Printed,
}
