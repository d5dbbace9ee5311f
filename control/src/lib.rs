//! baton's control plane: the Kubernetes API server on etcd, the scheduler and
//! the controllers. Every component here talks to the others only through the
//! API server's public HTTPS API.
#![forbid(unsafe_code)]

pub mod api;
pub mod apiserver;
pub mod client;
pub mod controllers;
pub mod kinds;
pub mod registry;
pub mod scheduler;
pub mod schema;
pub mod storage;
pub mod validation;
