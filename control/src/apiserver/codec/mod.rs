//! How objects travel: content negotiation, patches (JSON, merge,
//! strategic merge), the Kubernetes protobuf encoding and server-side
//! Tables.

pub mod content;
pub mod patch;
pub mod protobuf;
pub mod table;
