//! The network safety rule: while a cluster exists, the host never routes a
//! pod or service address out of its uplink.

mod common;

use std::net::Ipv4Addr;

use baton_e2e::{Cluster, ClusterSpec};
use common::{harness_routes, host_route_get, setup};

/// Addresses across the pod and service ranges, including their edges.
fn cluster_addresses() -> Vec<Ipv4Addr> {
    [
        "10.244.0.0",
        "10.244.0.1",
        "10.244.1.5",
        "10.244.3.200",
        "10.244.255.255",
        "10.96.0.0",
        "10.96.0.1",
        "10.96.0.10",
        "10.100.7.7",
        "10.111.255.255",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect()
}

/// The host's uplinks: every device a default route uses.
fn uplinks() -> Vec<String> {
    let out = baton_e2e::exec::run(
        std::process::Command::new("ip").args(["-4", "route", "show", "default"]),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    out.stdout
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let dev = words.iter().position(|w| *w == "dev")?;
            Some(words.get(dev + 1)?.to_string())
        })
        .collect()
}

#[test]
fn host_never_routes_pod_or_service_addresses_out_of_its_uplink() {
    setup();
    let uplinks = uplinks();
    assert!(
        !uplinks.is_empty(),
        "the host has no default route to compare with"
    );
    let forward_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let cluster = Cluster::create(ClusterSpec::new(3)).expect("creating a cluster");
    let metric = cluster.addressing().safety_metric();

    // This cluster's own safety routes are in place…
    let routes = harness_routes();
    for range in ["10.244.0.0/16", "10.96.0.0/12"] {
        assert!(
            routes.contains(&(range.to_owned(), metric)),
            "no safety route for {range} with metric {metric}: {routes:?}"
        );
    }

    // …and every pod or service address is unreachable from the host (or,
    // if some other route existed, led into a fabric), never out of an uplink.
    for addr in cluster_addresses() {
        let out = host_route_get(addr);
        let text = format!("{}{}", out.stdout, out.stderr);
        for uplink in &uplinks {
            assert!(
                !text.contains(&format!("dev {uplink} ")),
                "{addr} would leave through {uplink}: {text}"
            );
        }
        let unreachable = !out.success() && out.stderr.contains("No route to host");
        let into_fabric =
            out.success() && out.stdout.contains(&format!("dev {}", cluster.host_link()));
        assert!(unreachable || into_fabric, "{addr}: {text}");
    }

    // The fabric itself is reached through the host's veth into it.
    let out = host_route_get(cluster.control().address());
    assert!(
        out.stdout.contains(&format!("dev {}", cluster.host_link())),
        "{}{}",
        out.stdout,
        out.stderr
    );

    // The check above can see an uplink: an address outside the cluster
    // ranges does resolve through one.
    let outside = host_route_get(Ipv4Addr::new(10, 200, 0, 1));
    assert!(
        uplinks
            .iter()
            .any(|u| outside.stdout.contains(&format!("dev {u} "))),
        "{}{}",
        outside.stdout,
        outside.stderr
    );

    // The harness leaves forwarding as it was.
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    assert_eq!(
        forward, forward_before,
        "the harness must not change ip_forward"
    );
}
