//! The benchmark's cluster: the harness's namespace cluster with the whole
//! control plane and two nodes, each with its containerd and `baton-node
//! run` (release builds):
//!
//! - node 1 runs baton's eBPF dataplane and service proxy (pins in a
//!   private bpffs, socket LB on the node's cgroup subtree, tc on its
//!   uplink and pod veths);
//! - node 2 runs the same agent without a dataplane (kubelet and CNI only,
//!   plain kernel routing): the kube-proxy baseline's iptables rules are
//!   loaded there by the benchmark, so the two never share a node.
//!
//! Pods come from Deployments of the echo image applied with the real
//! kubectl; load generators and probes run in a pod's network namespace,
//! a node's host namespace or the outside client's, and — where socket LB
//! should see them — in a cgroup below the node's subtree.

use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use baton_e2e::control_plane::{self, Component, ControlPlane};
use baton_e2e::node_cgroup::{NodeCgroups, cgroup_exec_args, node_cgroup2_dir};
use baton_e2e::nodes::{self, NodeAgentPaths};
use baton_e2e::{Binaries, Cluster, ClusterSpec, Node, Route, Stack, addressing};

/// The node with baton's dataplane.
pub const BATON: usize = 1;
/// The node of the kube-proxy baseline (no baton dataplane).
pub const IPTABLES: usize = 2;
/// The baton node's metrics endpoint (inside its namespace).
pub const METRICS_ADDR: &str = "127.0.0.1:10249";

/// The CPU the load generator runs on, and the one the echo servers run on
/// (the last): with client and server each on a core of their own, a run
/// does not depend on how the scheduler happened to place them. `None` on
/// a single-CPU machine.
pub const CLIENT_CPU: usize = 0;
pub static SERVER_CPU: std::sync::LazyLock<Option<usize>> = std::sync::LazyLock::new(|| {
    std::thread::available_parallelism()
        .ok()
        .map(|n| n.get())
        .filter(|&n| n > 1)
        .map(|n| n - 1)
});

/// The running cluster; dropping it deletes the pods through the API,
/// stops everything and removes namespaces, cgroups, mounts and routes.
pub struct BenchCluster {
    // Dropped first: drains pods, then tears the namespaces down.
    pub stack: Stack,
    cgroups: NodeCgroups,
    /// The baton node's bpffs pin directory.
    pub pin_dir: PathBuf,
}

/// A pod of the benchmark.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub name: String,
    pub ip: Ipv4Addr,
    /// Its network namespace (containerd's bind mount).
    pub netns: PathBuf,
    pub node: usize,
}

/// The pods: echo servers A and B on the baton node (B is the other
/// endpoint of the propagation service), C on the baseline node, and an
/// idle pod per node whose namespace the load generators use.
#[derive(Debug, Clone)]
pub struct Pods {
    pub echo_a: PodInfo,
    pub echo_b: PodInfo,
    pub echo_c: PodInfo,
    pub client_baton: PodInfo,
    pub client_iptables: PodInfo,
}

/// Where a client process runs.
#[derive(Debug, Clone)]
pub enum Place {
    /// The outside client's namespace.
    Outside,
    /// A node's host namespace, in the node's cgroup subtree.
    Host(usize),
    /// A pod's namespace, in the node's cgroup subtree (socket LB sees it
    /// on the baton node).
    Pod(PodInfo),
    /// A pod's namespace, outside every socket-LB cgroup: its packets meet
    /// the per-packet (tc) service translation on the pod's veth.
    PodWithoutSocketLb(PodInfo),
}

fn nsenter(netns: &Path) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display())).arg("--");
    cmd
}

