//! Two clusters on one host at once (two test binaries, or two tests)
//! do not interfere.

mod common;

use baton_e2e::{Cluster, ClusterSpec};
use common::{harness_routes, ping_from, ping_from_host, safety_routes_released, setup};

#[test]
fn two_clusters_coexist_and_dropping_one_leaves_the_other_intact() {
    setup();
    let a = Cluster::create(ClusterSpec::new(2)).expect("cluster a");
    let b = Cluster::create(ClusterSpec::new(2)).expect("cluster b");

    assert_ne!(a.name(), b.name());
    assert_ne!(a.addressing().fabric(), b.addressing().fabric());
    assert!(
        !a.addressing()
            .fabric()
            .contains(&b.addressing().fabric().network())
    );
    let (ma, mb) = (
        a.addressing().safety_metric(),
        b.addressing().safety_metric(),
    );
    assert_ne!(ma, mb);

    let routes = harness_routes();
    for (range, metric) in [
        ("10.244.0.0/16", ma),
        ("10.96.0.0/12", ma),
        ("10.244.0.0/16", mb),
        ("10.96.0.0/12", mb),
    ] {
        assert!(
            routes.contains(&(range.to_owned(), metric)),
            "{range} metric {metric}: {routes:?}"
        );
    }

    // Each fabric works and is its own: a's node 1 reaches a's node 2 but
    // not b's node 2 (a different subnet with no route between them).
    let (a1, a2, b2) = (&a.nodes()[0], &a.nodes()[1], &b.nodes()[1]);
    assert!(ping_from(a1.netns(), a2.address()).success());
    assert!(!ping_from(a1.netns(), b2.address()).success());
    assert!(ping_from(b.nodes()[0].netns(), b2.address()).success());

    let b_host_link = b.host_link().to_owned();
    let b_namespaces: Vec<_> = [b.fabric(), b.control().netns(), b.client().netns()]
        .into_iter()
        .chain(b.nodes().iter().map(|n| n.netns()))
        .cloned()
        .collect();
    drop(b);

    // b is gone, routes and all; a keeps its routes and keeps working.
    assert!(safety_routes_released(mb), "b's routes remain");
    let routes = harness_routes();
    for range in ["10.244.0.0/16", "10.96.0.0/12"] {
        assert!(
            routes.contains(&(range.to_owned(), ma)),
            "a lost {range}: {routes:?}"
        );
    }
    assert!(b_namespaces.iter().all(|ns| !ns.exists()));
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&b_host_link)
            .exists()
    );
    assert!(ping_from(a1.netns(), a2.address()).success());
    assert!(ping_from_host(a.control().address()).success());
}
