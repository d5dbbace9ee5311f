//! The node agent end to end: real etcd, API server, containerd, runc,
//! baton-node and kubectl in a namespace cluster. Pods are bound to nodes
//! with `spec.nodeName` (no scheduler needed).

use std::time::Duration;

use baton_e2e::Stack;

fn echo_pod(name: &str, node: &str, extra_spec: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: echo}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 5
  {extra_spec}
  containers:
  - name: echo
    image: baton.local/echo:1
    imagePullPolicy: IfNotPresent
    env:
    - name: POD_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    readinessProbe:
      httpGet: {{path: /healthz, port: 8080}}
      periodSeconds: 1
"#
    )
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    let net: ipnet::Ipv4Net = cidr.parse().unwrap();
    net.contains(&ip)
}

#[test]
fn nodes_register_and_pods_run_with_addresses_from_their_pod_cidr() {
    let c = Stack::start(2);
    // The Node objects as the kubelet registers them.
    for node in c.cluster.nodes() {
        let name = node.name();
        let json = c.kubectl_ok(&["get", "node", name, "-o", "json"]);
        assert!(json.contains("\"kubeletEndpoint\""), "{json}");
        assert_eq!(
            c.get("node", name, "{.metadata.labels.kubernetes\\.io/hostname}"),
            name
        );
        assert_eq!(
            c.get("node", name, "{.metadata.labels.kubernetes\\.io/os}"),
            "linux"
        );
        assert_eq!(
            c.get(
                "node",
                name,
                "{.status.addresses[?(@.type==\"InternalIP\")].address}"
            ),
            node.address().to_string()
        );
        assert_eq!(c.get("node", name, "{.status.capacity.pods}"), "110");
        assert_eq!(
            c.get(
                "node",
                name,
                "{.status.daemonEndpoints.kubeletEndpoint.Port}"
            ),
            "10250"
        );
        assert_eq!(
            c.get("node", name, "{.spec.podCIDR}"),
            node.pod_cidr().to_string()
        );
        assert!(
            c.get("node", name, "{.status.nodeInfo.containerRuntimeVersion}")
                .starts_with("containerd://")
        );
        // The machine's architecture, as Go names it.
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(c.get("node", name, "{.status.nodeInfo.architecture}"), arch);
        assert_eq!(
            c.get("node", name, "{.metadata.labels.kubernetes\\.io/arch}"),
            arch
        );
        // The runtime's images, each with its size.
        c.wait(
            Duration::from_secs(30),
            "the node reports its images",
            |c| {
                let images = c.get(
                    "node",
                    name,
                    "{range .status.images[*]}{.names[0]} {.sizeBytes}{\"\\n\"}{end}",
                );
                images.lines().any(|l| {
                    l.split_once(' ').is_some_and(|(n, size)| {
                        n == "baton.local/echo:1" && size.parse::<u64>().is_ok_and(|b| b > 0)
                    })
                })
            },
        );
        let holder = c.kubectl_ok(&[
            "-n",
            "kube-node-lease",
            "get",
            "lease",
            name,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]);
        assert_eq!(holder, name);
    }
    c.apply(&echo_pod("echo-1", "baton-node-1", ""));
    c.apply(&echo_pod("echo-2", "baton-node-2", ""));
    let ip1 = c.wait_ready("echo-1", Duration::from_secs(60));
    let ip2 = c.wait_ready("echo-2", Duration::from_secs(60));
    assert!(in_cidr(&ip1, "10.244.1.0/24"), "{ip1}");
    assert!(in_cidr(&ip2, "10.244.2.0/24"), "{ip2}");
    assert_eq!(
        c.get("pod", "echo-1", "{.status.hostIP}"),
        c.cluster.node(1).unwrap().address().to_string()
    );
    assert_eq!(c.get("pod", "echo-1", "{.status.phase}"), "Running");
    assert_eq!(
        c.get("pod", "echo-1", "{.status.containerStatuses[0].ready}"),
        "true"
    );
    assert!(
        c.get(
            "pod",
            "echo-1",
            "{.status.containerStatuses[0].containerID}"
        )
        .starts_with("containerd://")
    );
    // Events in the kubelet's format.
    let reasons = c.event_reasons("echo-1");
    for reason in ["Pulled", "Created", "Started"] {
        assert!(reasons.contains(reason), "events of echo-1: {reasons}");
    }
    // The node reaches its pod over the pod's veth: the echo server saw the
    // node's own address as the client, and the pod's IP as its own.
    let node1 = c.cluster.node(1).unwrap();
    let body = baton_e2e::stack::http_get(node1.netns(), &format!("{ip1}:8080"), "/")
        .expect("GET from the node");
    assert!(body.contains(&format!("\"podIP\":\"{ip1}\"")), "{body}");
    assert!(body.contains("\"hostname\":\"echo-1\""), "{body}");
    assert!(
        body.contains(&format!("\"client\":\"{}:", node1.address())),
        "{body}"
    );
    // No bridge and no iptables/nft rules of ours in the node namespaces.
    c.assert_no_bridge_or_netfilter_rules();
}

