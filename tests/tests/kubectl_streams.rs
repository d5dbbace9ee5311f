//! `kubectl logs`, `exec`, `attach`, `port-forward`, `cp` and `debug` end to end: the
//! real kubectl 1.33 against the API server, which proxies
//! `pods/log|exec|attach|portforward` to the node's kubelet over HTTPS
//! (websocket `v5.channel.k8s.io` sessions translated to SPDY, SPDY
//! tunnelled through websockets carried, SPDY passed through), down to
//! containerd's streaming server; and the kubelet's metrics through
//! `nodes/proxy`.
//! One cluster serves every scenario, run in sequence.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use baton_e2e::Stack;
use baton_e2e::kubectl::{self, stderr, stdout};

/// How kubectl reaches exec, attach and port-forward: websockets first (its
/// default, falling back to SPDY), or SPDY only.
#[derive(Clone, Copy, Debug)]
enum Transport {
    Websocket,
    Spdy,
}

fn kubectl(c: &Stack, transport: Transport, args: &[&str]) -> Command {
    let mut cmd = c.kubectl_runner().command();
    cmd.args(args);
    // kubectl's switches for its websocket remote-command and
    // port-forward clients.
    let websockets = match transport {
        Transport::Websocket => "true",
        Transport::Spdy => "false",
    };
    cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets);
    cmd
}

/// Runs kubectl to completion (killed after 60 s), feeding `stdin` and
/// then closing it.
fn run(c: &Stack, transport: Transport, args: &[&str], stdin: Option<&str>) -> Output {
    run_with(c, transport, args, stdin, false)
}

/// [`run`]; with `hold`, kubectl's stdin stays open until kubectl ends (a
/// session that ends on its own, not on the end of its input).
fn run_with(
    c: &Stack,
    transport: Transport,
    args: &[&str],
    stdin: Option<&str>,
    hold: bool,
) -> Output {
    let mut cmd = kubectl(c, transport, args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = kubectl::spawn(&mut cmd).unwrap_or_else(|error| panic!("{error}"));
    let mut held = None;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped");
        pipe.write_all(input.as_bytes()).expect("kubectl's stdin");
        // Dropping the pipe closes kubectl's stdin: end of input.
        if hold {
            held = Some(pipe);
        }
    }
    let guard = Killer(child.id());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("kubectl {args:?} ({transport:?}) did not finish in 60s"))
        .expect("kubectl output");
    drop(held);
    std::mem::forget(guard);
    out
}

/// Kills a kubectl this test started (by PID) if the test gives up on it.
struct Killer(u32);

