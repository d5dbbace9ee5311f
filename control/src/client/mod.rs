//! The client runtime the scheduler and every controller share: an API
//! client from a kubeconfig, shared informers (kube-runtime watcher +
//! reflector store with fan-out to several consumers) started through one
//! [`Start`] trait, leader election on a Lease, each component's event
//! recorder (the shared client-go recorder of `baton-apimachinery`), and the
//! taint, toleration and node affinity rules both read.

pub mod bootstrap_token;
pub mod informer;
pub mod kubeconfig;
pub mod leader;
pub mod node_affinity;
pub mod per_namespace;
pub mod recorder;
pub mod taints;
pub mod time;

pub use informer::{Change, Informer, Start};

/// Whether an API call failed with this HTTP status code.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}
