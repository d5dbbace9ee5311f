//! The persistent mode behind `cargo xtask up/down/status`: it outlives its
//! handle, `up` again changes nothing, a half-there cluster is recreated,
//! and `down` works from the state file alone.
//!
//! It uses unique names and a free slot (`ClusterSpec::unique_names`) so it
//! can run beside a real `cargo xtask up` cluster; everything else is the
//! persistent code path.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use baton_e2e::{Cluster, ClusterSpec, HostSnapshot, ProcessSpec, UpOutcome};
use common::{harness_routes, ping_from, safety_routes_released, setup};

/// The idempotency check compares whole-host snapshots: the tests of this
/// binary take turns.
static HOST_STATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    HOST_STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Tears the cluster down even if the test fails half-way.
struct DownOnDrop(PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = Cluster::down(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec() -> ClusterSpec {
    ClusterSpec::new(2).unique_names()
}

fn session_of(pid: u32) -> u32 {
    baton_e2e::proc_stat(pid)
        .expect("a running process")
        .session
}

#[test]
fn persistent_cluster_survives_its_handle_is_idempotent_and_goes_down_from_its_state_file() {
    setup();
    let _guard = exclusive();
    let dir = std::env::temp_dir().join(format!("baton-e2e-persistent-{}", std::process::id()));
    let _cleanup = DownOnDrop(dir.clone());
    let state_file = dir.join("cluster.json");

    // Create; start a detached process; drop the handle.
    let (cluster, outcome) = Cluster::up(spec(), &dir).expect("up");
    assert_eq!(outcome, UpOutcome::Created);
    assert!(cluster.is_persistent());
    let name = cluster.name().to_owned();
    let metric = cluster.addressing().safety_metric();
    let control = cluster.control().clone();
    let sleeper = cluster
        .spawn(
            control.netns(),
            ProcessSpec::new("sleeper", "sleep").arg("600"),
        )
        .expect("spawn");
    assert!(sleeper.detached);
    drop(cluster);
    assert!(
        sleeper.is_running(),
        "a persistent cluster's process died with its handle"
    );
    assert!(
        control.netns().exists(),
        "a persistent cluster was torn down on drop"
    );
    assert_eq!(
        session_of(sleeper.pid),
        sleeper.pid,
        "not in its own session"
    );
    assert!(
        ping_from(
            &Cluster::open(&dir).unwrap().unwrap().nodes()[0]
                .netns()
                .clone(),
            control.address()
        )
        .success()
    );

    // `up` again: nothing changes, not the cluster's host links, routes or
    // namespaces (same namespace inodes, links and addresses inside), not
    // the state file, not the process.
    let before = fingerprint(&dir);
    let (again, outcome) = Cluster::up(spec(), &dir).expect("up again");
    assert_eq!(outcome, UpOutcome::Unchanged);
    assert_eq!(again.name(), name);
    assert_eq!(again.process("sleeper"), Some(sleeper.clone()));
    drop(again);
    assert_eq!(
        before,
        fingerprint(&dir),
        "`up` of a healthy cluster changed it"
    );
    assert!(sleeper.is_running());

    // Status reads it back from the state file.
    let status = Cluster::status(&dir).unwrap().expect("status");
    assert!(status.problems.is_empty(), "{status}");
    assert!(
        status
            .processes
            .iter()
            .any(|p| p.record.name == "sleeper" && p.running)
    );
    assert!(status.to_string().contains("healthy"));

    // Half-there: a namespace went missing. `up` recreates the cluster
    // (stopping what ran in the old one).
    let client = Cluster::open(&dir)
        .unwrap()
        .unwrap()
        .client()
        .netns()
        .clone();
    let out = Command::new("ip")
        .args(["netns", "del", client.name()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let status = Cluster::status(&dir).unwrap().unwrap();
    assert!(
        status.problems.iter().any(|p| p.contains(client.name())),
        "{status}"
    );
    let (repaired, outcome) = Cluster::up(spec(), &dir).expect("repair");
    assert!(
        matches!(outcome, UpOutcome::Recreated { .. }),
        "{outcome:?}"
    );
    assert!(
        !sleeper.is_running(),
        "the old cluster's process was not stopped"
    );
    assert!(repaired.client().netns().exists());
    assert!(Cluster::status(&dir).unwrap().unwrap().problems.is_empty());
    let server = repaired
        .spawn(
            repaired.nodes()[1].netns(),
            ProcessSpec::new("server", "sleep").arg("600"),
        )
        .expect("spawn");
    let metric_now = repaired.addressing().safety_metric();
    let namespaces: Vec<_> = [
        repaired.fabric(),
        repaired.control().netns(),
        repaired.client().netns(),
    ]
    .into_iter()
    .chain(repaired.nodes().iter().map(|n| n.netns()))
    .cloned()
    .collect();
    let host_link = repaired.host_link().to_owned();
    drop(repaired);

    // A recorded PID that now belongs to another process is not killed:
    // file a record for an unrelated process with a different start time.
    let mut bystander = Command::new("sleep").arg("600").spawn().unwrap();
    add_fake_record(&state_file, bystander.id());

    // Down from the state file alone.
    let report = Cluster::down(&dir).expect("down");
    assert!(report.had_state);
    assert!(report.stopped.contains(&"server".to_owned()), "{report:?}");
    assert!(!server.is_running());
    assert!(namespaces.iter().all(|ns| !ns.exists()));
    assert!(!Path::new("/sys/class/net").join(&host_link).exists());
    assert!(safety_routes_released(metric) && safety_routes_released(metric_now));
    assert!(!state_file.exists());
    assert!(Cluster::status(&dir).unwrap().is_none());
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "down killed a recycled PID"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();

    // Down again: nothing to do.
    assert!(!Cluster::down(&dir).expect("down again").had_state);
}

/// Everything of the cluster in `state_dir` that a recreation would change:
/// its entries in a host snapshot (namespaces, host link, routes, mounts),
/// each namespace's identity (nsfs inode) and links and addresses, and the
/// state file.
fn fingerprint(state_dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt as _;
    let cluster = Cluster::open(state_dir).unwrap().expect("state file");
    let metric = format!("metric {}", cluster.addressing().safety_metric());
    let needles = [cluster.name(), cluster.host_link(), metric.as_str()];
    let snapshot = HostSnapshot::take().unwrap();
    let mut out: Vec<String> = [
        &snapshot.netns,
        &snapshot.links,
        &snapshot.routes,
        &snapshot.mounts,
    ]
    .into_iter()
    .flatten()
    .filter(|entry| needles.iter().any(|n| entry.contains(n)))
    .cloned()
    .collect();
    let namespaces = [
        cluster.fabric(),
        cluster.control().netns(),
        cluster.client().netns(),
    ]
    .into_iter()
    .chain(cluster.nodes().iter().map(|n| n.netns()));
    for ns in namespaces {
        out.push(format!(
            "{ns} inode {}",
            std::fs::metadata(ns.path()).unwrap().ino()
        ));
        for what in ["link", "addr"] {
            let listing = Command::new("ip")
                .args(["-n", ns.name(), "-o", what])
                .output()
                .unwrap();
            out.push(String::from_utf8_lossy(&listing.stdout).into_owned());
        }
    }
    out.push(std::fs::read_to_string(state_dir.join("cluster.json")).unwrap());
    out
}

/// Adds a process record for `pid` with a start time that is not its own.
fn add_fake_record(state_file: &Path, pid: u32) {
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_file).unwrap()).unwrap();
    let processes = state["processes"].as_array_mut().unwrap();
    let mut fake = processes[0].clone();
    fake["name"] = "recycled".into();
    fake["pid"] = pid.into();
    fake["start_time"] = 1.into();
    processes.push(fake);
    std::fs::write(state_file, serde_json::to_vec(&state).unwrap()).unwrap();
}

/// The fixed names of `cargo xtask up` (slot 0). Not run by default: it
/// would take over a developer's running `cargo xtask up` cluster.
#[test]
#[ignore = "uses the fixed names of `cargo xtask up`; run with --ignored when no such cluster is up"]
fn fixed_names_cluster_lifecycle() {
    setup();
    let _guard = exclusive();
    assert!(
        !Path::new("/var/run/netns/baton-control").exists(),
        "a `cargo xtask up` cluster is running; `cargo xtask down` first"
    );
    let dir = std::env::temp_dir().join(format!("baton-e2e-fixed-{}", std::process::id()));
    let _cleanup = DownOnDrop(dir.clone());

    let (cluster, outcome) = Cluster::up(ClusterSpec::new(2), &dir).expect("up");
    assert_eq!(outcome, UpOutcome::Created);
    assert_eq!(cluster.name(), "baton");
    assert_eq!(cluster.control().netns().name(), "baton-control");
    assert_eq!(cluster.client().netns().name(), "baton-client");
    assert_eq!(cluster.nodes()[1].netns().name(), "baton-node-2");
    assert_eq!(cluster.fabric().name(), "baton-fabric");
    assert_eq!(cluster.host_link(), "baton-host");
    assert_eq!(cluster.addressing().fabric().to_string(), "172.28.0.0/24");
    assert!(ping_from(cluster.nodes()[0].netns(), cluster.control().address()).success());
    drop(cluster);

    let (_, outcome) = Cluster::up(ClusterSpec::new(2), &dir).expect("up again");
    assert_eq!(outcome, UpOutcome::Unchanged);
    let (cluster, outcome) = Cluster::up(ClusterSpec::new(3), &dir).expect("more nodes");
    assert!(
        matches!(outcome, UpOutcome::Recreated { .. }),
        "{outcome:?}"
    );
    assert!(cluster.nodes()[2].netns().exists());
    drop(cluster);

    // Lost state file: what carries the fixed names is taken down and rebuilt.
    std::fs::remove_file(dir.join("cluster.json")).unwrap();
    let (_, outcome) = Cluster::up(ClusterSpec::new(1), &dir).expect("without state");
    assert!(
        matches!(outcome, UpOutcome::Recreated { .. }),
        "{outcome:?}"
    );
    assert!(!Path::new("/var/run/netns/baton-node-3").exists());

    Cluster::down(&dir).expect("down");
    for name in [
        "baton-control",
        "baton-client",
        "baton-fabric",
        "baton-node-1",
    ] {
        assert!(!Path::new("/var/run/netns").join(name).exists(), "{name}");
    }
    assert!(!Path::new("/sys/class/net/baton-host").exists());
    assert!(harness_routes().iter().all(|(_, m)| *m != 47_000));
}
