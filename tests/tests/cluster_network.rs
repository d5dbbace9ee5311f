//! Pod networking and services with real pods, end to end: a 3-node
//! namespace cluster (etcd, API server, scheduler, controllers, and per node
//! containerd + `baton-node run` with its eBPF dataplane), driven only with
//! the real kubectl. One cluster serves every scenario, in order.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use baton_e2e::Stack;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels: {app: web}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: echo
        image: baton.local/echo:1
        imagePullPolicy: IfNotPresent
        ports:
        - {name: http, containerPort: 8080}
        - {name: dns, containerPort: 5353, protocol: UDP}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: dns, port: 53, targetPort: dns, protocol: UDP}
"#;

/// A pod pinned to `node` beside the Deployment's pod there.
fn neighbour(node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: neighbour
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
  containers:
  - name: echo
    image: baton.local/echo:1
    imagePullPolicy: IfNotPresent
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
"#
    )
}

struct WebPod {
    name: String,
    ip: Ipv4Addr,
    node: String,
}

fn web_pods(c: &Stack) -> Vec<WebPod> {
    let out = c.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            Some(WebPod {
                name: f.next()?.to_owned(),
                ip: f.next()?.parse().ok()?,
                node: f.next()?.to_owned(),
            })
        })
        .collect()
}

