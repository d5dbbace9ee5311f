//! The node agent's layers point down and no files import each other in a
//! circle (docs/architecture.md draws the layers).

use std::path::{Path, PathBuf};

use baton_e2e::layers::{assert_layers_point_down, assert_no_circles};

/// Bottom first. Modules in one entry are siblings and do not import each
/// other.
const LAYERS: &[&[&str]] = &[
    // Raw system calls (the crate's only `unsafe`) and metrics rendering.
    &["sys", "metrics"],
    // The eBPF dataplane, the CNI plugin's library, the CRI client, the
    // node's credentials.
    &["dataplane", "cni", "cri", "credentials"],
    // The kubelet, the service proxy, pod networking.
    &["kubelet", "proxy", "podnet"],
    // The start-up of the proxy and pod networking on one dataplane.
    &["agent"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn layers_only_point_down() {
    assert_layers_point_down(&src(), LAYERS);
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    assert_no_circles(&src());
}