impl Drop for Killer {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn ok(c: &Stack, transport: Transport, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(c, transport, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} ({transport:?}) failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// A long-running kubectl whose stdout lines arrive on a channel.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Streaming {
    fn start(c: &Stack, transport: Transport, args: &[&str]) -> Self {
        Self::start_with_stderr(c, transport, args, Stdio::null())
    }

    fn start_with_stderr(c: &Stack, transport: Transport, args: &[&str], err: Stdio) -> Self {
        let mut child = kubectl::spawn(
            kubectl(c, transport, args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(err),
        )
        .unwrap_or_else(|error| panic!("{error}"));
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Streaming { child, lines }
    }

    /// Waits for a line containing `text`; returns the lines seen.
    fn expect(&self, text: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no line with {text:?} within {within:?}; saw {seen:?}");
    }

    /// Whether kubectl is still running.
    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PODS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {key: value-from-the-configmap}
---
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  nodeName: baton-node-1
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: baton.local/echo:1
    command:
    - sh
    - -c
    - |
      echo hello 1; echo hello 2; echo hello 3
      while [ ! -f /tmp/go ]; do sleep 0.2; done
      echo late line
      while true; do echo tick; sleep 0.5; done
    volumeMounts: [{name: cfg, mountPath: /etc/cfg}]
  volumes:
  - name: cfg
    configMap: {name: cfg}
---
apiVersion: v1
kind: Pod
metadata: {name: restarter}
spec:
  nodeName: baton-node-1
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: baton.local/echo:1
    command:
    - sh
    - -c
    - |
      if [ ! -f /data/ran ]; then touch /data/ran; echo first run; exit 1; fi
      echo second run; exec sleep 3600
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    emptyDir: {}
---
apiVersion: v1
kind: Pod
metadata: {name: pair}
spec:
  nodeName: baton-node-1
  terminationGracePeriodSeconds: 1
  containers:
  - {name: a, image: baton.local/echo:1, command: [sleep, "3600"]}
  - {name: b, image: baton.local/echo:1, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  nodeName: baton-node-1
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: baton.local/echo:1
    ports: [{name: http, containerPort: 8080}, {name: echo, containerPort: 9000}]
---
apiVersion: v1
kind: Pod
metadata: {name: unscheduled}
spec:
  nodeSelector: {no-such-label: "true"}
  containers:
  - {name: app, image: baton.local/echo:1}
"#;

/// A Node whose kubelet cannot be reached (nothing listens on its port),
/// and a pod bound to it.
const GHOST: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: ghost}
---
apiVersion: v1
kind: Pod
metadata: {name: haunted}
spec:
  nodeName: ghost
  containers:
  - {name: app, image: baton.local/echo:1}
"#;

/// The local port kubectl says it forwards to `remote` (`Forwarding from
/// 127.0.0.1:<port> -> <remote>`).
fn forwarded_port(lines: &[String], remote: u16) -> Option<u16> {
    lines.iter().find_map(|l| {
        l.strip_prefix("Forwarding from 127.0.0.1:")?
            .strip_suffix(&format!(" -> {remote}"))?
            .parse()
            .ok()
    })
}

/// `kubectl port-forward` to the echo pod's HTTP and TCP echo ports: an
/// HTTP request answered from inside the pod, and a quarter megabyte echoed
/// back on two connections at once (both directions of the tunnel, with
/// back-pressure). With websockets, kubectl's SPDY-over-websocket tunnel is
/// served, not refused into its SPDY fallback (which would pass too).
fn port_forward(c: &Stack, transport: Transport) {
    let log = tempfile::NamedTempFile::new().expect("a file for kubectl's log");
    let forward = Streaming::start_with_stderr(
        c,
        transport,
        &["port-forward", "-v=4", "pod/web", ":8080", ":9000"],
        Stdio::from(log.reopen().expect("kubectl's log file")),
    );
    let mut lines = forward.expect("-> 9000", Duration::from_secs(30));
    if forwarded_port(&lines, 8080).is_none() {
        lines.extend(forward.expect("-> 8080", Duration::from_secs(5)));
    }
    let (http_port, echo_port) = (
        forwarded_port(&lines, 8080).expect("the HTTP port's local end"),
        forwarded_port(&lines, 9000).expect("the echo port's local end"),
    );

    let mut conn = TcpStream::connect(("127.0.0.1", http_port)).expect("the forwarded HTTP port");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(b"GET /through-the-tunnel HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .expect("the pod's HTTP answer");
    assert!(
        answer.starts_with("HTTP/1.1 200")
            && answer.contains("\"path\":\"/through-the-tunnel\"")
            && answer.contains("\"hostname\":\"web\""),
        "{transport:?}: {answer}"
    );

    let echoes: Vec<_> = (0..2u8)
        .map(|n| {
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8 ^ n).collect();
                let mut conn = TcpStream::connect(("127.0.0.1", echo_port)).expect("the echo port");
                conn.set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let mut writer = conn.try_clone().unwrap();
                let sent = data.clone();
                let sending = std::thread::spawn(move || writer.write_all(&sent));
                let mut back = vec![0; data.len()];
                conn.read_exact(&mut back).expect("the echoed bytes");
                sending.join().unwrap().expect("sending through the tunnel");
                back == data
            })
        })
        .collect();
    for echo in echoes {
        assert!(echo.join().unwrap(), "{transport:?}: the echo differs");
    }
    drop(forward);
    let mut log_text = String::new();
    std::fs::File::open(log.path())
        .and_then(|mut f| f.read_to_string(&mut log_text))
        .expect("kubectl's log");
    // client-go's tunneling dialer logs its websocket negotiation.
    let tunnelled = log_text.contains("negotiated protocol: portforward.k8s.io");
    assert_eq!(
        tunnelled,
        matches!(transport, Transport::Websocket),
        "{transport:?}: {log_text}"
    );
}

/// `kubectl debug` with an ephemeral container: added through
/// `pods/ephemeralcontainers`, started by the kubelet in the process
/// namespace of its target, attached to, and never restarted once it ends;
/// existing ones cannot be removed.
fn debug(c: &Stack) {
    let started = run(
        c,
        Transport::Websocket,
        &[
            "debug",
            "web",
            "--image=baton.local/echo:1",
            "--target=app",
            "-c",
            "dbg",
            "--",
            "sleep",
            "3600",
        ],
        None,
    );
    assert!(started.status.success(), "{}", stderr(&started));
    // Its strategic merge patch's `$setElementOrder` is a directive, not a
    // field to warn about.
    assert!(
        !stderr(&started).contains("unknown field"),
        "{}",
        stderr(&started)
    );
    c.wait(
        Duration::from_secs(60),
        "the debug container running",
        |c| {
            !c.get(
                "pod",
                "web",
                "{.status.ephemeralContainerStatuses[?(@.name==\"dbg\")].state.running.startedAt}",
            )
            .is_empty()
        },
    );
    // It sees the target's processes: its PID 1 is the app's, not its own
    // `sleep`.
    let init_of = |container: &str| {
        ok(
            c,
            Transport::Websocket,
            &[
                "exec",
                "web",
                "-c",
                container,
                "--",
                "cat",
                "/proc/1/cmdline",
            ],
            None,
        )
    };
    let (app, dbg) = (init_of("app"), init_of("dbg"));
    assert!(app.starts_with("/echo"), "{app:?}");
    assert_eq!(dbg, app);
    // The pod's own containers and readiness are untouched.
    assert_eq!(
        c.get("pod", "web", "{.status.containerStatuses[*].name}"),
        "app"
    );
    assert_eq!(
        c.get(
            "pod",
            "web",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "True"
    );
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web,reason=Started",
        "-o",
        "jsonpath={.items[*].involvedObject.fieldPath}",
    ]);
    assert!(events.contains("spec.ephemeralContainers{dbg}"), "{events}");