#[test]
fn config_map_volumes_follow_updates_and_probes_drive_readiness_and_restarts() {
    let c = Stack::start(1);
    c.apply(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {key: first}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {token: first}
---
apiVersion: v1
kind: Pod
metadata: {name: cfg-reader}
spec:
  nodeName: baton-node-1
  subdomain: readers
  hostAliases:
  - {ip: 10.1.2.3, hostnames: [foo.local, bar.local]}
  containers:
  - name: echo
    image: baton.local/echo:1
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    env:
    - name: KEY
      valueFrom: {configMapKeyRef: {name: cfg, key: key}}
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: sec, key: token}}
    envFrom:
    - {secretRef: {name: sec}, prefix: SEC_}
  volumes:
  - name: cfg
    configMap: {name: cfg}
  - name: sec
    secret: {secretName: sec}
---
apiVersion: v1
kind: Pod
metadata: {name: flaky}
spec:
  nodeName: baton-node-1
  containers:
  - name: echo
    image: baton.local/echo:1
    command: ["sh", "-c", "(sleep 4; touch /tmp/unhealthy) & exec /echo"]
    livenessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: never-ready}
spec:
  nodeName: baton-node-1
  containers:
  - name: echo
    image: baton.local/echo:1
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: gated}
spec:
  nodeName: baton-node-1
  readinessGates:
  - conditionType: example.com/load-balancer
  containers:
  - {name: echo, image: baton.local/echo:1}
---
apiVersion: v1
kind: Pod
metadata: {name: sidecar}
spec:
  nodeName: baton-node-1
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: shipper
    image: baton.local/echo:1
    restartPolicy: Always
    command: ["sh", "-c", "touch /shared/up; exec sleep 3600"]
    startupProbe:
      exec: {command: ["test", "-f", "/shared/up"]}
      periodSeconds: 1
    volumeMounts: [{name: shared, mountPath: /shared}]
  - name: setup
    image: baton.local/echo:1
    command: ["sh", "-c", "test -f /shared/up && echo beside-the-sidecar > /shared/setup"]
    volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
  - name: app
    image: baton.local/echo:1
    command: ["sh", "-c", "cat /shared/setup; while [ ! -f /shared/finish ]; do sleep 0.2; done; echo done"]
    volumeMounts: [{name: shared, mountPath: /shared}]
  volumes:
  - {name: shared, emptyDir: {}}
---
apiVersion: v1
kind: Pod
metadata: {name: last-words}
spec:
  nodeName: baton-node-1
  restartPolicy: Never
  containers:
  - name: file
    image: baton.local/echo:1
    command: ["sh", "-c", "printf 'written to the termination log' > /dev/termination-log; exit 3"]
  - name: logs
    image: baton.local/echo:1
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo first; echo the last line; exit 4"]
---
apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  nodeName: baton-node-1
  activeDeadlineSeconds: 4
  terminationGracePeriodSeconds: 2
  containers:
  - name: echo
    image: baton.local/echo:1
