//! A namespace cluster for the service proxy's end-to-end tests: etcd and
//! the API server in the control namespace; per node a Node object (podCIDR
//! and InternalIP, as its kubelet registers it), a private bpffs, a cgroup
//! v2 subtree and `baton-node proxy`, which routes the other nodes'
//! podCIDRs from those Node objects; "pods" are
//! network namespaces wired by the real baton-cni with the project's echo
//! server inside. Services are created with the real kubectl; their
//! EndpointSlices are written by the tests.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use baton_e2e::control_plane::{self, ControlPlane};
use baton_e2e::netns_pods::{self, NetnsPod, PodNetwork};
use baton_e2e::node_cgroup::NodeCgroups;
use baton_e2e::probe::Probe;
use baton_e2e::{Binaries, Cluster, ClusterSpec, Netns, ProcessSpec};

/// Ports every pod's echo server listens on.
pub const HTTP_PORT: u16 = 8080;
pub const TCP_PORT: u16 = 9000;
pub const UDP_PORT: u16 = 5353;
/// The proxy's metrics and health ports on each node address.
pub const METRICS_PORT: u16 = 10249;
pub const HEALTHZ_PORT: u16 = 10256;

/// A pod of the cluster, by name.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub name: String,
    pub ip: Ipv4Addr,
    pub node: usize,
}

/// The running cluster. Fields drop in order: pods (CNI DEL), node cgroups
/// (what is left in them killed), then the cluster itself.
pub struct ProxyCluster {
    pub pods: Vec<NetnsPod>,
    pub cgroups: NodeCgroups,
    pub plane: ControlPlane,
    pub binaries: Binaries,
    pub echo: PathBuf,
    pub networks: Vec<PodNetwork>,
    pub pin_dirs: Vec<PathBuf>,
    /// Extra flags of each node's baton-node (index 0 = node 1).
    pub node_flags: Vec<Vec<String>>,
    pub cluster: Cluster,
}

impl ProxyCluster {
    /// A cluster of `nodes` nodes with the proxy running and synced on
    /// each; `node_flags(i)` adds flags to node i's baton-node.
    pub fn start(nodes: usize, node_flags: impl Fn(usize) -> Vec<String>) -> Self {
        baton_e2e::log_to_test_output();
        baton_e2e::assert_root();
        let binaries = Binaries::beside_current_exe();
        for name in ["baton-control", "baton-node", "baton-cni"] {
            binaries.path(name).expect("binaries built");
        }
        let echo = netns_pods::echo_server(&binaries).expect("building the echo server");
        let cluster = Cluster::create(ClusterSpec::new(nodes)).expect("creating the cluster");
        let state = cluster.run_dir().join("control-plane");
        let plane = ControlPlane::layout(&cluster, &state, state.join("admin.kubeconfig"));
        control_plane::ensure_etcd(&cluster, &binaries, &plane).expect("etcd");
        control_plane::ensure_apiserver(&cluster, &binaries, &plane).expect("API server");
        let cgroups = NodeCgroups::create(&cluster).expect("node cgroups");
        let plugin = binaries.path("baton-cni").expect("baton-cni");
        let mut networks = Vec::new();
        let mut pin_dirs = Vec::new();
        for node in cluster.nodes() {
            pin_dirs.push(cluster.mount_bpffs(node.index()).expect("bpffs"));
            networks.push(PodNetwork::for_node(node, plugin.clone()));
        }
        let this = Self {
            pods: Vec::new(),
            cgroups,
            plane,
            binaries,
            echo,
            networks,
            pin_dirs,
            node_flags: (1..=nodes).map(node_flags).collect(),
            cluster,
        };
        for index in 1..=nodes {
            this.register_node(index);
        }
        for index in 1..=nodes {
            this.start_proxy(index);
        }
        for index in 1..=nodes {
            this.wait_synced(index, Duration::from_secs(60));
        }
        for index in 1..=nodes {
            this.wait_pod_routes(index, Duration::from_secs(30));
        }
        this
    }

