//! apps/v1: one module per kind.

pub mod controller_revision;
pub mod daemon_set;
pub mod deployment;
pub mod replica_set;
