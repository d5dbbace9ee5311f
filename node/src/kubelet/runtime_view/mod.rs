//! What the kubelet knows of the container runtime: one pod's sandboxes
//! and containers as its decisions need them ([`observed`]), read from CRI
//! ([`read`]) with the statuses that cannot have changed kept
//! ([`runtime_cache`]) and each exited container's termination message
//! ([`termination_message`]); the node-wide relist that notices changes
//! ([`relist`]); and the containers' log files ([`container_log`]).
//!
//! Nothing here builds anything for the runtime or reads the API: these
//! modules depend only on [`crate::cri`], the [`wakers`](super::wakers)
//! the relist wakes, and each other.

pub mod container_log;
pub mod observed;
pub mod read;
pub mod relist;
pub mod runtime_cache;
pub mod termination_message;
