//! The CRI client against a real containerd 1.6 running in a node
//! namespace of a test cluster, with the project's own images imported:
//! sandbox, container, exec, logs, stop and removal. Needs root.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use baton_e2e::containerd::{self, Containerd};
use baton_e2e::images::{ECHO_IMAGE, PAUSE_IMAGE};
use baton_e2e::{Cluster, ClusterSpec};
use baton_node::cri::api as cri;
use baton_node::cri::{Cri, labels};

/// Kills whatever the node's containers left (their cgroups) when the test
/// ends, passing or not, before the cluster (and containerd) goes.
struct KillContainers(Containerd);

impl Drop for KillContainers {
    fn drop(&mut self) {
        if let Err(err) = self.0.kill_containers() {
            eprintln!("cleaning up containers: {err}");
        }
    }
}

fn setup() -> (Cluster, KillContainers) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
    baton_e2e::require_root().expect("these tests need root");
    let archives = baton_e2e::images::ensure_standard().expect("building the images");
    let cluster = Cluster::create(ClusterSpec::new(1)).expect("creating a cluster");
    let node = cluster.node(1).unwrap().clone();
    let containerd = containerd::start(&cluster, &node).expect("starting containerd");
    containerd.import(&archives).expect("importing images");
    (cluster, KillContainers(containerd))
}

fn sandbox_config(
    name: &str,
    uid: &str,
    log_dir: &Path,
    cgroup_parent: &str,
) -> cri::PodSandboxConfig {
    let pod = labels::PodRef {
        uid: uid.into(),
        namespace: "default".into(),
        name: name.into(),
    };
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        // A host-network sandbox shares the node's UTS namespace: no hostname.
        log_directory: log_dir.display().to_string(),
        labels: pod.labels(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("{cgroup_parent}/pod{uid}"),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                // Host network: no CNI needed for this test.
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    pid: cri::NamespaceMode::Pod as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_container_exec_logs_stop_and_remove_through_cri() {
    let (cluster, guard) = setup();
    let paths = &guard.0.paths;
    let cri = Cri::connect(&paths.socket)
        .await
        .expect("connecting to CRI");

    let version = cri.version().await.unwrap();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");

    // The imported images are visible through CRI by their stable names.
    for image in [PAUSE_IMAGE, ECHO_IMAGE] {
        let found = cri.image_status(image).await.unwrap();
        let found = found.unwrap_or_else(|| panic!("{image} not imported"));
        assert!(found.repo_tags.iter().any(|t| t == image), "{found:?}");
    }
    assert!(
        cri.image_status("baton.local/absent:1")
            .await
            .unwrap()
            .is_none()
    );

    let log_dir = cluster
        .node(1)
        .unwrap()
        .dir()
        .join("pods")
        .join("default_cri-test_u1");
    std::fs::create_dir_all(&log_dir).unwrap();
    let config = sandbox_config("cri-test", "u1", &log_dir, &paths.cgroup_parent);
    let sandbox = cri
        .run_pod_sandbox(config.clone())
        .await
        .expect("RunPodSandbox");
    let status = cri.pod_sandbox_status(&sandbox).await.unwrap();
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(
        status.labels.get(labels::POD_UID).map(String::as_str),
        Some("u1")
    );

    let container_config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "shell".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: ECHO_IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sh".into()],
        args: vec![
            "-c".into(),
            "echo started as $GREETING; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"
                .into(),
        ],
        envs: vec![cri::KeyValue {
            key: "GREETING".into(),
            value: "hello".into(),
        }],
        log_path: "shell/0.log".into(),
        labels: HashMap::from([(labels::CONTAINER_NAME.to_owned(), "shell".to_owned())]),
        ..Default::default()
    };
    let container = cri
        .create_container(&sandbox, container_config, config.clone())
        .await
        .expect("CreateContainer");
    cri.start_container(&container)
        .await
        .expect("StartContainer");
    let status = cri.container_status(&container).await.unwrap();
    assert_eq!(status.state, cri::ContainerState::ContainerRunning as i32);

    // ExecSync runs inside the container's filesystem and namespaces.
    let out = cri
        .exec_sync(
            &container,
            vec![
                "sh".into(),
                "-c".into(),
                "echo $GREETING; cat /proc/1/cmdline".into(),
            ],
            Duration::from_secs(10),
        )
        .await
        .expect("ExecSync");
    assert_eq!(out.exit_code, 0, "{out:?}");
    // The container's environment, and the sandbox's PID namespace whose
    // PID 1 is the pause process.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n/pause\0");
    let out = cri
        .exec_sync(
            &container,
            vec!["sh".into(), "-c".into(), "exit 3".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 3);

    // containerd writes the CRI log format into the sandbox's log directory.
    let log_file = log_dir.join("shell/0.log");
    let log = wait_for(|| {
        std::fs::read_to_string(&log_file)
            .ok()
            .filter(|l| l.contains("started as hello"))
    })
    .await
    .unwrap_or_else(|| panic!("no log line in {}", log_file.display()));
    let line = log.lines().next().unwrap();
    let fields: Vec<&str> = line.splitn(4, ' ').collect();
    assert_eq!(fields[1], "stdout", "{line}");
    assert_eq!(fields[2], "F", "{line}");
    assert_eq!(fields[3], "started as hello");

    // Stop with a grace period: the trap answers SIGTERM and exits 0.
    cri.stop_container(&container, Duration::from_secs(10))
        .await
        .unwrap();
    let status = cri.container_status(&container).await.unwrap();
    assert_eq!(status.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(status.exit_code, 0);
    assert!(std::fs::read_to_string(&log_file).unwrap().contains("bye"));

    cri.remove_container(&container).await.unwrap();
    assert!(
        cri.container_status(&container)
            .await
            .unwrap_err()
            .is_not_found()
    );
    cri.stop_pod_sandbox(&sandbox).await.unwrap();
    cri.remove_pod_sandbox(&sandbox).await.unwrap();
    let left = cri.list_pod_sandboxes(None).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..100 {
        if let Some(v) = f() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
