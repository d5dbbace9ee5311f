//! The protobuf field table of the served Kubernetes types: for each
//! message, its fields' tags, names, wire types and message types — the
//! facts k8s-pb's prost attributes hold, kept in `fields.txt` (one line
//! per field) so objects can be decoded generically into JSON. The table
//! is checked against k8s-pb's own sources by `fields_txt_matches_k8s_pb`.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Scalar or message kind of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    String,
    Bool,
    Int32,
    Int64,
    Double,
    Float,
    Bytes,
    Message(String),
}

/// How many values a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    Single,
    Repeated,
    /// `map<string, value>`: entries of key (1) and value (2).
    Map,
}

/// One field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub tag: u32,
    /// prost's snake_case name of the proto field.
    pub name: String,
    pub kind: Kind,
    pub cardinality: Cardinality,
}

/// Fields of every message, by full proto name.
pub struct Table {
    messages: HashMap<String, Vec<Field>>,
}

pub const FIELDS_TXT: &str = include_str!("fields.txt");

fn parse_kind(s: &str) -> Option<Kind> {
    Some(match s {
        "string" => Kind::String,
        "bool" => Kind::Bool,
        "int32" => Kind::Int32,
        "int64" => Kind::Int64,
        "double" => Kind::Double,
        "float" => Kind::Float,
        "bytes" => Kind::Bytes,
        m => Kind::Message(m.strip_prefix("message:")?.to_string()),
    })
}

impl Table {
    pub fn parse(text: &str) -> Table {
        let mut messages: HashMap<String, Vec<Field>> = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [msg, tag, name, card, kind] = parts[..] else {
                continue;
            };
            let (Ok(tag), Some(kind)) = (tag.parse(), parse_kind(kind)) else {
                continue;
            };
            let cardinality = match card {
                "repeated" => Cardinality::Repeated,
                "map" => Cardinality::Map,
                _ => Cardinality::Single,
            };
            messages.entry(msg.to_string()).or_default().push(Field {
                tag,
                name: name.to_string(),
                kind,
                cardinality,
            });
        }
        Table { messages }
    }

    pub fn field(&self, message: &str, tag: u32) -> Option<&Field> {
        self.messages.get(message)?.iter().find(|f| f.tag == tag)
    }

    /// Every field of a message, in table order.
    pub fn fields(&self, message: &str) -> Option<&[Field]> {
        self.messages.get(message).map(Vec::as_slice)
    }

    /// Every message's name.
    pub fn message_names(&self) -> impl Iterator<Item = &String> {
        self.messages.keys()
    }

    pub fn has(&self, message: &str) -> bool {
        self.messages.contains_key(message)
    }
}

/// The table, parsed once.
pub static TABLE: LazyLock<Table> = LazyLock::new(|| Table::parse(FIELDS_TXT));

/// Renders a table in `fields.txt`'s format (used to regenerate it).
#[cfg(test)]
pub fn render(rows: &[(String, Field)]) -> String {
    let mut out = String::from(
        "# Protobuf fields of the served Kubernetes types, derived from k8s-pb's\n\
         # prost attributes: message tag name single|repeated|map kind.\n\
         # Regenerate: BATON_REGENERATE=1 cargo test -p baton-control fields_txt_matches_k8s_pb\n",
    );
    for (msg, f) in rows {
        let card = match f.cardinality {
            Cardinality::Single => "single",
            Cardinality::Repeated => "repeated",
            Cardinality::Map => "map",
        };
        let kind = match &f.kind {
            Kind::String => "string".to_string(),
            Kind::Bool => "bool".to_string(),
            Kind::Int32 => "int32".to_string(),
            Kind::Int64 => "int64".to_string(),
            Kind::Double => "double".to_string(),
            Kind::Float => "float".to_string(),
            Kind::Bytes => "bytes".to_string(),
            Kind::Message(m) => format!("message:{m}"),
        };
        out.push_str(&format!("{msg} {} {} {card} {kind}\n", f.tag, f.name));
    }
    out
}
