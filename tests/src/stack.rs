//! A whole cluster for end-to-end tests: the namespace topology, etcd, the
//! API server, scheduler and controllers in the control namespace, and per
//! node a containerd with the project's images and `baton-node run`. The
//! binaries are the workspace's (`Binaries::beside_current_exe`, or
//! `$BATON_BIN_DIR` for benchmarks that use release builds).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::binaries::Binaries;
use crate::cluster::{Cluster, ClusterSpec};
use crate::containerd::Containerd;
use crate::control_plane::{self, Component, ControlPlane};
use crate::kubectl::Kubectl;
use crate::nodes;

const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The running cluster. Dropping it deletes every pod through the API and
/// waits for the kubelets to stop them (so CNI tears down their networks),
/// kills what is left in the nodes' container cgroups, then tears the
/// namespaces down.
pub struct Stack {
    pub plane: ControlPlane,
    pub containerds: Vec<Containerd>,
    pub binaries: Binaries,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The cluster CA and keys.
    pub pki: PathBuf,
    pub cluster: Cluster,
}

impl Stack {
    /// Starts a cluster of `nodes` nodes and waits until every node is
    /// Ready. Panics (with the components' log tails) if it cannot.
    pub fn start(nodes: usize) -> Self {
        crate::assert_root();
        let binaries = std::env::var_os("BATON_BIN_DIR")
            .map_or_else(Binaries::beside_current_exe, Binaries::in_dir);
        let archives = nodes::standard_images().expect("building the images");
        let cluster = Cluster::create(ClusterSpec::new(nodes)).expect("creating the cluster");
        let state = cluster.run_dir().join("control");
        let plane = ControlPlane::layout(&cluster, &state, state.join("admin.kubeconfig"));
        let fail = |what: &str, err: &dyn std::fmt::Display| -> ! {
            panic!("{what}: {err}\n{}", logs(&cluster))
        };
        if let Err(err) = control_plane::ensure_etcd(&cluster, &binaries, &plane) {
            fail("starting etcd", &err);
        }
        if let Err(err) = control_plane::ensure_apiserver(&cluster, &binaries, &plane) {
            fail("starting the API server", &err);
        }
        for component in [Component::Scheduler, Component::Controllers] {
            if let Err(err) =
                control_plane::ensure_component(&cluster, &binaries, &plane, component)
            {
                fail(component.name(), &err);
            }
        }
        let mut containerds = Vec::new();
        for node in cluster.nodes() {
            match nodes::ensure_containerd(&cluster, node, &archives) {
                Ok((cd, _)) => containerds.push(cd),
                Err(err) => fail("starting containerd", &err),
            }
            if let Err(err) = nodes::ensure_agent(
                &cluster,
                &binaries,
                &plane,
                node,
                containerds.last().expect("just pushed"),
            ) {
                fail("starting baton-node", &err);
            }
        }
        if let Err(err) = nodes::wait_nodes_ready(&plane, nodes, START_TIMEOUT) {
            fail("waiting for the nodes", &err);
        }
        if let Err(err) = nodes::route_control_plane_to_pods(&cluster, &plane) {
            fail("routing the control plane to the pods", &err);
        }
        Self {
            kubeconfig: plane.kubeconfig.clone(),
            pki: plane.cert_dir.clone(),
            plane,
            containerds,
            binaries,
            cluster,
        }
    }

    /// Starts (again) `baton-node` of node `index` (1-based).
    pub fn start_node(&self, index: usize) {
        let node = self.cluster.node(index).expect("node index").clone();
        let cd = &self.containerds[index - 1];
        nodes::ensure_agent(&self.cluster, &self.binaries, &self.plane, &node, cd)
            .unwrap_or_else(|err| panic!("starting baton-node {index}: {err}"));
    }

    /// SIGKILLs `baton-node` of node `index` (its pods keep running).
    pub fn kill_node(&self, index: usize) {
        let node = self.cluster.node(index).expect("node index");
        self.cluster
            .kill_process(&nodes::agent_name(node))
            .unwrap_or_else(|err| panic!("killing baton-node {index}: {err}"));
    }

