//! What the scheduler and every controller share: an API client from a
//! kubeconfig, shared informers (kube-runtime watcher + reflector store with
//! fan-out to several consumers), leader election on a Lease, and each
//! component's event recorder (the shared client-go recorder of
//! `baton-apimachinery`).

pub mod client;
pub mod informer;
pub mod leader;
pub mod per_namespace;
pub mod recorder;
pub mod time;

pub use informer::{Change, Informer};

/// Whether an API call failed with this HTTP status code.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}