"#,
    );
    c.wait_ready("cfg-reader", Duration::from_secs(60));
    let uid = c.get("pod", "cfg-reader", "{.metadata.uid}");
    let file = c.cluster.node(1).unwrap().dir().join(format!(
        "kubelet/pods/{uid}/volumes/kubernetes.io~configmap/cfg/key"
    ));
    let secret_file = c.cluster.node(1).unwrap().dir().join(format!(
        "kubelet/pods/{uid}/volumes/kubernetes.io~secret/sec/token"
    ));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "first");
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), "first");
    let environment = || {
        c.kubectl_ok(&[
            "exec",
            "cfg-reader",
            "--",
            "sh",
            "-c",
            "echo $KEY $TOKEN $SEC_token",
        ])
    };
    assert_eq!(environment().trim(), "first first first");
    // The kubelet's /etc/hosts: the pod under its own names, its aliases.
    let hosts = c.kubectl_ok(&["exec", "cfg-reader", "--", "cat", "/etc/hosts"]);
    let pod_ip = c.get("pod", "cfg-reader", "{.status.podIP}");
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
            && hosts.contains(&format!(
                "\n{pod_ip}\tcfg-reader.readers.default.svc.cluster.local\tcfg-reader\n"
            ))
            && hosts.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"),
        "{hosts}"
    );
    // The updates reach the files through the node's watches of the two
    // objects, well before the minute the volumes are rewritten anyway.
    for (kind, name, patch, path) in [
        ("configmap", "cfg", r#"{"data":{"key":"second"}}"#, &file),
        (
            "secret",
            "sec",
            r#"{"stringData":{"token":"second"}}"#,
            &secret_file,
        ),
    ] {
        c.kubectl_ok(&["patch", kind, name, "-p", patch]);
        c.wait(
            Duration::from_secs(10),
            &format!("the {kind} update in the volume"),
            |_| std::fs::read_to_string(path).is_ok_and(|t| t == "second"),
        );
    }
    // The environment was set when the container started, and stays.
    assert_eq!(environment().trim(), "first first first");

    // A failing liveness probe restarts the container and counts it.
    c.wait(Duration::from_secs(60), "flaky restarted", |c| {
        c.get(
            "pod",
            "flaky",
            "{.status.containerStatuses[0].restartCount}",
        )
        .parse::<u32>()
        .is_ok_and(|n| n >= 1)
    });
    let reasons = c.event_reasons("flaky");
    assert!(
        reasons.contains("Unhealthy") && reasons.contains("Killing"),
        "{reasons}"
    );

    // A failing readiness probe keeps the pod running but not Ready.
    c.wait(Duration::from_secs(30), "never-ready running", |c| {
        c.get("pod", "never-ready", "{.status.phase}") == "Running"
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        c.get(
            "pod",
            "never-ready",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "False"
    );
    assert_eq!(
        c.get(
            "pod",
            "never-ready",
            "{.status.conditions[?(@.type==\"ContainersReady\")].reason}"
        ),
        "ContainersNotReady"
    );
    // Its probe fails every second, and the kubelet counts the failures
    // on one event (what `kubectl describe` shows as `(x5 over 4s)`).
    c.wait(
        Duration::from_secs(20),
        "one Unhealthy event of never-ready counting its failures",
        |c| {
            let counts = c.kubectl_ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=never-ready",
                "-o",
                "jsonpath={.items[?(@.reason==\"Unhealthy\")].count}",
            ]);
            let counts: Vec<u32> = counts
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            assert!(counts.len() <= 1, "one event per message: {counts:?}");
            counts.first().is_some_and(|n| *n >= 3)
        },
    );

    // A readiness gate keeps a pod whose containers are ready from being
    // Ready until its condition, set by someone else, is True; the
    // kubelet's later status writes keep that condition.
    c.wait(Duration::from_secs(30), "gated's containers ready", |c| {
        c.get(
            "pod",
            "gated",
            "{.status.conditions[?(@.type==\"ContainersReady\")].status}",
        ) == "True"
    });
    let ready = |c: &Stack, field: &str| {
        c.get(
            "pod",
            "gated",
            &format!("{{.status.conditions[?(@.type==\"Ready\")].{field}}}"),
        )
    };
    assert_eq!(ready(&c, "status"), "False");
    assert_eq!(ready(&c, "reason"), "ReadinessGatesNotReady");
    assert_eq!(
        ready(&c, "message"),
        "corresponding condition of pod readiness gate \"example.com/load-balancer\" does not exist."
    );
    c.kubectl_ok(&[
        "patch",
        "pod",
        "gated",
        "--subresource=status",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/status/conditions/-","value":{"type":"example.com/load-balancer","status":"True"}}]"#,
    ]);
    c.wait(Duration::from_secs(20), "gated Ready", |c| {
        ready(c, "status") == "True"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.get(
            "pod",
            "gated",
            "{.status.conditions[?(@.type==\"example.com/load-balancer\")].status}"
        ),
        "True"
    );
    assert_eq!(ready(&c, "status"), "True");

    // A sidecar (an init container with restartPolicy Always) lets the
    // next init container start once it has started, runs beside the app,
    // is ready with it, and is stopped when the app is done: the pod
    // succeeds.
    let sidecar = |c: &Stack, field: &str| {
        c.get(
            "pod",
            "sidecar",
            &format!("{{.status.initContainerStatuses[?(@.name==\"shipper\")].{field}}}"),
        )
    };
    c.wait(Duration::from_secs(60), "the sidecar beside the app", |c| {
        !c.get(
            "pod",
            "sidecar",
            "{.status.containerStatuses[0].state.running.startedAt}",
        )
        .is_empty()
            && !sidecar(c, "state.running.startedAt").is_empty()
    });
    assert_eq!(
        (sidecar(&c, "started"), sidecar(&c, "ready")),
        ("true".to_owned(), "true".to_owned())
    );
    assert_eq!(c.get("pod", "sidecar", "{.status.phase}"), "Running");
    // The app finishes when told to, through the sidecar.
    c.kubectl_ok(&[
        "exec",
        "sidecar",
        "-c",
        "shipper",
        "--",
        "touch",
        "/shared/finish",
    ]);
    c.wait(Duration::from_secs(60), "sidecar's pod succeeded", |c| {
        c.get("pod", "sidecar", "{.status.phase}") == "Succeeded"
    });
    assert_eq!(
        c.kubectl_ok(&["logs", "sidecar", "-c", "app"]),
        "beside-the-sidecar\ndone\n"
    );
    c.wait(Duration::from_secs(30), "the sidecar stopped", |c| {
        !sidecar(c, "state.terminated.exitCode").is_empty()
    });
    assert_eq!(sidecar(&c, "restartCount"), "0");

    // A container's termination message: what it wrote to
    // /dev/termination-log, or the end of its log when it failed and asked
    // for that.
    c.wait(Duration::from_secs(60), "last-words failed", |c| {
        c.get("pod", "last-words", "{.status.phase}") == "Failed"
    });
    let message = |c: &Stack, container: &str| {
        c.get(
            "pod",
            "last-words",
            &format!(
                "{{.status.containerStatuses[?(@.name==\"{container}\")].state.terminated.message}}"
            ),
        )
    };
    assert_eq!(message(&c, "file"), "written to the termination log");
    assert_eq!(message(&c, "logs"), "first\nthe last line\n");

    // A pod that outlives its activeDeadlineSeconds fails for it, and its
    // container is stopped and not started again (restartPolicy Always).
    c.wait(Duration::from_secs(60), "deadline failed", |c| {
        c.get("pod", "deadline", "{.status.phase}") == "Failed"
    });
    assert_eq!(
        c.get("pod", "deadline", "{.status.reason}"),
        "DeadlineExceeded"
    );
    assert_eq!(
        c.get("pod", "deadline", "{.status.message}"),
        "Pod was active on the node longer than the specified deadline"
    );
    assert_eq!(
        c.get(
            "pod",
            "deadline",
            "{.status.conditions[?(@.type==\"Ready\")].reason}"
        ),
        "PodFailed"
    );
    c.wait(
        Duration::from_secs(30),
        "deadline's container stopped",
        |c| {
            !c.get(
                "pod",
                "deadline",
                "{.status.containerStatuses[0].state.terminated.exitCode}",
            )
            .is_empty()
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.get(
            "pod",
            "deadline",
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );
    assert_eq!(c.get("pod", "deadline", "{.status.phase}"), "Failed");
    let reasons = c.event_reasons("deadline");
    assert!(
        reasons.contains("DeadlineExceeded") && reasons.contains("Killing"),
        "{reasons}"
    );
}

#[test]
fn a_killed_node_agent_recovers_without_restarting_containers_and_cleans_up_deleted_pods() {
    let c = Stack::start(1);
    c.apply(&echo_pod("keep", "baton-node-1", ""));
    c.apply(&echo_pod("gone", "baton-node-1", ""));
    c.wait_ready("keep", Duration::from_secs(60));
    let gone_ip = c.wait_ready("gone", Duration::from_secs(60));
    let keep_id = c.get("pod", "keep", "{.status.containerStatuses[0].containerID}");
    let before = c.runtime_containers(1);

    c.kill_node(1);
    // Deleted while the node agent is down: the pod waits for its kubelet.
    c.kubectl_ok(&["delete", "pod", "gone", "--wait=false"]);
    c.start_node(1);
    c.wait(Duration::from_secs(60), "the deleted pod removed", |c| {
        !c.kubectl(&["get", "pod", "gone"]).status.success()
    });
    c.wait(Duration::from_secs(30), "its containers removed", |c| {
        c.runtime_containers(1).len() == before.len() - 2
    });
    // The healthy container kept running: same ID, no restart.
    assert_eq!(
        c.get("pod", "keep", "{.status.containerStatuses[0].containerID}"),
        keep_id
    );
    assert_eq!(
        c.get("pod", "keep", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    let after = c.runtime_containers(1);
    assert!(
        before.iter().filter(|id| after.contains(id)).count() == after.len(),
        "{before:?} -> {after:?}"
    );
    assert!(
        !c.allocated_ips(1).contains(&gone_ip),
        "{:?}",
        c.allocated_ips(1)
    );
}

#[test]
fn deletion_is_graceful_and_create_delete_cycles_leak_nothing() {
    let c = Stack::start(1);
    let node = c.cluster.node(1).unwrap().clone();
    let marks = node.dir().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  nodeName: baton-node-1
  terminationGracePeriodSeconds: 10
  containers:
  - name: sh
    image: baton.local/echo:1
    command: ["sh", "-c", "trap 'echo term >> /marks/log; exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop >> /marks/log"]}}
    volumeMounts: [{{name: marks, mountPath: /marks}}]
  volumes:
  - name: marks
    hostPath: {{path: {}, type: Directory}}
"#,
        marks.display()
    ));
    c.wait(Duration::from_secs(60), "graceful running", |c| {
        c.get("pod", "graceful", "{.status.phase}") == "Running"
    });
    c.kubectl_ok(&["delete", "pod", "graceful", "--wait=true", "--timeout=60s"]);
    let log = std::fs::read_to_string(marks.join("log")).unwrap_or_default();
    assert_eq!(log, "prestop\nterm\n", "preStop runs before SIGTERM");
    assert!(c.allocated_ips(1).is_empty(), "{:?}", c.allocated_ips(1));

    for i in 0..30 {
        let name = format!("cycle-{i}");
        c.apply(&echo_pod(&name, "baton-node-1", ""));
        c.wait_ready(&name, Duration::from_secs(60));
        c.kubectl_ok(&["delete", "pod", &name, "--wait=true", "--timeout=60s"]);
    }
    assert!(
        c.allocated_ips(1).is_empty(),
        "leaked addresses: {:?}",
        c.allocated_ips(1)
    );
    assert!(
        c.runtime_containers(1).is_empty(),
        "leaked containers: {:?}",
        c.runtime_containers(1)
    );
    let veths = node
        .netns()
        .run_ok(
            "ip",
            ["-o", "link", "show", "type", "veth"],
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(
        !veths.stdout.contains("lxc"),
        "leaked veths: {}",
        veths.stdout
    );
    let pods_dir = node.dir().join("kubelet/pods");
    let left: Vec<_> = std::fs::read_dir(&pods_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "leaked pod directories: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&pods_dir.display().to_string()),
        "leaked mounts under {}",
        pods_dir.display()
    );
    let records = baton_node_endpoint_netns(&node.dir().join("kubelet/cni"));
    assert!(records.is_empty(), "endpoint records left: {records:?}");
}

/// Endpoint records baton-cni left (each names a pod network namespace).
fn baton_node_endpoint_netns(data_dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(data_dir.join("endpoints"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A client certificate of the cluster CA (as the API server's kubelet
/// client certificate would be), written as PEM files; returns (cert, key).
fn client_cert(c: &Stack) -> (std::path::PathBuf, std::path::PathBuf) {
    user_cert(c, "kube-apiserver-kubelet-client", &["system:masters"])
}

/// A client certificate (and key) of the cluster CA for `user` in `groups`.
fn user_cert(c: &Stack, user: &str, groups: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = c.cluster.run_dir().join(format!("client-{user}"));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let status = std::process::Command::new(
        c.binaries
            .path("baton-control")
            .expect("baton-control built"),
    )
    .arg("kubeconfig")
    .arg("--cert-dir")
    .arg(&c.pki)
    .args(["--server", "https://127.0.0.1:6443", "--user", user])
    .args(groups.iter().flat_map(|g| ["--group", g]))
    .arg("--out")
    .arg(&kubeconfig)
    .status()
    .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let field = |name: &str| {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        let b64 = line.split_once(':').unwrap().1.trim().to_owned();
        let out = std::process::Command::new("base64")
            .arg("-d")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(b64.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        out.stdout
    };
    let (cert, key) = (dir.join("client.crt"), dir.join("client.key"));
    std::fs::write(&cert, field("client-certificate-data")).unwrap();
    std::fs::write(&key, field("client-key-data")).unwrap();
    (cert, key)
}

#[test]
fn the_node_serves_container_logs_to_clients_of_the_cluster_ca() {
    let c = Stack::start(1);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  nodeName: baton-node-1
  containers:
  - name: sh
    image: baton.local/echo:1
    command: ["sh", "-c", "for i in 1 2 3; do echo line $i; done; exec sleep 3600"]
"#,
    );
    c.wait(Duration::from_secs(60), "talker running", |c| {
        c.get("pod", "talker", "{.status.phase}") == "Running"
    });
    let (cert, key) = client_cert(&c);
    let node = c.cluster.node(1).unwrap();
    let base = format!(
        "https://{}:10250/containerLogs/default/talker/sh",
        node.address()
    );
    let jane = user_cert(&c, "jane", &[]);
    let curl_as = |query: &str, cert: Option<&(std::path::PathBuf, std::path::PathBuf)>| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(c.pki.join("ca.crt"));
        if let Some((cert, key)) = cert {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        cmd.arg(format!("{base}{query}"));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
        (body.to_owned(), code.to_owned())
    };
    let pair = (cert.clone(), key.clone());
    let curl = |query: &str| {
        let (body, code) = curl_as(query, Some(&pair));
        assert_eq!(code, "200", "{body}");
        body
    };
    c.wait(Duration::from_secs(10), "three log lines", |_| {
        curl_as("", Some(&pair)).0 == "line 1\nline 2\nline 3\n"
    });
    assert_eq!(curl("?tailLines=1"), "line 3\n");
    let stamped = curl("?timestamps=true");
    assert!(stamped.lines().all(|l| l.contains("Z line ")), "{stamped}");
    let (previous, _) = curl_as("?previous=true", Some(&pair));
    assert!(
        previous.contains("previous terminated container"),
        "{previous}"
    );
    // The node serves with a certificate the controller manager's signer
    // issued for its CSR; the cluster CA's key is nowhere on the node:
    // not on the agent's command line, not in any file of its directory.
    let ca_key = std::fs::read(c.pki.join("ca.key")).unwrap();
    let agent = c
        .cluster
        .process(&baton_e2e::nodes::agent_name(node))
        .expect("the node agent runs");
    assert!(!agent.command.contains("ca.key"), "{}", agent.command);
    let mut dirs = vec![node.dir().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file()
                && entry.metadata().is_ok_and(|m| m.len() < 1 << 20)
                && let Ok(bytes) = std::fs::read(entry.path())
            {
                assert_ne!(bytes, ca_key, "{} is the CA key", entry.path().display());
            }
        }
    }
    let issued = c.kubectl_ok(&[
        "get",
        "csr",
        "-o",
        "jsonpath={range .items[?(@.spec.signerName==\"kubernetes.io/kubelet-serving\")]}{.spec.username} {.status.conditions[0].reason}{\"\\n\"}{end}",
    ]);
    assert!(
        issued
            .lines()
            .any(|l| l == "system:node:baton-node-1 AutoApproved"),
        "{issued}"
    );
    // Without credentials: 401; a user of the cluster CA whom the API
    // server does not allow `nodes/proxy`: 403, in the kubelet's words.
    assert_eq!(
        curl_as("", None),
        ("Unauthorized".to_owned(), "401".to_owned())
    );
    assert_eq!(
        curl_as("", Some(&jane)),
        (
            "Forbidden (user=jane, verb=get, resource=nodes, subresource=proxy)".to_owned(),
            "403".to_owned()
        )
    );
}

/// Runs `command` in container `sh` of pod `talker` through the node's
/// `/exec` endpoint over a websocket (`v4.channel.k8s.io`, as the API
/// server's proxy would speak it); returns stdout and the status message.
async fn exec_over_websocket(
    node_ip: std::net::Ipv4Addr,
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    command: &[&str],
) -> (String, String) {
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::fs::read(ca).unwrap().as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<_> = rustls_pemfile::certs(&mut std::fs::read(cert).unwrap().as_slice())
        .map(Result::unwrap)
        .collect();
    let key = rustls_pemfile::private_key(&mut std::fs::read(key).unwrap().as_slice())
        .unwrap()
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let tcp = tokio::net::TcpStream::connect((node_ip, 10250))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::V4(node_ip).into()),
            tcp,
        )
        .await
        .unwrap();
    let encode = |arg: &str| -> String {
        arg.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let query: String = command
        .iter()
        .map(|c| format!("command={}&", encode(c)))
        .collect();
    let url = format!("wss://{node_ip}:10250/exec/default/talker/sh?{query}stdout=1&stderr=1");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("websocket upgrade");
    assert_eq!(
        response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap()),
        Some("v4.channel.k8s.io")
    );
    let (mut stdout, mut status) = (String::new(), String::new());
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Binary(data) if !data.is_empty() => match data[0] {
                1 => stdout.push_str(&String::from_utf8_lossy(&data[1..])),
                3 => status.push_str(&String::from_utf8_lossy(&data[1..])),
                _ => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    (stdout, status)
}

#[test]
fn the_node_runs_exec_sessions_over_websockets() {
    let c = Stack::start(1);
    c.apply(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {key: secret-sauce}
---
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  nodeName: baton-node-1
  containers:
  - name: sh
    image: baton.local/echo:1
    command: ["sleep", "3600"]
    volumeMounts: [{name: cfg, mountPath: /etc/cfg}]
  volumes:
  - name: cfg
    configMap: {name: cfg}
"#,
    );
    c.wait(Duration::from_secs(60), "talker running", |c| {
        c.get("pod", "talker", "{.status.phase}") == "Running"
    });
    let (cert, key) = client_cert(&c);
    let node_ip = c.cluster.node(1).unwrap().address();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stdout, status) = runtime.block_on(exec_over_websocket(
        node_ip,
        &c.pki.join("ca.crt"),
        &cert,
        &key,
        &["cat", "/etc/cfg/key"],
    ));
    assert_eq!(stdout, "secret-sauce");
    assert!(status.contains("Success"), "{status}");
    let (_, status) = runtime.block_on(exec_over_websocket(
        node_ip,
        &c.pki.join("ca.crt"),
        &cert,
        &key,
        &["sh", "-c", "exit 3"],
    ));
    assert!(
        status.contains("NonZeroExitCode") && status.contains("\"3\""),
        "{status}"
    );
}

/// kubectl as a client holding only `token` (no client certificate), for
/// the cluster's API server, trusting `ca`.

#[test]
fn service_account_tokens_mounted_in_pods_authenticate_them_until_the_pod_is_deleted() {
    let c = Stack::start(1);
    c.apply(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: v1
kind: Pod
metadata: {name: sa-reader}
spec:
  nodeName: baton-node-1
  serviceAccountName: reader
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: baton.local/echo:1
---
apiVersion: v1
kind: Pod
metadata: {name: no-token}
spec:
  nodeName: baton-node-1
  automountServiceAccountToken: false
  containers:
  - name: echo
    image: baton.local/echo:1
"#,
    );
    c.wait_ready("sa-reader", Duration::from_secs(60));
    c.wait_ready("no-token", Duration::from_secs(60));
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";

    // The admission plugin's projected volume, with the kubelet's files.
    let volumes = c.get("pod", "sa-reader", "{.spec.volumes[*].name}");
    assert!(volumes.starts_with("kube-api-access-"), "{volumes}");
    let read =
        |file: &str| c.kubectl_ok(&["exec", "sa-reader", "--", "cat", &format!("{dir}/{file}")]);
    assert_eq!(read("namespace"), "default");
    let cluster_ca = std::fs::read_to_string(c.pki.join("ca.crt")).expect("the cluster CA");
    assert_eq!(read("ca.crt"), cluster_ca);
    let token = read("token");
    let ca = c.cluster.run_dir().join("pod-ca.crt");
    std::fs::write(&ca, read("ca.crt")).expect("writing the pod's CA bundle");
    // The pod that opted out has nothing there.
    let out = c.kubectl(&["exec", "no-token", "--", "ls", dir]);
    assert!(!out.status.success(), "no-token has {dir}");
    assert_eq!(c.get("pod", "no-token", "{.spec.volumes}"), "");

    // The pod's token, checked against its CA bundle, is the pod's service
    // account to the API server.
    let whoami = c.kubectl_with_token(
        &ca,
        &token,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.extra['authentication\\.kubernetes\\.io/pod-name'][0]}",
        ],
    );
    assert!(
        whoami.status.success(),
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        "system:serviceaccount:default:reader sa-reader"
    );
    // It may do what its bindings allow, nothing more.
    let pods = c.kubectl_with_token(&ca, &token, &["get", "pods", "-o", "name"]);
    assert!(
        String::from_utf8_lossy(&pods.stderr).contains(
            r#"pods is forbidden: User "system:serviceaccount:default:reader" cannot list resource "pods" in API group "" in the namespace "default""#
        ),
        "{}",
        String::from_utf8_lossy(&pods.stderr)
    );
    c.kubectl_ok(&[
        "create",
        "rolebinding",
        "reader-view",
        "--clusterrole=view",
        "--serviceaccount=default:reader",
    ]);
    c.wait(Duration::from_secs(20), "the reader's view binding", |c| {
        let pods = c.kubectl_with_token(&ca, &token, &["get", "pods", "-o", "name"]);
        String::from_utf8_lossy(&pods.stdout).contains("pod/sa-reader")
    });
    // The pod reaches the API server through the `kubernetes` Service (a
    // plain-text request: the server's TLS refuses it and closes, which
    // ends `nc`; an unreachable server would fail the connect).
    let reached = c.kubectl_ok(&[
        "exec",
        "sa-reader",
        "--",
        "sh",
        "-c",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 10 nc -w 5 \"$KUBERNETES_SERVICE_HOST\" \"$KUBERNETES_SERVICE_PORT\" >/dev/null && echo reached",
    ]);
    assert_eq!(reached.trim(), "reached");

    // A forged token is refused.
    let forged = format!("{}x", token.trim());
    let refused = c.kubectl_with_token(&ca, &forged, &["get", "pods"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // `kubectl create token` (TokenRequest) gives a working token too.
    let created = c.kubectl_ok(&["create", "token", "reader", "--duration=15m"]);
    let whoami = c.kubectl_with_token(
        &ca,
        created.trim(),
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        "system:serviceaccount:default:reader",
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    let short = c.kubectl(&["create", "token", "reader", "--duration=1m"]);
    assert!(
        String::from_utf8_lossy(&short.stderr)
            .contains("may not specify a duration less than 10 minutes"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );

    // Deleting the pod revokes its token.
    c.kubectl_ok(&["delete", "pod", "sa-reader", "--wait=true"]);
    c.wait(
        Duration::from_secs(20),
        "the deleted pod's token refused",
        |_| {
            let out = c.kubectl_with_token(&ca, &token, &["get", "pods"]);
            String::from_utf8_lossy(&out.stderr).contains("Unauthorized")
        },
    );

    // A new namespace gets the CA bundle pods read.
    c.kubectl_ok(&["create", "namespace", "fresh"]);
    c.wait(
        Duration::from_secs(20),
        "kube-root-ca.crt in the new namespace",
        |c| {
            let out = c.kubectl(&[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-n",
                "fresh",
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ]);
            String::from_utf8_lossy(&out.stdout) == cluster_ca
        },
    );
}
