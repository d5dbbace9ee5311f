//! The network safety rule on the host: pod and service addresses must never
//! leave through the host's uplink.
//!
//! Before any namespace exists, each cluster adds `unreachable` routes for
//! the pod and service ranges to the host's main table, with the harness's
//! route protocol and a metric unique to the cluster's slot. The host then
//! answers "no route to host" for those addresses instead of following its
//! default route, and two clusters (whose pod and service ranges are the
//! same) each own one route per range: a cluster removes only routes with
//! its own metric. The fabric subnet itself is covered by the connected
//! route of the host's fabric veth, which leads into the fabric.

use ipnet::Ipv4Net;

use crate::addressing::{self, Addressing};
use crate::exec::CommandError;
use crate::iproute::{self, RouteInfo};

/// The ranges that must stay inside the cluster namespaces.
#[must_use]
pub fn protected_ranges() -> [Ipv4Net; 2] {
    [addressing::pod_cidr(), addressing::service_cidr()]
}

/// Adds the cluster's `unreachable` routes (those already there are kept).
pub(crate) fn install(addressing: &Addressing) -> Result<(), CommandError> {
    let metric = addressing.safety_metric();
    let present = iproute::harness_host_routes()?;
    for range in protected_ranges() {
        if !has_route(&present, range, metric) {
            tracing::debug!(%range, metric, "host safety route");
            iproute::add_unreachable(range, metric)?;
        }
    }
    Ok(())
}

/// Whether all of the cluster's safety routes are present.
pub(crate) fn installed(addressing: &Addressing) -> Result<bool, CommandError> {
    let present = iproute::harness_host_routes()?;
    Ok(protected_ranges()
        .into_iter()
        .all(|range| has_route(&present, range, addressing.safety_metric())))
}

/// Removes every harness route carrying `metric` (only that cluster's).
pub(crate) fn remove_metric(metric: u32) -> Result<(), CommandError> {
    for route in iproute::harness_host_routes()? {
        if route.metric == Some(metric) && route.kind.as_deref() == Some("unreachable") {
            tracing::debug!(dst = %route.dst, metric, "remove host safety route");
            iproute::del_unreachable(&route.dst, metric)?;
        }
    }
    Ok(())
}

fn has_route(routes: &[RouteInfo], range: Ipv4Net, metric: u32) -> bool {
    let dst = range.to_string();
    routes.iter().any(|r| {
        r.dst == dst && r.metric == Some(metric) && r.kind.as_deref() == Some("unreachable")
    })
}
