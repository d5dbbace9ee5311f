//! Shared by the harness's own tests.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::net::Ipv4Addr;
use std::time::Duration;

use baton_e2e::{Netns, Output};

/// Fails the test with a clear message unless running as root, and sends
/// harness logs to the test output.
pub fn setup() {
    baton_e2e::log_to_test_output();
    baton_e2e::assert_root();
}

/// One ICMP echo from inside `netns` (busybox ping: iputils is not
/// installed everywhere).
pub fn ping_from(netns: &Netns, to: Ipv4Addr) -> Output {
    netns
        .run(
            "busybox",
            ["ping", "-c", "1", "-W", "2", &to.to_string()],
            Duration::from_secs(5),
        )
        .expect("running ping")
}

/// One ICMP echo from the host namespace.
pub fn ping_from_host(to: Ipv4Addr) -> Output {
    baton_e2e::exec::run(
        std::process::Command::new("busybox").args(["ping", "-c", "1", "-W", "2", &to.to_string()]),
        Duration::from_secs(5),
    )
    .expect("running ping")
}

/// `ip route get <addr>` on the host: the route line, or the error.
pub fn host_route_get(addr: Ipv4Addr) -> Output {
    baton_e2e::exec::run(
        std::process::Command::new("ip").args(["route", "get", &addr.to_string()]),
        Duration::from_secs(5),
    )
    .expect("running ip route get")
}

/// Harness routes of the host main table, as `(dst, metric)`.
pub fn harness_routes() -> Vec<(String, u32)> {
    let proto = baton_e2e::iproute::ROUTE_PROTOCOL.to_string();
    let out = baton_e2e::exec::run(
        std::process::Command::new("ip")
            .args(["-4", "route", "show", "table", "main", "proto", &proto]),
        Duration::from_secs(5),
    )
    .expect("listing routes")
    .check()
    .expect("ip route show");
    out.stdout
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let dst = words.get(1)?;
            let metric = words.iter().position(|w| *w == "metric")?;
            Some(((*dst).to_owned(), words.get(metric + 1)?.parse().ok()?))
        })
        .collect()
}

/// Whether the safety routes with `metric` are gone — or, when tests run
/// concurrently, have been taken over by another live cluster that claimed
/// the freed slot (it files its slot record before adding routes and removes
/// it after removing them).
pub fn safety_routes_released(metric: u32) -> bool {
    if harness_routes().iter().all(|(_, m)| *m != metric) {
        return true;
    }
    let slot = metric - baton_e2e::addressing::SAFETY_METRIC_BASE;
    std::path::Path::new(baton_e2e::DEFAULT_RUN_ROOT)
        .join("slots")
        .join(format!("{slot}.json"))
        .exists()
}
