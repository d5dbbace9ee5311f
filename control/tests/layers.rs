//! The control plane's layers point down and no files import each other
//! in a circle (docs/architecture.md draws the layers).

use std::path::{Path, PathBuf};

use baton_e2e::layers::{assert_layers_point_down, assert_no_circles};

/// Bottom first. Modules in one entry are siblings and do not import each
/// other.
const LAYERS: &[&[&str]] = &[
    // Pure rules on the wire form: validation, defaulting, field errors.
    &["validation"],
    // API machinery: a served resource, its kind's strategy, Status errors,
    // table printer types.
    &["api"],
    // One module per built-in kind: catalog entry and strategy.
    &["kinds"],
    // The served kinds' schemas (OpenAPI, field management, tables).
    &["schema"],
    // etcd and the watch caches.
    &["storage"],
    // The generic registry: writes, admission, allocation, field management.
    &["registry"],
    // The HTTPS API server.
    &["apiserver"],
    // The client runtime shared by the scheduler and the controllers.
    &["client"],
    &["scheduler", "controllers"],
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
