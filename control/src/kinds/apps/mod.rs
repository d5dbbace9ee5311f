//! apps/v1: one module per kind.

pub mod deployment;
pub mod replica_set;
