//! What `baton-node run` and `baton-node proxy` start on the node's loaded
//! dataplane, beside the kubelet: the pod endpoints of `baton-cni`'s
//! records ([`podnet::sync_pod_endpoints`], on a thread of its own), the
//! routes to the other nodes' podCIDRs and their addresses
//! ([`podnet::routes`]), and the service proxy ([`proxy::run`]).

use std::{future::Future, io, path::PathBuf, sync::Arc};

use kube::Client;

use crate::{
    dataplane::SharedDataplane,
    podnet,
    proxy::{self, ProxyError},
};

/// Starts the pod endpoint sync for `cni_data_dir` (baton-cni's data
/// directory, if this node's pods are networked by it) and returns the
/// proxy to run; the routes start with it when pods are routed or
/// masqueraded.
pub fn start(
    dataplane: SharedDataplane,
    client: Client,
    config: proxy::Config,
    cni_data_dir: Option<PathBuf>,
) -> io::Result<impl Future<Output = Result<(), ProxyError>> + use<>> {
    if let Some(dir) = cni_data_dir {
        let dataplane = Arc::clone(&dataplane);
        std::thread::Builder::new()
            .name("pod-endpoints".into())
            .spawn(move || podnet::sync_pod_endpoints(dataplane, dir))?;
    }
    let routes = (config.node.route_pods || config.node.masquerade_outside.is_some()).then(|| {
        podnet::routes::run(
            client.clone(),
            config.node_name.clone(),
            Arc::clone(&dataplane),
            config.node.route_pods,
        )
    });
    Ok(async move {
        if let Some(routes) = routes {
            tokio::spawn(routes);
        }
        proxy::run(client, dataplane, config).await
    })
}
