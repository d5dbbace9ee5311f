//! The kinds' table printers, with the columns and cells of kube-apiserver's
//! (`pkg/printers/internalversion/printers.go`); each kind's module names
//! its printer, and kinds without one use [`cluster::DEFAULT`] (NAME,
//! CREATED AT).

pub mod batch;
pub mod cluster;
pub mod daemon_sets;
mod format;
pub mod network;
pub mod policy;
pub mod storage;
pub mod workloads;