    /// Creates node `index`'s Node object as its kubelet registers it:
    /// podCIDR in the spec, InternalIP in the status.
    fn register_node(&self, index: usize) {
        let node = self.cluster.node(index).unwrap();
        let cidr = node.pod_cidr();
        self.apply(&format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {}\n  labels:\n    kubernetes.io/hostname: {}\nspec:\n  podCIDR: {cidr}\n  podCIDRs: [{cidr}]\n",
            node.name(),
            node.name()
        ));
        let status = format!(
            r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"{}"}},{{"type":"Hostname","address":"{}"}}]}}}}"#,
            node.address(),
            node.name()
        );
        self.kubectl_ok(
            &[
                "patch",
                "node",
                node.name(),
                "--subresource=status",
                "--type=merge",
                "-p",
                &status,
            ],
            None,
        );
    }

    /// Waits until node `index` routes every other node's podCIDR to that
    /// node's address, with the routes its baton-node keeps.
    pub fn wait_pod_routes(&self, index: usize, within: Duration) {
        let netns = self.node_netns(index);
        let wanted: Vec<String> = self
            .cluster
            .nodes()
            .iter()
            .filter(|n| n.index() != index)
            .map(|n| format!("{} via {} dev eth0", n.pod_cidr(), n.address()))
            .collect();
        self.wait(within, &format!("pod routes on node {index}"), || {
            let table = run_in(&netns, "ip", &["-4", "route", "show", "proto", "156"]).stdout;
            wanted.iter().all(|route| table.contains(route.as_str()))
        });
    }

    pub fn node_ip(&self, index: usize) -> Ipv4Addr {
        self.cluster.node(index).unwrap().address()
    }

    pub fn node_netns(&self, index: usize) -> Netns {
        self.cluster.node(index).unwrap().netns().clone()
    }

    fn proxy_name(index: usize) -> String {
        format!("baton-node-{index}")
    }

    /// Starts (again) node `index`'s `baton-node proxy`.
    pub fn start_proxy(&self, index: usize) {
        let node = self.cluster.node(index).unwrap();
        let ip = node.address();
        let spec = ProcessSpec::new(
            Self::proxy_name(index),
            self.binaries.path("baton-node").unwrap(),
        )
        .arg("proxy")
        .arg(format!("--node-name={}", node.name()))
        .arg(format!("--node-ip={ip}"))
        .arg(format!("--kubeconfig={}", self.plane.kubeconfig.display()))
        .arg(format!("--pin-dir={}", self.pin_dirs[index - 1].display()))
        .arg(format!(
            "--socket-lb-cgroup={}",
            self.cgroups.node_dir(index).display()
        ))
        .arg("--uplink=eth0")
        .arg(format!(
            "--cni-data-dir={}",
            self.networks[index - 1].data_dir.display()
        ))
        .arg(format!("--metrics-bind-address={ip}:{METRICS_PORT}"))
        .arg(format!("--healthz-bind-address={ip}:{HEALTHZ_PORT}"))
        .arg(format!(
            "--proxy-state-dir={}",
            node.dir().join("proxy").display()
        ))
        .args(&self.node_flags[index - 1])
        .env("RUST_LOG", "info,kube_runtime=warn,kube_client=warn");
        self.cluster
            .spawn(node.netns(), spec)
            .expect("starting baton-node proxy");
    }

    /// SIGKILLs node `index`'s baton-node.
    pub fn kill_proxy(&self, index: usize) {
        self.cluster
            .kill_process(&Self::proxy_name(index))
            .unwrap_or_else(|err| panic!("killing baton-node {index}: {err}"));
    }

    /// Waits until node `index`'s proxy reports healthy (its initial sync
    /// is done).
    pub fn wait_synced(&self, index: usize, within: Duration) {
        let addr = SocketAddr::from((self.node_ip(index), HEALTHZ_PORT));
        let netns = self.node_netns(index);
        self.wait(within, &format!("baton-node-{index} healthy"), || {
            http_get(&netns, addr, "/healthz").is_ok_and(|(status, _)| status == 200)
        });
    }

    /// node `index`'s Prometheus metrics.
    pub fn metrics(&self, index: usize) -> String {
        let addr = SocketAddr::from((self.node_ip(index), METRICS_PORT));
        http_get(&self.node_netns(index), addr, "/metrics")
            .expect("metrics")
            .1
    }

    /// The value of the sample `name{labels}` (exactly as rendered) on
    /// node `index`, or 0.
    pub fn metric(&self, index: usize, sample: &str) -> f64 {
        metric_value(&self.metrics(index), sample)
    }

    /// Creates a pod named `name` on node `node` running the echo server.
    pub fn add_pod(&mut self, node: usize, name: &str) -> PodInfo {
        let mut pod = NetnsPod::create(&self.cluster, node, name, &self.networks[node - 1])
            .expect("creating a pod");
        let cgroup = self.cgroups.pod_dir(node, name).expect("pod cgroup");
        let log = self.cluster.logs_dir().join(format!("pod-{name}.log"));
        pod.start(
            &self.echo,
            &[
                "--http-port",
                &HTTP_PORT.to_string(),
                "--tcp-port",
                &TCP_PORT.to_string(),
                "--udp-port",
                &UDP_PORT.to_string(),
            ],
            &[("POD_IP", pod.ip.to_string())],
            Some(&cgroup),
            &log,
        )
        .expect("starting the echo server");
        baton_e2e::ready::wait_tcp(
            &pod.netns,
            SocketAddr::from((pod.ip, HTTP_PORT)),
            Duration::from_secs(20),
            None,
        )
        .expect("echo server listening");
        let info = PodInfo {
            name: name.to_owned(),
            ip: pod.ip,
            node,
        };
        self.pods.push(pod);
        info
    }

    /// Removes pod `name` (CNI DEL, server stopped).
    pub fn remove_pod(&mut self, name: &str) {
        if let Some(pos) = self.pods.iter().position(|p| p.name == name) {
            self.pods.remove(pos).remove().expect("removing a pod");
        }
    }

    /// A client process in node `index`'s host namespace and cgroup.
    pub fn host_probe(&self, index: usize) -> Probe {
        Probe::spawn(&self.node_netns(index), Some(&self.cgroups.host_dir(index))).expect("probe")
    }

    /// A client process inside pod `name` (its namespace and cgroup).
    pub fn pod_probe(&self, name: &str) -> Probe {
        let pod = self.pods.iter().find(|p| p.name == name).expect("pod");
        let cgroup = self.cgroups.pod_dir(pod.node, name).expect("pod cgroup");
        Probe::spawn(&pod.netns, Some(&cgroup)).expect("probe")
    }

    /// A client process in the outside client's namespace.
    pub fn client_probe(&self) -> Probe {
        Probe::spawn(self.cluster.client().netns(), None).expect("probe")
    }

    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.plane.kubectl_runner().run(args, stdin)
    }

    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.plane.kubectl_runner().run_ok(args, stdin)
    }

    pub fn apply(&self, manifest: &str) {
        self.kubectl_ok(&["apply", "-f", "-"], Some(manifest));
    }

    /// A jsonpath of one object.
    pub fn get(&self, kind: &str, name: &str, jsonpath: &str) -> String {
        self.kubectl_ok(
            &["get", kind, name, "-o", &format!("jsonpath={jsonpath}")],
            None,
        )
    }

    /// The cluster IP of service `name`.
    pub fn cluster_ip(&self, name: &str) -> Ipv4Addr {
        self.get("service", name, "{.spec.clusterIP}")
            .parse()
            .expect("a cluster IP")
    }

    /// The nodePort of port `port` of service `name`.
    pub fn node_port(&self, name: &str, port: &str) -> u16 {
        self.get(
            "service",
            name,
            &format!("{{.spec.ports[?(@.name==\"{port}\")].nodePort}}"),
        )
        .parse()
        .expect("a nodePort")
    }

    /// Polls `check` until it holds; panics with the proxies' log tails.
    pub fn wait(&self, within: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out after {within:?} waiting for {what}\n{}",
            self.logs()
        );
    }

    /// The tails of every process log.
    pub fn logs(&self) -> String {
        self.cluster
            .processes()
            .iter()
            .filter(|p| p.name.starts_with("baton-node"))
            .map(|p| format!("--- {}:\n{}", p.name, baton_e2e::ready::log_tail(&p.log)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// An EndpointSlice of service `service` (written as the EndpointSlice
/// controller would) with `ports` (name, port, protocol) and endpoints
/// (pod, ready, serving, terminating).
pub fn slice_manifest(
    name: &str,
    service: &str,
    ports: &[(&str, u16, &str)],
    endpoints: &[(&PodInfo, bool, bool, bool)],
) -> String {
    let ports: Vec<serde_json::Value> = ports
        .iter()
        .map(|(name, port, protocol)| serde_json::json!({"name": name, "port": port, "protocol": protocol}))
        .collect();
    let endpoints: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|(pod, ready, serving, terminating)| {
            serde_json::json!({
                "addresses": [pod.ip.to_string()],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "nodeName": format!("baton-node-{}", pod.node),
                "targetRef": {"kind": "Pod", "namespace": "default", "name": pod.name},
            })
        })
        .collect();
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "e2e.baton.dev",
            },
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    })
    .to_string()
}

