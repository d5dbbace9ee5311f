//! What can go wrong decoding or encoding a Kubernetes protobuf payload.

/// A payload that could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtobufError {
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    Magic,
    #[error("unexpected end of protobuf data")]
    Truncated,
    #[error("varint overflows 64 bits")]
    Varint,
    #[error("unsupported wire type {0}")]
    WireType(u8),
    #[error("no protobuf message {0} is served")]
    UnknownMessage(String),
    #[error("object has no apiVersion and kind to encode as protobuf")]
    MissingKind,
    #[error("field {field} of {message}: {problem}")]
    Field {
        message: String,
        field: String,
        problem: String,
    },
}
