//! A cluster's namespaces reach each other over the fabric, and only there.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use baton_e2e::{Cluster, ClusterSpec, ProcessSpec, Route};
use common::{ping_from, ping_from_host, setup};

#[test]
fn three_nodes_reach_each_other_the_client_and_the_host_over_the_fabric() {
    setup();
    let cluster = Cluster::create(ClusterSpec::new(3)).expect("creating a 3-node cluster");
    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 3);

    for from in nodes {
        for to in nodes.iter().filter(|n| n.index() != from.index()) {
            let out = ping_from(from.netns(), to.address());
            assert!(
                out.success(),
                "{} -> {} ({}): {}{}",
                from.netns(),
                to.netns(),
                to.address(),
                out.stdout,
                out.stderr
            );
        }
    }
    for node in nodes {
        let out = ping_from(cluster.client().netns(), node.address());
        assert!(
            out.success(),
            "client -> {}: {}{}",
            node.netns(),
            out.stdout,
            out.stderr
        );
    }
    let out = ping_from_host(cluster.control().address());
    assert!(
        out.success(),
        "host -> control: {}{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn namespaces_have_only_loopback_and_fabric_routes() {
    setup();
    let cluster = Cluster::create(ClusterSpec::new(2)).expect("creating a cluster");
    let fabric = cluster.addressing().fabric().to_string();
    let mut members = vec![cluster.control().netns(), cluster.client().netns()];
    members.extend(cluster.nodes().iter().map(|n| n.netns()));
    for netns in members {
        let routes = netns.routes().expect("listing routes");
        let dsts: Vec<&str> = routes.iter().map(|r| r.dst.as_str()).collect();
        assert_eq!(dsts, [fabric.as_str()], "routes of {netns}: {routes:?}");
        // Loopback works (it is brought up in every namespace).
        let out = ping_from(netns, Ipv4Addr::LOCALHOST);
        assert!(
            out.success(),
            "loopback in {netns}: {}{}",
            out.stdout,
            out.stderr
        );
    }
    // No default route: an address outside the fabric is unreachable, so
    // nothing leaves a namespace except onto the fabric.
    let node = &cluster.nodes()[0];
    let out = node
        .netns()
        .run("ip", ["route", "get", "10.244.2.5"], Duration::from_secs(5))
        .unwrap();
    assert!(!out.success(), "{}", out.stdout);
    assert!(out.stderr.contains("unreachable"), "{}", out.stderr);
}

#[test]
fn routes_added_in_a_namespace_are_used_and_removed() {
    setup();
    let cluster = Cluster::create(ClusterSpec::new(2)).expect("creating a cluster");
    let (n1, n2) = (&cluster.nodes()[0], &cluster.nodes()[1]);
    assert_eq!(n2.pod_cidr().to_string(), "10.244.2.0/24");
    let route = Route::via(n2.pod_cidr(), n2.address());
    n1.netns()
        .add_route(&route)
        .expect("adding a pod-CIDR route");
    let out = n1
        .netns()
        .run_ok("ip", ["route", "get", "10.244.2.5"], Duration::from_secs(5))
        .expect("route lookup");
    assert!(
        out.stdout
            .contains(&format!("via {} dev eth0", n2.address())),
        "{}",
        out.stdout
    );
    n1.netns().del_route(&route).expect("removing the route");
    let out = n1
        .netns()
        .run("ip", ["route", "get", "10.244.2.5"], Duration::from_secs(5))
        .unwrap();
    assert!(!out.success(), "route still there: {}", out.stdout);
}

#[test]
fn processes_run_in_their_namespace_and_are_waited_for_and_stopped() {
    setup();
    let cluster = Cluster::create(ClusterSpec::new(1)).expect("creating a cluster");
    let node = &cluster.nodes()[0];
    let www = node.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from node 1\n").unwrap();
    let server = cluster
        .spawn(
            node.netns(),
            ProcessSpec::new("httpd", "busybox")
                .args(["httpd", "-f", "-p", "8080", "-h"])
                .arg(&www),
        )
        .expect("starting busybox httpd");
    assert!(server.is_running());

    // Reachable from the client namespace over the fabric…
    let addr = SocketAddr::from((node.address(), 8080));
    baton_e2e::ready::wait_tcp(
        cluster.client().netns(),
        addr,
        Duration::from_secs(10),
        Some(&server),
    )
    .expect("httpd accepting from the client");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{}/comm", server.pid))
            .unwrap()
            .trim(),
        "busybox",
        "the recorded PID is the program itself (nsenter execs it), not a wrapper"
    );
    let out = cluster
        .client()
        .netns()
        .run_ok(
            "curl",
            ["-sS", "--max-time", "5", &format!("http://{addr}/")],
            Duration::from_secs(10),
        )
        .expect("curl from the client");
    assert_eq!(out.stdout, "hello from node 1\n");
    // …and it listens in the node's namespace, not the host's.
    let host_try = std::net::TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
        Duration::from_millis(200),
    );
    assert!(
        host_try.is_err(),
        "port 8080 answered on the host's loopback"
    );

    // Duplicate names are refused while the first one runs.
    let dup = cluster.spawn(node.netns(), ProcessSpec::new("httpd", "sleep").arg("1"));
    assert!(dup.is_err());

    cluster.stop_process("httpd").expect("stopping httpd");
    assert!(!server.is_running());
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("starting in"), "{log}");
}

#[test]
fn waiting_for_a_port_fails_fast_when_the_server_exits_and_names_the_namespace_on_timeout() {
    setup();
    let cluster = Cluster::create(ClusterSpec::new(1)).expect("creating a cluster");
    let node = &cluster.nodes()[0];
    cluster
        .spawn(
            node.netns(),
            ProcessSpec::new("broken", "sh").args(["-c", "echo cannot bind >&2; exit 3"]),
        )
        .expect("starting");
    let started = std::time::Instant::now();
    let err = cluster
        .wait_for_process_tcp(
            "broken",
            SocketAddr::from((node.address(), 9)),
            Duration::from_secs(30),
        )
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not fail fast"
    );
    assert!(
        err.contains("broken") && err.contains("cannot bind"),
        "{err}"
    );

    let err = baton_e2e::ready::wait_tcp(
        node.netns(),
        SocketAddr::from((node.address(), 9)),
        Duration::from_millis(300),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(node.netns().name()) && err.contains(":9"),
        "{err}"
    );
}