/// Ready endpoints of `pods`.
pub fn ready(pods: &[&PodInfo]) -> Vec<(PodInfo, bool, bool, bool)> {
    pods.iter()
        .map(|p| ((*p).clone(), true, true, false))
        .collect()
}

/// `manifest_endpoints` as the borrowed form [`slice_manifest`] takes.
pub fn borrowed(endpoints: &[(PodInfo, bool, bool, bool)]) -> Vec<(&PodInfo, bool, bool, bool)> {
    endpoints
        .iter()
        .map(|(pod, a, b, c)| (pod, *a, *b, *c))
        .collect()
}

/// The value of `sample` (a metric name with its labels, as rendered) in
/// Prometheus text, or 0.
pub fn metric_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(sample)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or(0.0)
}

/// One HTTP/1.1 GET from inside `netns`: (status, body).
pub fn http_get(netns: &Netns, addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let path = path.to_owned();
    netns
        .enter(move || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            Ok((status, body.to_owned()))
        })
        .map_err(std::io::Error::other)?
}

/// The pod that answered an echo-server HTTP reply (its `podIP`).
pub fn answered_by(body: &str) -> Option<Ipv4Addr> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["podIP"].as_str()?.parse().ok()
}

/// The client address an echo-server HTTP reply saw.
pub fn seen_client(body: &str) -> Option<Ipv4Addr> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["client"].as_str()?.split(':').next()?.parse().ok()
}

/// `vip:port`.
pub fn sock(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// Counts how often each pod answered.
pub fn tally(ips: impl IntoIterator<Item = Ipv4Addr>) -> BTreeMap<Ipv4Addr, usize> {
    let mut out = BTreeMap::new();
    for ip in ips {
        *out.entry(ip).or_default() += 1;
    }
    out
}

/// Runs `program args` in `netns` to completion.
pub fn run_in(netns: &Netns, program: &str, args: &[&str]) -> baton_e2e::Output {
    netns
        .run(program, args, Duration::from_secs(20))
        .expect("running a command")
}
