//! A cluster leaves the host as it found it: when dropped, when the test
//! body panics, and — for a run that was killed — at the next start.
//!
//! These tests compare whole-host snapshots, so they run one at a time and
//! expect nothing else to change the host's namespaces, links, routes or
//! mounts meanwhile (cargo runs test binaries one after another).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use baton_e2e::{Cluster, ClusterSpec, HostSnapshot, Netns, ProcessSpec, Route};
use common::{harness_routes, setup};

static HOST_STATE: Mutex<()> = Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    HOST_STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// On a fresh machine the first `ip netns add` makes /run/netns a shared
/// mount point, which iproute2 keeps by design; one throwaway cluster gets
/// the host to that steady state before the "before" snapshot.
fn steady_snapshot() -> HostSnapshot {
    drop(Cluster::create(ClusterSpec::new(1)).expect("warm-up cluster"));
    HostSnapshot::take().expect("snapshot")
}

fn assert_same(before: &HostSnapshot, after: &HostSnapshot) {
    let diff = before.diff(after);
    assert!(diff.is_empty(), "the host changed:\n{}", diff.join("\n"));
}

/// Gives the cluster every kind of host-visible state: processes, a bpffs
/// mount, a route inside a namespace.
fn use_cluster(cluster: &Cluster) {
    let node = &cluster.nodes()[0];
    cluster
        .spawn(
            node.netns(),
            ProcessSpec::new("sleeper", "sleep").arg("600"),
        )
        .expect("spawning");
    cluster.mount_bpffs(1).expect("bpffs");
    node.netns()
        .add_route(&Route::via(
            cluster.nodes()[1].pod_cidr(),
            cluster.nodes()[1].address(),
        ))
        .expect("route");
}

#[test]
fn dropping_a_cluster_restores_the_host() {
    setup();
    let _guard = exclusive();
    let before = steady_snapshot();
    let cluster = Cluster::create(ClusterSpec::new(3)).expect("creating a cluster");
    use_cluster(&cluster);
    let sleeper = cluster.process("sleeper").unwrap();
    let during = HostSnapshot::take().unwrap();
    // The snapshot sees the cluster (so equality afterwards means something).
    let diff = before.diff(&during);
    for needle in [cluster.fabric().name(), cluster.host_link(), "bpf"] {
        assert!(
            diff.iter().any(|d| d.contains(needle)),
            "{needle} not in {diff:#?}"
        );
    }
    drop(cluster);
    assert!(!sleeper.is_running(), "a process outlived its cluster");
    assert_same(&before, &HostSnapshot::take().unwrap());
}

#[test]
fn a_panicking_test_body_still_tears_the_cluster_down() {
    setup();
    let _guard = exclusive();
    let before = steady_snapshot();
    let mut sleeper = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cluster = Cluster::create(ClusterSpec::new(2)).expect("creating a cluster");
        use_cluster(&cluster);
        sleeper = cluster.process("sleeper");
        panic!("test body fails while the cluster is up");
    }));
    assert!(result.is_err());
    assert!(!sleeper.expect("spawned").is_running());
    assert_same(&before, &HostSnapshot::take().unwrap());
}

const CHILD_ENV: &str = "BATON_E2E_KILLED_RUN_INFO";

/// Run only as a child of the test below: creates a cluster, reports what
/// it made, then waits to be SIGKILLed.
#[test]
#[ignore = "child process of killed_run_leftovers_are_removed_by_the_next_start"]
fn killed_run_child() {
    let Some(info) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    setup();
    let cluster = Cluster::create(ClusterSpec::new(2)).expect("creating a cluster");
    use_cluster(&cluster);
    let mut lines = vec![
        format!("name={}", cluster.name()),
        format!("host_link={}", cluster.host_link()),
        format!("metric={}", cluster.addressing().safety_metric()),
        format!("sleeper={}", cluster.process("sleeper").unwrap().pid),
        format!("run_dir={}", cluster.run_dir().display()),
        format!("bpffs={}", cluster.nodes()[0].dir().join("bpf").display()),
    ];
    lines.extend(
        [
            cluster.fabric(),
            cluster.control().netns(),
            cluster.client().netns(),
        ]
        .into_iter()
        .chain(cluster.nodes().iter().map(|n| n.netns()))
        .map(|ns| format!("netns={ns}")),
    );
    let tmp = PathBuf::from(&info).with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n")).unwrap();
    std::fs::rename(tmp, &info).unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn read_info(path: &Path) -> (BTreeMap<String, String>, Vec<Netns>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut map = BTreeMap::new();
    let mut netns = Vec::new();
    for line in text.lines() {
        let (k, v) = line.split_once('=').unwrap();
        if k == "netns" {
            netns.push(Netns::new(v));
        } else {
            map.insert(k.to_owned(), v.to_owned());
        }
    }
    (map, netns)
}

fn pid_alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

fn is_mounted(path: &str) -> bool {
    baton_e2e::host::mounts_under(Path::new(path))
        .iter()
        .any(|p| p == Path::new(path))
}

#[test]
fn killed_run_leftovers_are_removed_by_the_next_start() {
    setup();
    let _guard = exclusive();
    let before = steady_snapshot();
    let info =
        std::env::temp_dir().join(format!("baton-e2e-killed-run-{}.info", std::process::id()));
    let _ = std::fs::remove_file(&info);
    let child_log = info.with_extension("log");
    let log = std::fs::File::create(&child_log).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_run_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &info)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("re-running the test binary");
    let child_output = || std::fs::read_to_string(&child_log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !info.exists() {
        assert!(
            Instant::now() < deadline,
            "child did not set up its cluster:\n{}",
            child_output()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "child exited early:\n{}",
            child_output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL: no unwinding, no Drop
    child.wait().unwrap();

    let (facts, namespaces) = read_info(&info);
    let _ = std::fs::remove_file(&info);
    let _ = std::fs::remove_file(&child_log);
    let metric: u32 = facts["metric"].parse().unwrap();
    let old_metric_routes = || {
        harness_routes()
            .iter()
            .filter(|(_, m)| *m == metric)
            .count()
    };

    // The killed run left everything behind…
    assert!(namespaces.iter().all(Netns::exists));
    assert!(
        Path::new("/sys/class/net")
            .join(&facts["host_link"])
            .exists()
    );
    assert_eq!(old_metric_routes(), 2);
    assert!(
        pid_alive(&facts["sleeper"]),
        "the child's process should survive it"
    );
    assert!(is_mounted(&facts["bpffs"]));

    // …and the next start removes it.
    let next = Cluster::create(ClusterSpec::new(1)).expect("next start");
    for ns in &namespaces {
        assert!(!ns.exists(), "{ns} left behind");
    }
    assert!(
        !Path::new("/sys/class/net")
            .join(&facts["host_link"])
            .exists()
    );
    assert!(
        !pid_alive(&facts["sleeper"]),
        "process in a stale namespace not killed"
    );
    assert!(!is_mounted(&facts["bpffs"]));
    assert!(!Path::new(&facts["run_dir"]).exists());
    let reused = next.addressing().safety_metric() == metric;
    assert_eq!(old_metric_routes(), if reused { 2 } else { 0 });
    drop(next);
    assert_eq!(old_metric_routes(), 0);
    assert_same(&before, &HostSnapshot::take().unwrap());
}