    // Interactive: kubectl waits for it to run, then attaches.
    for (transport, name) in [
        (Transport::Websocket, "ask-ws"),
        (Transport::Spdy, "ask-spdy"),
    ] {
        // Its stdin stays open (kubectl debug sets no `stdinOnce`: the
        // runtime ends an attach at the end of its input).
        let answer = run_with(
            c,
            transport,
            &[
                "debug",
                "-i",
                "web",
                "--image=baton.local/echo:1",
                "-c",
                name,
                "--",
                "sh",
                "-c",
                // containerd copies stdin before it adds the attach's
                // output (kubectl says "If you don't see a command
                // prompt…" for that), later on a busy machine: the answer
                // is repeated for a few seconds.
                "read line; for i in 1 2 3 4 5 6; do echo \"got $line\"; sleep 1; done",
            ],
            Some("hello\n"),
            true,
        );
        assert!(
            answer.status.success(),
            "{transport:?}: {}",
            stderr(&answer)
        );
        assert!(
            stdout(&answer).contains("got hello"),
            "{transport:?}: {:?} {:?}; its log: {:?}; status {}",
            stdout(&answer),
            stderr(&answer),
            run(c, transport, &["logs", "web", "-c", name], None),
            c.get("pod", "web", "{.status.ephemeralContainerStatuses}")
        );
        let path = format!("{{.status.ephemeralContainerStatuses[?(@.name==\"{name}\")]");
        c.wait(Duration::from_secs(30), "the ended debug container", |c| {
            c.get("pod", "web", &format!("{path}.state.terminated.exitCode}}")) == "0"
        });
        assert_eq!(
            ok(c, transport, &["logs", "web", "-c", name], None),
            "got hello\n".repeat(6)
        );
    }
    // Ended, it stays ended: no restart, not even after the pod's next syncs.
    std::thread::sleep(Duration::from_secs(3));
    let ended = "{.status.ephemeralContainerStatuses[?(@.name==\"ask-ws\")]}";
    let status = c.get("pod", "web", ended);
    assert!(
        status.contains("\"terminated\"") && status.contains("\"restartCount\":0"),
        "{status}"
    );

