//! Pod networking on the node: what makes a pod reachable once `baton-cni`
//! has set up its interface.
//!
//! The plugin is a short-lived process run by containerd; the dataplane
//! belongs to the long-lived baton-node. So the plugin only records each
//! endpoint ([`crate::cni`]), and this module keeps the dataplane equal to
//! those records: [`endpoints`] reconciles and watches them,
//! [`dataplane_sink`] registers each pod in the endpoints map and attaches
//! the pod program to its host veth, and [`sync_pod_endpoints`] runs the
//! two for the life of the process. [`routes`] keeps the native routes to
//! the other nodes' podCIDRs (and their addresses in the dataplane), from
//! the Node objects.

pub mod dataplane_sink;
pub mod endpoints;
pub mod routes;

use std::{collections::HashMap, path::PathBuf, time::Duration};

use tracing::{info, warn};

use self::{
    dataplane_sink::DataplaneSink,
    endpoints::{EndpointSync, RecordsWatch},
};
use crate::dataplane::{SharedDataplane, TcMode};

/// How soon a reconcile that left a record unregistered is repeated.
const ENDPOINT_RETRY: Duration = Duration::from_millis(200);
/// How often the records are reconciled without a change seen (a missed
/// event, or no inotify).
const ENDPOINT_RESYNC: Duration = Duration::from_secs(10);

/// Keeps the pod endpoints in the dataplane equal to the endpoint records
/// `baton-cni` writes under `data_dir` (registered, pod program attached
/// to the host veth): on every change of the records ([`RecordsWatch`]),
/// soon again after a failure, and every [`ENDPOINT_RESYNC`]. Runs until
/// the process ends.
pub fn sync_pod_endpoints(dataplane: SharedDataplane, data_dir: PathBuf) {
    let mut sync = EndpointSync::new(&data_dir);
    let mut attachments = HashMap::new();
    let watch = RecordsWatch::new(&data_dir)
        .inspect_err(|error| {
            warn!(dir = %data_dir.display(), %error, "not watching the pod endpoint records; reading them every {ENDPOINT_RETRY:?}");
        })
        .ok();
    info!(dir = %data_dir.display(), "pod endpoints follow baton-cni's records");
    loop {
        let mut retry = watch.is_none();
        let result = {
            let mut guard = dataplane
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut sink = DataplaneSink {
                dataplane: &mut guard,
                attachments: &mut attachments,
                mode: TcMode::Auto,
            };
            sync.reconcile(&mut sink)
        };
        match result {
            Ok(changes) => {
                if !changes.added.is_empty() || !changes.removed.is_empty() {
                    info!(added = ?changes.added, removed = ?changes.removed, "pod endpoints");
                }
                retry |= !changes.failed.is_empty();
                for (ip, error) in changes.failed {
                    warn!(%ip, %error, "pod endpoint not registered; retrying");
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                retry = true;
                warn!(dir = %data_dir.display(), %error, "reading pod endpoint records");
            }
        }
        let wait = if retry {
            ENDPOINT_RETRY
        } else {
            ENDPOINT_RESYNC
        };
        match &watch {
            Some(watch) => {
                if let Err(error) = watch.wait(wait) {
                    warn!(dir = %data_dir.display(), %error, "watching the pod endpoint records");
                    std::thread::sleep(ENDPOINT_RETRY);
                }
            }
            None => std::thread::sleep(wait),
        }
    }
}
