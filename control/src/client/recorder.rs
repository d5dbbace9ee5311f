//! The event recorder of the scheduler and the controllers: the shared
//! client-go recorder ([`baton_apimachinery::events`]) reporting as one
//! component (`default-scheduler`, `replicaset-controller`, …) on this
//! machine's hostname, writing up to [`WRITERS`] events at once.

use baton_apimachinery::events::Reporter;
pub use baton_apimachinery::events::{EventType, Recorder};

/// Events written at once (the API server sees at most this many event
/// writes in flight from one component).
pub const WRITERS: usize = 4;

/// Starts the recorder of `component`.
pub fn for_component(client: kube::Client, component: &str) -> Recorder {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Recorder::new(client, reporter(component, &host), WRITERS)
}

/// `component` on `host`: reported as `<component>-<host>`, or the
/// component alone when the host is unknown.
fn reporter(component: &str, host: &str) -> Reporter {
    Reporter {
        component: component.into(),
        host: host.into(),
        instance: if host.is_empty() {
            component.into()
        } else {
            format!("{component}-{host}")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_is_the_component_on_its_host() {
        let r = reporter("node-controller", "cp-1");
        assert_eq!(r.component, "node-controller");
        assert_eq!(r.host, "cp-1");
        assert_eq!(r.instance, "node-controller-cp-1");
        assert_eq!(reporter("node-controller", "").instance, "node-controller");
    }
}