    // A node's debugging pod: in the node's network and process
    // namespaces, with the node's address as its own.
    let created = run(
        c,
        Transport::Websocket,
        &[
            "debug",
            "node/baton-node-1",
            "--image=baton.local/echo:1",
            "--",
            "sleep",
            "3600",
        ],
        None,
    );
    let said = stdout(&created) + &stderr(&created);
    let node_pod = said
        .split_whitespace()
        .find(|w| w.starts_with("node-debugger-baton-node-1-"))
        .unwrap_or_else(|| panic!("no debugging pod named in {said}"))
        .to_owned();
    c.wait(
        Duration::from_secs(60),
        "the node's debugging pod running",
        |c| c.get("pod", &node_pod, "{.status.phase}") == "Running",
    );
    let node_ip = c.get(
        "node",
        "baton-node-1",
        "{.status.addresses[?(@.type==\"InternalIP\")].address}",
    );
    assert!(!node_ip.is_empty());
    assert_eq!(c.get("pod", &node_pod, "{.status.podIP}"), node_ip);
    let addresses = ok(
        c,
        Transport::Websocket,
        &["exec", &node_pod, "--", "ip", "-4", "-o", "addr"],
        None,
    );
    assert!(
        addresses.contains(&format!("inet {node_ip}/")),
        "{addresses}"
    );
    c.kubectl_ok(&["delete", "pod", &node_pod, "--wait=false"]);

    // A patch's unknown fields are still named.
    let bogus = run(
        c,
        Transport::Websocket,
        &[
            "patch",
            "pod",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"bogus":1}}"#,
        ],
        None,
    );
    assert!(
        stderr(&bogus).contains("Warning: unknown field \"spec.bogus\""),
        "{}",
        stderr(&bogus)
    );

    // Existing ephemeral containers may not be removed, nor may a pod's
    // update add one.
    let mut pod: serde_json::Value =
        serde_json::from_str(&c.kubectl_ok(&["get", "pod", "web", "-o", "json"]))
            .expect("the pod as JSON");
    pod["spec"]["ephemeralContainers"] = serde_json::json!([]);
    let file = tempfile::NamedTempFile::new().expect("a file for the pod");
    std::fs::write(file.path(), pod.to_string()).expect("the pod written");
    let path = file.path().to_str().expect("a UTF-8 path");
    let removed = run(
        c,
        Transport::Websocket,
        &[
            "replace",
            "--raw",
            "/api/v1/namespaces/default/pods/web/ephemeralcontainers",
            "-f",
            path,
        ],
        None,
    );
    assert!(
        stderr(&removed).contains("may not be removed"),
        "{}",
        stderr(&removed)
    );
    let added = run(
        c,
        Transport::Websocket,
        &[
            "patch",
            "pod",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/spec/ephemeralContainers/-","value":{"name":"sneaky","image":"baton.local/echo:1"}}]"#,
        ],
        None,
    );
    assert!(
        stderr(&added).contains("pod updates may not change fields other than"),
        "{}",
        stderr(&added)
    );
}

/// `kubectl cp` both ways (a tar stream through exec's stdin and stdout):
/// the bytes come back as they went.
fn copy(c: &Stack) {
    let dir = tempfile::tempdir().expect("a directory for the copies");
    let sent = dir.path().join("sent.bin");
    // Bytes of every value, in a length that is no multiple of a block.
    let data: Vec<u8> = (0..300_007u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&sent, &data).expect("the file to send");
    for transport in [Transport::Websocket, Transport::Spdy] {
        let back = dir.path().join(format!("back-{transport:?}.bin"));
        ok(
            c,
            transport,
            &[
                "cp",
                sent.to_str().expect("UTF-8"),
                "talker:/tmp/copied.bin",
            ],
            None,
        );
        let sum = ok(
            c,
            transport,
            &["exec", "talker", "--", "wc", "-c", "/tmp/copied.bin"],
            None,
        );
        assert!(sum.starts_with("300007 "), "{transport:?}: {sum}");
        ok(
            c,
            transport,
            &[
                "cp",
                "talker:/tmp/copied.bin",
                back.to_str().expect("UTF-8"),
            ],
            None,
        );
        assert!(
            std::fs::read(&back).expect("the file copied back") == data,
            "{transport:?}: the copy differs"
        );
    }
}

