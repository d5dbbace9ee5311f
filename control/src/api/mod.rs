//! API machinery every other layer builds on: a served resource and the
//! [`strategy::Strategy`] of its kind, table printers, and the `Status`
//! errors the API answers with. Only `validation` lies below it.

pub mod resource;
pub mod status;
pub mod strategy;
pub mod table;