impl BenchCluster {
    /// Brings the cluster up with the binaries in `bin_dir` and waits until
    /// both nodes are Ready.
    pub fn start(bin_dir: &Path) -> Result<Self> {
        let binaries = Binaries::in_dir(bin_dir);
        let archives = nodes::standard_images()?;
        let cluster = Cluster::create(ClusterSpec::new(2))?;
        let state = cluster.run_dir().join("control");
        let plane = ControlPlane::layout(&cluster, &state, state.join("admin.kubeconfig"));
        control_plane::ensure_etcd(&cluster, &binaries, &plane)?;
        control_plane::ensure_apiserver(&cluster, &binaries, &plane)?;
        for component in [Component::Scheduler, Component::Controllers] {
            control_plane::ensure_component(&cluster, &binaries, &plane, component)?;
        }
        let cgroups = NodeCgroups::create(&cluster)?;
        let pin_dir = cluster.mount_bpffs(BATON)?;
        let mut containerds = Vec::new();
        for node in cluster.nodes() {
            let (cd, _) = nodes::ensure_containerd(&cluster, node, &archives)?;
            let paths = NodeAgentPaths::for_node(node);
            nodes::join(&binaries, &plane, node, &paths)?;
            let baton = node.index() == BATON;
            let mut spec = nodes::agent_spec(&binaries, node, &cd, &paths, baton)?;
            if baton {
                ensure!(
                    paths.pin_dir == pin_dir,
                    "the pins belong in {}",
                    pin_dir.display()
                );
                spec = spec
                    .arg(format!(
                        "--socket-lb-cgroup={}",
                        node_cgroup2_dir(&cluster, node).display()
                    ))
                    .arg("--uplink=eth0")
                    .arg(format!("--metrics-bind-address={METRICS_ADDR}"));
            }
            let record = cluster.spawn(node.netns(), spec)?;
            ensure!(
                node.index() == BATON || !record.command.contains("--pin-dir"),
                "the baseline node must run without a baton dataplane, but its agent got {}",
                record.command
            );
            containerds.push(cd);
        }
        nodes::wait_nodes_ready(&plane, 2, Duration::from_secs(120))?;
        let stack = Stack {
            kubeconfig: plane.kubeconfig.clone(),
            pki: plane.cert_dir.clone(),
            plane,
            containerds,
            binaries,
            cluster,
        };
        let bench = Self {
            stack,
            cgroups,
            pin_dir,
        };
        // kube-proxy's nodes forward (its rules DNAT forwarded traffic);
        // baton-node enables forwarding on its own node itself.
        bench.sysctl_netns(
            &bench.node(IPTABLES).netns().path(),
            &["net.ipv4.ip_forward=1"],
        )?;
        // A kube-proxy node reaches ClusterIPs from its host namespace
        // through its default route: the route lookup of a local connect
        // comes before the OUTPUT chain's DNAT. The node namespaces have no
        // default route, so the baseline node gets one for the service range
        // via the host's fabric address, where the host's safety route drops
        // anything that escaped translation.
        let via = bench.cluster().addressing().host_address();
        bench
            .node(IPTABLES)
            .netns()
            .add_route(&Route::via(addressing::service_cidr(), via))
            .context("service route on the baseline node")?;
        // The outside client reaches the baton node's pods through that
        // node, as on a routed network: the direct path NodePort is paired
        // with.
        bench
            .cluster()
            .client()
            .netns()
            .add_route(&Route::via(
                addressing::node_pod_cidr(BATON),
                bench.node(BATON).address(),
            ))
            .context("pod route on the outside client")?;
        for path in [
            bench.cluster().client().netns().path(),
            bench.node(BATON).netns().path(),
            bench.node(IPTABLES).netns().path(),
        ] {
            bench.sysctl_netns(&path, &["net.ipv4.tcp_tw_reuse=1"])?;
        }
        Ok(bench)
    }

    pub fn cluster(&self) -> &Cluster {
        &self.stack.cluster
    }

    pub fn node(&self, index: usize) -> &Node {
        self.cluster().node(index).expect("the bench has two nodes")
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.stack.kubeconfig
    }

    /// The log files of every process (for a failure's report).
    pub fn logs_dir(&self) -> PathBuf {
        self.cluster().logs_dir().to_path_buf()
    }

