//! The control plane the harness starts for `cargo xtask up` and for
//! end-to-end tests: etcd and the API server in the control namespace,
//! reached by the real kubectl from the host through the fabric.

mod common;

use std::time::Duration;

use baton_e2e::control_plane::{self, ControlPlane, Ensured};
use baton_e2e::{Binaries, Cluster, ClusterSpec};

#[test]
fn kubectl_on_the_host_reaches_the_api_server_in_the_control_namespace() {
    common::setup();
    let binaries = Binaries::beside_current_exe();
    let cluster = Cluster::create(ClusterSpec::new(1)).expect("cluster");
    let state = cluster.run_dir().join("control-plane");
    let plane = ControlPlane::layout(&cluster, &state, state.join("kubeconfig"));

    let etcd = control_plane::ensure_etcd(&cluster, &binaries, &plane).expect("etcd");
    assert!(matches!(etcd, Ensured::Started { .. }), "{etcd}");
    let api = control_plane::ensure_apiserver(&cluster, &binaries, &plane).expect("apiserver");
    assert!(matches!(api, Ensured::Started { .. }), "{api}");

    // The kubeconfig names the API server by its fabric address, and the
    // real kubectl gets through from the host namespace.
    let kubeconfig = std::fs::read_to_string(&plane.kubeconfig).expect("kubeconfig written");
    assert!(kubeconfig.contains(&plane.server), "{kubeconfig}");
    let out = baton_e2e::exec::run(
        plane.kubectl().args(["get", "namespaces", "-o", "name"]),
        Duration::from_secs(30),
    )
    .expect("kubectl")
    .check()
    .expect("kubectl get namespaces");
    assert!(out.stdout.contains("namespace/default"), "{}", out.stdout);

    // Ensuring again keeps what runs.
    assert_eq!(
        control_plane::ensure_etcd(&cluster, &binaries, &plane).expect("etcd"),
        Ensured::AlreadyRunning {
            pid: cluster.process("etcd").unwrap().pid
        }
    );
    assert_eq!(
        control_plane::ensure_apiserver(&cluster, &binaries, &plane).expect("apiserver"),
        Ensured::AlreadyRunning {
            pid: cluster.process("apiserver").unwrap().pid
        }
    );
}