/// `kubectl exec <pod> -- sh -c <script>`; returns stdout, panics with
/// stderr on failure.
fn exec(c: &Stack, pod: &str, script: &str) -> String {
    let out = c.kubectl(&["exec", pod, "--", "sh", "-c", script]);
    if !out.status.success() {
        let routes: Vec<String> = c
            .cluster
            .nodes()
            .iter()
            .map(|n| {
                let table = n.netns().run("ip", ["-4", "route"], Duration::from_secs(5));
                format!(
                    "{}:\n{}",
                    n.name(),
                    table.map(|o| o.stdout).unwrap_or_default()
                )
            })
            .collect();
        panic!(
            "in {pod}: {script}: {}\nroutes:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            routes.join("\n"),
            c.logs()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pods_and_services_work_across_nodes_with_real_pods() {
    let c = Stack::start(3);

    // A Deployment spread over the three nodes, 3/3 Ready.
    c.apply(DEPLOYMENT);
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert_eq!(
        c.get("deployment", "web", "{.status.readyReplicas}"),
        "3",
        "{}",
        c.kubectl_ok(&["get", "pods", "-o", "wide"])
    );
    let pods = web_pods(&c);
    let wide = c.kubectl_ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(pods.len(), 3, "{wide}");
    for node in c.cluster.nodes() {
        let pod = pods
            .iter()
            .find(|p| p.node == node.name())
            .unwrap_or_else(|| panic!("no web pod on {}: {wide}", node.name()));
        assert!(
            node.pod_cidr().contains(&pod.ip),
            "{} on {} is outside {}",
            pod.ip,
            node.name(),
            node.pod_cidr()
        );
        assert!(wide.contains(&pod.ip.to_string()), "{wide}");
    }
    let on = |index: usize| {
        let name = c.cluster.node(index).unwrap().name();
        pods.iter().find(|p| p.node == name).unwrap()
    };
    let (p1, p2, p3) = (on(1), on(2), on(3));

    // Pod to pod across nodes over TCP, UDP and ICMP; the receiver sees the
    // sender's own pod address (no NAT between pods).
    let body = exec(&c, &p1.name, &format!("wget -qO- http://{}:8080/", p2.ip));
    assert!(body.contains(&format!("\"client\":\"{}:", p1.ip)), "{body}");
    assert!(
        body.contains(&format!("\"hostname\":\"{}\"", p2.name)),
        "{body}"
    );
    let udp = exec(&c, &p1.name, &format!("/echo udp {}:5353 ping-udp", p3.ip));
    // The answer comes from the pod itself and names the sender's address.
    assert!(
        udp.starts_with(&format!("from {}:5353: {}:", p3.ip, p1.ip)),
        "{udp:?}"
    );
    assert!(udp.contains("ping-udp"), "{udp:?}");
    let ping = exec(&c, &p2.name, &format!("ping -c 2 -W 2 {}", p3.ip));
    assert!(ping.contains("2 packets received"), "{ping}");
    // A pod reaches itself on localhost: the sandbox's `lo` is up (the
    // `loopback` CNI plugin, which baton-cni also is).
    let body = exec(&c, &p1.name, "wget -qO- http://127.0.0.1:8080/");
    assert!(body.contains("\"client\":\"127.0.0.1:"), "{body}");

    // Same node: a second pod on node 1 reaches the Deployment's pod there.
    let node1 = c.cluster.node(1).unwrap().name().to_owned();
    c.apply(&neighbour(&node1));
    let neighbour_ip = c.wait_ready("neighbour", Duration::from_secs(60));
    let body = exec(
        &c,
        "neighbour",
        &format!("wget -qO- http://{}:8080/", p1.ip),
    );
    assert!(
        body.contains(&format!("\"client\":\"{neighbour_ip}:")),
        "{body}"
    );

    // The Service: ClusterIP from a pod reaches every backend (socket-level
    // load balancing), over TCP and UDP.
    let cluster_ip = c.get("service", "web", "{.spec.clusterIP}");
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        let body = exec(
            &c,
            "neighbour",
            &format!("wget -qO- http://{cluster_ip}/ && echo"),
        );
        for pod in &pods {
            if body.contains(&format!("\"hostname\":\"{}\"", pod.name)) {
                seen.insert(pod.name.clone());
            }
        }
        if seen.len() == pods.len() {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        3,
        "ClusterIP {cluster_ip} answered only from {seen:?}"
    );
    let udp = exec(
        &c,
        "neighbour",
        &format!("/echo udp {cluster_ip}:53 via-service"),
    );
    // Socket-level LB: the reply shows the service address, not the pod's.
    assert!(
        udp.starts_with(&format!("from {cluster_ip}:53: {neighbour_ip}:")),
        "{udp:?}"
    );
    assert!(udp.contains("via-service"), "{udp:?}");

    // NodePort from outside the cluster, on every node's address.
    let node_port = c.get(
        "service",
        "web",
        "{.spec.ports[?(@.name==\"http\")].nodePort}",
    );
    for node in c.cluster.nodes() {
        let addr = format!("{}:{node_port}", node.address());
        let body = baton_e2e::stack::http_get(c.cluster.client().netns(), &addr, "/")
            .unwrap_or_else(|e| panic!("NodePort {addr} from the client: {e}"));
        assert!(
            pods.iter()
                .any(|p| body.contains(&format!("\"hostname\":\"{}\"", p.name))),
            "{addr}: {body}"
        );
    }

    // A pod that stops being ready leaves the service: ClusterIP traffic goes
    // only to the others.
    exec(&c, &p3.name, "touch /tmp/unhealthy");
    c.wait(Duration::from_secs(30), "web pod 3 not ready", |c| {
        c.get(
            "pod",
            &p3.name,
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "False"
    });
    // Endpoint change → datapath: give the proxy a moment, then 20 requests
    // must all avoid the unready pod.
    std::thread::sleep(Duration::from_secs(1));
    let bodies = exec(
        &c,
        "neighbour",
        &format!("for i in $(seq 20); do wget -qO- http://{cluster_ip}/; echo; done"),
    );
    assert_eq!(
        bodies.lines().filter(|l| !l.is_empty()).count(),
        20,
        "{bodies}"
    );
    assert!(
        !bodies.contains(&format!("\"hostname\":\"{}\"", p3.name)),
        "unready pod still served: {bodies}"
    );

    // A host-network pod is a Service backend at its node's address: its
    // podIP is the node's, its EndpointSlice lists it, and a pod on
    // another node reaches it through the ClusterIP.
    c.apply(HOST_NETWORK_BACKEND);
    c.wait_ready("host-web", Duration::from_secs(60));
    let node2 = c
        .cluster
        .nodes()
        .iter()
        .find(|n| n.name() == "baton-node-2")
        .expect("node 2")
        .address()
        .to_string();
    assert_eq!(c.get("pod", "host-web", "{.status.podIP}"), node2);
    c.wait(Duration::from_secs(30), "host-web's endpoint", |c| {
        c.kubectl_ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=host-web",
            "-o",
            "jsonpath={.items[*].endpoints[*].addresses[*]}",
        ]) == node2
    });
    let host_ip = c.get("service", "host-web", "{.spec.clusterIP}");
    let body = exec(
        &c,
        "neighbour",
        &format!("wget -qO- http://{host_ip}/host && echo"),
    );
    assert!(
        body.contains("\"path\":\"/host\"")
            && body.contains(&format!("\"client\":\"{neighbour_ip}:")),
        "{body}"
    );

    // A pod reaching an address outside the cluster (the outside client)
    // leaves with its node's address, and the answers find their way back
    // to the pod, over TCP and UDP. (The host-network backend above, on
    // another node, saw the pod's own address: nodes are not outside.)
    let client = c.cluster.client();
    let client_addr = client.address();
    let node1_addr = c.cluster.node(1).unwrap().address();
    let (tcp, udp) = client
        .netns()
        .enter(move || {
            (
                std::net::TcpListener::bind((client_addr, 0)),
                std::net::UdpSocket::bind((client_addr, 0)),
            )
        })
        .expect("the outside client's namespace");
    let (tcp, udp) = (tcp.expect("a TCP listener"), udp.expect("a UDP socket"));
    let (tcp_port, udp_port) = (
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    );
    let tcp_server = std::thread::spawn(move || answer_tcp_once(&tcp));
    let body = exec(
        &c,
        &p1.name,
        &format!("wget -qO- http://{client_addr}:{tcp_port}/"),
    );
    let seen = tcp_server.join().unwrap().expect("the pod's connection");
    assert_eq!(seen.ip(), std::net::IpAddr::V4(node1_addr), "TCP source");
    assert_eq!(body.trim(), format!("you are {seen}"));
    let udp_server = std::thread::spawn(move || answer_udp_once(&udp));
    let answer = exec(
        &c,
        &p1.name,
        &format!("/echo udp {client_addr}:{udp_port} hello"),
    );
    let seen = udp_server.join().unwrap().expect("the pod's datagram");
    assert_eq!(seen.ip(), std::net::IpAddr::V4(node1_addr), "UDP source");
    assert!(answer.contains(&format!("you are {seen}")), "{answer:?}");

    c.assert_no_bridge_or_netfilter_rules();
}

/// Accepts one connection (within 30 s), answers an HTTP request with the
/// address it came from, and returns that address.
fn answer_tcp_once(listener: &std::net::TcpListener) -> std::io::Result<std::net::SocketAddr> {
    use std::io::{Read as _, Write as _};
    listener.set_nonblocking(true)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (mut conn, peer) = loop {
        match listener.accept() {
            Ok(accepted) => break accepted,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = [0u8; 2048];
    let _ = conn.read(&mut request)?;
    write!(
        conn,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nyou are {peer}\n"
    )?;
    Ok(peer)
}

/// Answers one datagram (within 30 s) with the address it came from, and
/// returns that address.
fn answer_udp_once(socket: &std::net::UdpSocket) -> std::io::Result<std::net::SocketAddr> {
    socket.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut datagram = [0u8; 2048];
    let (_, peer) = socket.recv_from(&mut datagram)?;
    socket.send_to(format!("you are {peer}").as_bytes(), peer)?;
    Ok(peer)
}

/// An echo server in node 2's own network namespace (ports of its own, away
/// from the node's), behind a Service.
const HOST_NETWORK_BACKEND: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: host-web
  labels: {app: host-web}
spec:
  nodeName: baton-node-2
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: baton.local/echo:1
    env:
    - {name: HTTP_PORT, value: "18080"}
    - {name: TCP_PORT, value: "19000"}
    - {name: UDP_PORT, value: "15353"}
    ports: [{name: http, containerPort: 18080}]
    readinessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: host-web}
spec:
  selector: {app: host-web}
  ports: [{port: 80, targetPort: http}]
"#;
