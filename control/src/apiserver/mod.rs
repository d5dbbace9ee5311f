//! The Kubernetes API server: HTTPS front end over etcd.
pub mod resources;