    /// Asserts that no node namespace has a bridge, an iptables rule or an
    /// nftables chain: baton's networking is eBPF and routes only.
    pub fn assert_no_bridge_or_netfilter_rules(&self) {
        let timeout = Duration::from_secs(5);
        for node in self.cluster.nodes() {
            let netns = node.netns();
            let bridges = netns
                .run_ok("ip", ["-o", "link", "show", "type", "bridge"], timeout)
                .expect("ip link");
            assert!(
                bridges.stdout.trim().is_empty(),
                "bridge in {netns}: {}",
                bridges.stdout
            );
            let save = netns
                .run("iptables-save", Vec::<&str>::new(), timeout)
                .expect("iptables-save");
            assert!(
                !save.stdout.contains("-A "),
                "iptables rules in {netns}: {}",
                save.stdout
            );
            let nft = netns.run("nft", ["list", "ruleset"], timeout).expect("nft");
            assert!(
                !nft.stdout.contains("rule") && !nft.stdout.contains("chain"),
                "nft in {netns}: {}",
                nft.stdout
            );
        }
    }

    /// The last lines of every component's log.
    #[must_use]
    pub fn logs(&self) -> String {
        logs(&self.cluster)
    }

    /// The real kubectl with the admin kubeconfig.
    #[must_use]
    pub fn kubectl_runner(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig)
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_runner().run(args, None)
    }

    /// kubectl as the bearer of `token`, trusting `ca`, with no kubeconfig.
    pub fn kubectl_with_token(
        &self,
        ca: &std::path::Path,
        token: &str,
        args: &[&str],
    ) -> std::process::Output {
        crate::kubectl::output(
            std::process::Command::new(crate::kubectl::PROGRAM)
                .arg("--kubeconfig=/dev/null")
                .arg(format!("--server={}", self.plane.server))
                .arg(format!("--certificate-authority={}", ca.display()))
                .arg(format!("--token={token}"))
                .args(args),
            None,
        )
        .unwrap_or_else(|error| panic!("{error}"))
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.kubectl_runner().run(args, Some(stdin))
    }

    /// Runs kubectl and returns its stdout; panics with stderr on failure.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl_runner().run_ok(args, None)
    }

    /// `kubectl apply -f -` of `manifest`.
    pub fn apply(&self, manifest: &str) {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], manifest);
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A jsonpath of one object.
    pub fn get(&self, kind: &str, name: &str, jsonpath: &str) -> String {
        let out = self.kubectl(&["get", kind, name, "-o", &format!("jsonpath={jsonpath}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The reasons of the events about the object named `name`, as
    /// kubectl lists them (space-separated).
    pub fn event_reasons(&self, name: &str) -> String {
        self.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "jsonpath={.items[*].reason}",
        ])
    }

    /// Polls `check` until it holds; panics with the components' log tails.
    pub fn wait(&self, within: Duration, what: &str, mut check: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "timed out after {within:?} waiting for {what}\n{}",
            logs(&self.cluster)
        );
    }

    /// Waits until pod `name` is Ready; returns its IP.
    pub fn wait_ready(&self, name: &str, within: Duration) -> String {
        self.wait(within, &format!("pod {name} Ready"), |c| {
            c.get(
                "pod",
                name,
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            ) == "True"
        });
        self.get("pod", name, "{.status.podIP}")
    }

    /// Container and sandbox IDs containerd of node `index` has (`ctr`).
    pub fn runtime_containers(&self, index: usize) -> Vec<String> {
        nodes::runtime_containers(&self.containerds[index - 1])
    }

    /// IPAM allocations of node `index` (files named by address).
    pub fn allocated_ips(&self, index: usize) -> Vec<String> {
        let node = self.cluster.node(index).expect("node index");
        let dir = nodes::NodeAgentPaths::for_node(node)
            .root_dir
            .join("cni/baton");
        let mut ips: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        ips.sort();
        ips
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        nodes::drain(&self.cluster, &self.plane, Duration::from_secs(60));
    }
}

/// The last lines of every process's log.
fn logs(cluster: &Cluster) -> String {
    cluster
        .processes()
        .iter()
        .map(|p| format!("--- {}:\n{}", p.name, crate::ready::log_tail(&p.log)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One HTTP/1.1 GET from inside `netns` (busybox's static `wget` cannot be
/// relied on in a node namespace); returns the body.
pub fn http_get(netns: &crate::Netns, addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::Read as _;
    let addr: std::net::SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    let path = path.to_owned();
    netns
        .enter(move || {
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_default())
        })
        .map_err(std::io::Error::other)?
}