#[test]
fn kubectl_logs_exec_and_attach_reach_the_containers() {
    let c = Stack::start(1);
    c.apply(PODS);
    c.apply(GHOST);
    // The ghost's address: loopback of the API server's namespace, where
    // nothing listens on port 1.
    c.kubectl_ok(&[
        "patch",
        "node",
        "ghost",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"}],"daemonEndpoints":{"kubeletEndpoint":{"Port":1}}}}"#,
    ]);
    for pod in ["talker", "pair", "web"] {
        c.wait(Duration::from_secs(90), &format!("{pod} running"), |c| {
            c.get("pod", pod, "{.status.phase}") == "Running"
        });
    }

    // logs: everything, then the tail.
    c.wait(Duration::from_secs(20), "talker's first lines", |c| {
        ok(c, Transport::Websocket, &["logs", "talker"], None) == "hello 1\nhello 2\nhello 3\n"
    });
    assert_eq!(
        ok(
            &c,
            Transport::Websocket,
            &["logs", "talker", "--tail=1"],
            None
        ),
        "hello 3\n"
    );
    let stamped = ok(
        &c,
        Transport::Websocket,
        &["logs", "talker", "--timestamps"],
        None,
    );
    assert!(
        stamped.lines().count() == 3 && stamped.lines().all(|l| l.contains("Z hello ")),
        "{stamped}"
    );
    assert_eq!(
        ok(
            &c,
            Transport::Websocket,
            &["logs", "talker", "--limit-bytes=7"],
            None
        ),
        "hello 1"
    );

    // logs -f: a line written after the call started arrives while it runs.
    let mut follow = Streaming::start(&c, Transport::Websocket, &["logs", "-f", "talker"]);
    follow.expect("hello 3", Duration::from_secs(20));
    // exec (kubectl's default: a websocket the API server translates).
    ok(
        &c,
        Transport::Websocket,
        &["exec", "talker", "--", "touch", "/tmp/go"],
        None,
    );
    follow.expect("late line", Duration::from_secs(20));
    follow.expect("tick", Duration::from_secs(20));
    assert!(follow.running(), "logs -f ended while the container runs");
    drop(follow);

    // kubectl's websocket session is served (translated to SPDY towards
    // the node), not refused into its SPDY fallback.
    let verbose = run(
        &c,
        Transport::Websocket,
        &["exec", "-v=4", "-i", "talker", "--", "cat"],
        Some("x"),
    );
    assert!(verbose.status.success(), "{}", stderr(&verbose));
    assert!(
        stderr(&verbose).contains("The subprotocol is v5.channel.k8s.io")
            && !stderr(&verbose).contains("fallback"),
        "{}",
        stderr(&verbose)
    );

    for transport in [Transport::Websocket, Transport::Spdy] {
        // A file of the mounted ConfigMap.
        assert_eq!(
            ok(
                &c,
                transport,
                &["exec", "talker", "--", "cat", "/etc/cfg/key"],
                None
            ),
            "value-from-the-configmap",
            "{transport:?}"
        );
        // stdin piped into the container, and its end reaching `cat`.
        let data = format!("piped through {transport:?}\nsecond line\n");
        assert_eq!(
            ok(
                &c,
                transport,
                &["exec", "-i", "talker", "--", "cat"],
                Some(&data)
            ),
            data
        );
        // stdout and stderr kept apart.
        let out = run(
            &c,
            transport,
            &["exec", "talker", "--", "sh", "-c", "echo out; echo err >&2"],
            None,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "out\n");
        assert!(stderr(&out).contains("err\n"), "{}", stderr(&out));
        // The command's exit code is kubectl's.
        let failed = run(
            &c,
            transport,
            &["exec", "talker", "--", "sh", "-c", "exit 3"],
            None,
        );
        assert_eq!(
            failed.status.code(),
            Some(3),
            "{transport:?}: {}",
            stderr(&failed)
        );
        // A container of a multi-container pod, by name.
        assert_eq!(
            ok(
                &c,
                transport,
                &["exec", "pair", "-c", "b", "--", "echo", "from b"],
                None
            ),
            "from b\n"
        );
    }

    // attach: the running container's output streams to kubectl.
    for transport in [Transport::Websocket, Transport::Spdy] {
        let attach = Streaming::start(&c, transport, &["attach", "talker", "-c", "app"]);
        attach.expect("tick", Duration::from_secs(20));
    }

    for transport in [Transport::Websocket, Transport::Spdy] {
        port_forward(&c, transport);
    }
    debug(&c);
    copy(&c);

    // logs --previous: the attempt before the restart.
    c.wait(Duration::from_secs(90), "restarter restarted", |c| {
        c.get(
            "pod",
            "restarter",
            "{.status.containerStatuses[0].restartCount}",
        )
        .parse::<u32>()
        .is_ok_and(|n| n >= 1)
            && c.get("pod", "restarter", "{.status.phase}") == "Running"
    });
    c.wait(Duration::from_secs(20), "the second run's log", |c| {
        ok(c, Transport::Websocket, &["logs", "restarter"], None) == "second run\n"
    });
    assert_eq!(
        ok(
            &c,
            Transport::Websocket,
            &["logs", "restarter", "--previous"],
            None
        ),
        "first run\n"
    );

    // Errors as kube-apiserver words them.
    let raw = run(
        &c,
        Transport::Websocket,
        &["get", "--raw", "/api/v1/namespaces/default/pods/pair/log"],
        None,
    );
    assert!(
        stderr(&raw)
            .contains("a container name must be specified for pod pair, choose one of: [a b]"),
        "{}",
        stderr(&raw)
    );
    let missing = run(
        &c,
        Transport::Websocket,
        &["logs", "pair", "-c", "zzz"],
        None,
    );
    assert!(
        stderr(&missing).contains("container zzz is not valid for pod pair"),
        "{}",
        stderr(&missing)
    );
    let gone = run(&c, Transport::Websocket, &["logs", "nobody"], None);
    assert!(
        stderr(&gone).contains("pods \"nobody\" not found"),
        "{}",
        stderr(&gone)
    );
    // (kubectl itself refuses --tail below -1; a raw request reaches the server.)
    let invalid = run(
        &c,
        Transport::Websocket,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/talker/log?tailLines=-2",
        ],
        None,
    );
    assert!(
        stderr(&invalid).contains("must be greater than or equal to 0"),
        "{}",
        stderr(&invalid)
    );
    for transport in [Transport::Websocket, Transport::Spdy] {
        let pending = run(&c, transport, &["exec", "unscheduled", "--", "true"], None);
        assert!(
            stderr(&pending).contains("pod unscheduled does not have a host assigned"),
            "{transport:?}: {}",
            stderr(&pending)
        );
    }
    let unreachable = run(&c, Transport::Websocket, &["logs", "haunted"], None);
    assert!(!unreachable.status.success());
    assert!(
        stderr(&unreachable).contains("dial tcp 127.0.0.1:1: connect: connection refused"),
        "{}",
        stderr(&unreachable)
    );
    let unreachable = run(
        &c,
        Transport::Spdy,
        &["exec", "haunted", "--", "true"],
        None,
    );
    assert!(
        stderr(&unreachable).contains("error dialing backend"),
        "{}",
        stderr(&unreachable)
    );
    c.kubectl_ok(&["delete", "pod", "haunted", "--grace-period=0", "--force"]);

    // The kubelet's metrics, through the API server's nodes/proxy.
    let metric = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    c.wait(
        Duration::from_secs(30),
        "the kubelet's metrics to count the running pods",
        |c| {
            let text = ok(
                c,
                Transport::Websocket,
                &["get", "--raw", "/api/v1/nodes/baton-node-1/proxy/metrics"],
                None,
            );
            assert!(
                text.contains("kubelet_node_name{node=\"baton-node-1\"} 1"),
                "{text}"
            );
            [
                // talker, pair and web run; each was timed from its creation.
                ("kubelet_running_pods", 2.0),
                (
                    "kubelet_running_containers{container_state=\"running\"}",
                    3.0,
                ),
                ("kubelet_pod_start_sli_duration_seconds_count", 2.0),
                (
                    "kubelet_started_containers_total{container_type=\"container\"}",
                    3.0,
                ),
                // The CRI calls, timed by operation type, and the volume
                // set-ups (each pod's service-account token volume).
                (
                    "kubelet_runtime_operations_duration_seconds_count{operation_type=\"run_podsandbox\"}",
                    2.0,
                ),
                (
                    "kubelet_runtime_operations_total{operation_type=\"start_container\"}",
                    3.0,
                ),
                (
                    "storage_operation_duration_seconds_count{volume_plugin=\"kubernetes.io/projected\",operation_name=\"volume_mount\",status=\"success\",migrated=\"false\"}",
                    2.0,
                ),
            ]
            .iter()
            .all(|(name, least)| metric(&text, name).is_some_and(|n| n >= *least))
        },
    );
    let ghost = run(
        &c,
        Transport::Websocket,
        &["get", "--raw", "/api/v1/nodes/ghost/proxy/metrics"],
        None,
    );
    assert!(
        !ghost.status.success() && stderr(&ghost).contains("connection refused"),
        "{}",
        stderr(&ghost)
    );
    let nobody = run(
        &c,
        Transport::Websocket,
        &["get", "--raw", "/api/v1/nodes/nobody/proxy/metrics"],
        None,
    );
    assert!(
        stderr(&nobody).contains("nodes \"nobody\" not found"),
        "{}",
        stderr(&nobody)
    );
}
