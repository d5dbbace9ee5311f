//! Images also come from a registry: Debian's `docker-registry` runs on
//! the node's loopback, the echo image is pushed to it, and a pod naming
//! it with `imagePullPolicy: Always` is started through CRI PullImage.

use std::time::Duration;

use baton_e2e::ProcessSpec;
use baton_e2e::Stack;

#[test]
fn a_pod_image_is_pulled_from_a_local_registry() {
    let c = Stack::start(1);
    let node = c.cluster.node(1).unwrap().clone();
    let dir = node.dir().join("registry");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:5000\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    c.cluster
        .spawn(
            node.netns(),
            ProcessSpec::new("registry-1", "docker-registry")
                .arg("serve")
                .arg(&config),
        )
        .expect("starting docker-registry (Debian package docker-registry)");
    c.cluster
        .wait_for_process_tcp(
            "registry-1",
            "127.0.0.1:5000".parse().unwrap(),
            Duration::from_secs(20),
        )
        .expect("the registry listens");
    baton_e2e::containerd::allow_insecure_registry(&c.containerds[0].paths, "127.0.0.1:5000")
        .unwrap();
    let archives = baton_e2e::images::ensure_standard().unwrap();
    let echo = archives.iter().find(|p| p.ends_with("echo.tar")).unwrap();
    baton_e2e::images::push(
        node.netns(),
        echo,
        "127.0.0.1:5000",
        "baton/echo",
        "2",
        &dir,
    )
    .expect("pushing");

    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: pulled}
spec:
  nodeName: baton-node-1
  containers:
  - name: echo
    image: 127.0.0.1:5000/baton/echo:2
    imagePullPolicy: Always
"#,
    );
    c.wait_ready("pulled", Duration::from_secs(90));
    let messages = c.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=pulled",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        messages.contains("Pulling: Pulling image \"127.0.0.1:5000/baton/echo:2\""),
        "{messages}"
    );
    assert!(
        messages.contains("Pulled: Successfully pulled image \"127.0.0.1:5000/baton/echo:2\""),
        "{messages}"
    );
    let image_id = c.get("pod", "pulled", "{.status.containerStatuses[0].imageID}");
    assert!(image_id.contains("sha256:"), "{image_id}");
}
