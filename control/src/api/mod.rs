//! API machinery every other layer builds on: a served resource and the
//! [`resource::Strategy`] of its kind, selectable fields, table printers,
//! and the `Status` errors the API answers with. Only `validation` lies
//! below it.

pub mod fields;
pub mod resource;
pub mod status;
pub mod table;