    /// `sysctl -w` inside a network namespace (only `net.*` keys, which
    /// are per namespace).
    pub fn sysctl_netns(&self, netns: &Path, settings: &[&str]) -> Result<()> {
        for setting in settings {
            ensure!(
                setting.starts_with("net."),
                "{setting} is not per namespace"
            );
            let out = nsenter(netns)
                .args(["sysctl", "-q", "-w", setting])
                .output()
                .context("running sysctl")?;
            ensure!(
                out.status.success(),
                "sysctl {setting} in {}: {}",
                netns.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Applies the Deployments and client Pods and waits until every pod
    /// is Ready.
    pub fn deploy_pods(&self) -> Result<Pods> {
        let deployment = |name: &str, node: usize| {
            format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, labels: {{bench: dataplane}}}}\n\
                 spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    \
                 metadata: {{labels: {{app: {name}, bench: dataplane}}}}\n    spec:\n      \
                 nodeName: baton-node-{node}\n      terminationGracePeriodSeconds: 1\n      \
                 containers:\n      - name: echo\n        image: baton.local/echo:1\n        \
                 readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}\n"
            )
        };
        let pod = |name: &str, node: usize| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {name}, bench: dataplane}}}}\n\
                 spec:\n  nodeName: baton-node-{node}\n  terminationGracePeriodSeconds: 1\n  \
                 containers:\n  - name: client\n    image: baton.local/echo:1\n    \
                 readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}\n"
            )
        };
        let manifest = [
            deployment("echo-a", BATON),
            deployment("echo-b", BATON),
            deployment("echo-c", IPTABLES),
            pod("client-baton", BATON),
            pod("client-iptables", IPTABLES),
        ]
        .concat();
        let out = self.stack.kubectl_stdin(&["apply", "-f", "-"], &manifest);
        ensure!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let pods = self.ready_pods()?;
            let find = |app: &str| pods.iter().find(|(a, _)| a == app).map(|(_, p)| p.clone());
            if let (Some(a), Some(b), Some(c), Some(cb), Some(ci)) = (
                find("echo-a"),
                find("echo-b"),
                find("echo-c"),
                find("client-baton"),
                find("client-iptables"),
            ) {
                let pods = Pods {
                    echo_a: a,
                    echo_b: b,
                    echo_c: c,
                    client_baton: cb,
                    client_iptables: ci,
                };
                for client in [&pods.client_baton, &pods.client_iptables] {
                    self.sysctl_netns(&client.netns, &["net.ipv4.tcp_tw_reuse=1"])?;
                }
                // The servers close first, so they hold the TIME_WAIT
                // sockets. The paths share a server and clients reuse their
                // ports within seconds, but reach the server through other
                // addresses (pod IP, ClusterIP translated per packet,
                // masqueraded): a SYN meeting a TIME_WAIT socket left by
                // another path carries another timestamp base, is refused,
                // and the connection waits 1 s for the SYN to be resent.
                // That measures the benchmark's path order, not a path, so
                // the servers keep no TIME_WAIT sockets.
                for server in [&pods.echo_a, &pods.echo_b, &pods.echo_c] {
                    self.sysctl_netns(&server.netns, &["net.ipv4.tcp_max_tw_buckets=0"])?;
                    if let Some(cpu) = *SERVER_CPU {
                        self.pin_pod(server, cpu)?;
                    }
                }
                return Ok(pods);
            }
            ensure!(
                Instant::now() < deadline,
                "the benchmark's pods did not become Ready; logs in {}",
                self.logs_dir().display()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Pins every thread of the processes in `pod`'s network namespace
    /// (its containers) to `cpu`; threads they start later inherit it.
    fn pin_pod(&self, pod: &PodInfo, cpu: usize) -> Result<()> {
        let netns = std::fs::metadata(&pod.netns)
            .with_context(|| format!("{}", pod.netns.display()))?
            .ino();
        let mut pinned = 0;
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(ns) = std::fs::metadata(entry.path().join("ns/net")) else {
                continue;
            };
            if ns.ino() != netns {
                continue;
            }
            let status = Command::new("taskset")
                .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
                .stdout(std::process::Stdio::null())
                .status()
                .context("running taskset")?;
            ensure!(status.success(), "taskset -p {pid} failed");
            pinned += 1;
        }
        ensure!(pinned > 0, "no process found in pod {}", pod.name);
        Ok(())
    }

    /// Ready pods of the benchmark by their `app` label.
    fn ready_pods(&self) -> Result<Vec<(String, PodInfo)>> {
        let out = self
            .stack
            .kubectl(&["get", "pods", "-l", "bench=dataplane", "-o", "json"]);
        ensure!(
            out.status.success(),
            "kubectl get pods: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let mut found = Vec::new();
        for item in list["items"].as_array().into_iter().flatten() {
            let ready = item["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let (Some(app), Some(ip), Some(node)) = (
                item["metadata"]["labels"]["app"].as_str(),
                item["status"]["podIP"].as_str(),
                item["spec"]["nodeName"].as_str(),
            ) else {
                continue;
            };
            if !ready || item["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            let node = if node == self.node(BATON).name() {
                BATON
            } else {
                IPTABLES
            };
            let ip: Ipv4Addr = ip.parse()?;
            found.push((
                app.to_owned(),
                PodInfo {
                    name: item["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    ip,
                    netns: self.pod_netns(node, ip)?,
                    node,
                },
            ));
        }
        Ok(found)
    }

    /// The network namespace of the pod with `ip` on node `node`, from the
    /// record baton-cni wrote for it.
    fn pod_netns(&self, node: usize, ip: Ipv4Addr) -> Result<PathBuf> {
        let record = NodeAgentPaths::for_node(self.node(node))
            .root_dir
            .join("cni/endpoints")
            .join(format!("{ip}.json"));
        let text = std::fs::read_to_string(&record)
            .with_context(|| format!("reading {}", record.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        let netns = value["netns"]
            .as_str()
            .with_context(|| format!("{} names no netns", record.display()))?;
        Ok(PathBuf::from(netns))
    }

    /// The network namespace path of a place.
    pub fn netns_of(&self, place: &Place) -> PathBuf {
        match place {
            Place::Outside => self.cluster().client().netns().path(),
            Place::Host(node) => self.node(*node).netns().path(),
            Place::Pod(pod) | Place::PodWithoutSocketLb(pod) => pod.netns.clone(),
        }
    }

    /// SYN retransmissions so far in the network namespace of `place`
    /// (`TcpExt: TCPSynRetrans`, read by a process inside it: /proc/net is
    /// per namespace).
    pub fn syn_retransmits(&self, place: &Place) -> Result<u64> {
        let out = nsenter(&self.netns_of(place))
            .args(["cat", "/proc/net/netstat"])
            .output()
            .context("reading /proc/net/netstat")?;
        ensure!(out.status.success(), "cat /proc/net/netstat failed");
        super::load::tcp_ext_counter(&String::from_utf8_lossy(&out.stdout), "TCPSynRetrans")
            .context("no TCPSynRetrans in /proc/net/netstat")
    }

    /// The cgroup v2 directory a process at `place` joins, if any.
    pub fn cgroup_of(&self, place: &Place) -> Result<Option<PathBuf>> {
        Ok(match place {
            Place::Outside | Place::PodWithoutSocketLb(_) => None,
            Place::Host(node) => Some(self.cgroups.host_dir(*node)),
            Place::Pod(pod) => Some(self.cgroups.pod_dir(pod.node, &pod.name)?),
        })
    }

    /// A command running `program args` at `place`.
    pub fn command_at(&self, place: &Place, program: &str, args: &[String]) -> Result<Command> {
        let mut cmd = nsenter(&self.netns_of(place));
        match self.cgroup_of(place)? {
            Some(dir) => {
                let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
                cmd.arg("sh")
                    .args(cgroup_exec_args(&dir, Path::new(program), &args));
            }
            None => {
                cmd.arg(program).args(args);
            }
        }
        Ok(cmd)
    }
}
