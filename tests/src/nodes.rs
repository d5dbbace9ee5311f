//! The node agents of a harness cluster: per node, a containerd with the
//! project's images and `baton-node run`, inside the node's namespace.
//! Used by `cargo xtask up` (where a second run keeps what runs) and by
//! end-to-end tests.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::binaries::{Binaries, MissingBinary};
use crate::cluster::{Cluster, ClusterError, Node};
use crate::containerd::{self, Containerd, ContainerdError};
use crate::control_plane::{ControlPlane, ControlPlaneError, Ensured};
use crate::exec;
use crate::process::ProcessSpec;

/// The kubelet's port (logs/exec server), as the real kubelet's default.
pub const KUBELET_PORT: u16 = 10250;

/// Why a node agent did not come up.
#[derive(Debug, thiserror::Error)]
pub enum NodeAgentError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error(transparent)]
    MissingBinary(#[from] MissingBinary),
    #[error("nodes not Ready within {timeout:?}: {last}")]
    NotReady { timeout: Duration, last: String },
    #[error("reading the nodes' pod ranges: {0}")]
    PodRanges(String),
    #[error("routing the control plane to pods: {0}")]
    Route(#[from] crate::exec::CommandError),
    #[error("joining {node}: {step}: {source}")]
    Join {
        node: String,
        step: &'static str,
        source: Box<crate::exec::CommandError>,
    },
}

/// Where a node agent keeps its files.
#[derive(Debug, Clone)]
pub struct NodeAgentPaths {
    /// The node's credentials (`system:node:<name>`), written by its TLS
    /// bootstrap.
    pub kubeconfig: PathBuf,
    /// The bootstrap token's kubeconfig `baton-node join` writes.
    pub bootstrap_kubeconfig: PathBuf,
    /// The kubelet's root: volumes, logs, IPAM state.
    pub root_dir: PathBuf,
    /// The node's own bpffs, where the dataplane pins its maps and links.
    pub pin_dir: PathBuf,
}

impl NodeAgentPaths {
    pub fn for_node(node: &Node) -> Self {
        Self {
            kubeconfig: node.dir().join("kubeconfig"),
            bootstrap_kubeconfig: node.dir().join("bootstrap-kubeconfig"),
            root_dir: node.dir().join("kubelet"),
            pin_dir: node.dir().join("bpf"),
        }
    }
}

/// Starts containerd of `node` unless it runs (importing the image
/// `archives` into a fresh one).
pub fn ensure_containerd(
    cluster: &Cluster,
    node: &Node,
    archives: &[PathBuf],
) -> Result<(Containerd, Ensured), NodeAgentError> {
    if let Some(running) = containerd::running(cluster, node) {
        let pid = running.process.pid;
        return Ok((running, Ensured::AlreadyRunning { pid }));
    }
    let started = containerd::start(cluster, node)?;
    started.import(archives)?;
    let pid = started.process.pid;
    Ok((started, Ensured::Started { pid }))
}

/// The process name of `node`'s agent.
pub fn agent_name(node: &Node) -> String {
    format!("baton-node-{}", node.index())
}

/// Joins `node` as a new host joins: a bootstrap token made with the
/// admin's credentials (`baton-control token create --print-join-command`)
/// and the printed `baton-node join` run in the node's namespace, which
/// finds the cluster from the token and the CA's public key hash and
/// writes the bootstrap kubeconfig; `baton-node run` then requests the
/// node's own client certificate with it. Credentials from before the
/// current CA (a cluster brought down and up again) are dropped first; a
/// node that already has current ones keeps them.
pub fn join(
    binaries: &Binaries,
    plane: &ControlPlane,
    node: &Node,
    paths: &NodeAgentPaths,
) -> Result<(), NodeAgentError> {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let ca = modified(&plane.cert_dir.join("ca.crt"));
    if matches!((modified(&paths.kubeconfig), ca), (Some(made), Some(ca)) if made >= ca) {
        return Ok(());
    }
    for stale in [
        paths.kubeconfig.clone(),
        paths.root_dir.join("pki/kubelet-client-current.pem"),
        paths.bootstrap_kubeconfig.clone(),
    ] {
        let _ = std::fs::remove_file(stale);
    }
    let failed = |step| {
        let node = node.name().to_owned();
        move |source| NodeAgentError::Join {
            node,
            step,
            source: Box::new(source),
        }
    };
    let mut create = std::process::Command::new(binaries.path("baton-control")?);
    create
        .args(["token", "create", "--ttl", "1h", "--print-join-command"])
        .arg("--description")
        .arg(format!("joins {}", node.name()))
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig);
    let printed = exec::run(&mut create, Duration::from_secs(30))
        .and_then(exec::Output::check)
        .map_err(failed("baton-control token create"))?;
    let args: Vec<&str> = printed.stdout.split_whitespace().skip(1).collect();
    let bootstrap = format!(
        "--bootstrap-kubeconfig={}",
        paths.bootstrap_kubeconfig.display()
    );
    node.netns()
        .run(
            &binaries.path("baton-node")?.display().to_string(),
            args.iter().copied().chain([bootstrap.as_str()]),
            Duration::from_secs(30),
        )
        .and_then(exec::Output::check)
        .map_err(failed("baton-node join"))?;
    Ok(())
}

/// Starts `baton-node run` of `node` unless it runs, joined with a
/// bootstrap token ([`join`]): its kubeconfig is its own
/// (`system:node:<name>` in `system:nodes`, as a kubelet's).
pub fn ensure_agent(
    cluster: &Cluster,
    binaries: &Binaries,
    plane: &ControlPlane,
    node: &Node,
    containerd: &Containerd,
) -> Result<Ensured, NodeAgentError> {
    let name = agent_name(node);
    if let Some(record) = cluster.process(&name).filter(|p| p.is_running()) {
        return Ok(Ensured::AlreadyRunning { pid: record.pid });
    }
    let paths = NodeAgentPaths::for_node(node);
    let pin_dir = cluster.mount_bpffs(node.index())?;
    debug_assert_eq!(pin_dir, paths.pin_dir);
    join(binaries, plane, node, &paths)?;
    let spec = agent_spec(binaries, node, containerd, &paths, true)?;
    let record = cluster.spawn(node.netns(), spec)?;
    Ok(Ensured::Started { pid: record.pid })
}

/// The command line of `baton-node run` for `node`; with `dataplane`, the
/// eBPF dataplane (pins in `paths.pin_dir`, which must be a mounted bpffs):
/// pod routing, the service proxy, the routes to the other nodes' podCIDRs,
/// socket LB on the pods' cgroup subtree. Without it the node has the
/// kubelet and CNI only (plain kernel routing).
pub fn agent_spec(
    binaries: &Binaries,
    node: &Node,
    containerd: &Containerd,
    paths: &NodeAgentPaths,
    dataplane: bool,
) -> Result<ProcessSpec, NodeAgentError> {
    let cd = &containerd.paths;
    let spec = ProcessSpec::new(agent_name(node), binaries.path("baton-node")?)
        .arg("run")
        .arg(format!("--node-name={}", node.name()))
        .arg(format!("--node-ip={}", node.address()))
        .arg(format!("--kubeconfig={}", paths.kubeconfig.display()))
        .arg(format!(
            "--bootstrap-kubeconfig={}",
            paths.bootstrap_kubeconfig.display()
        ))
        .arg(format!("--containerd-socket={}", cd.socket.display()))
        .arg(format!("--root-dir={}", paths.root_dir.display()))
        .arg(format!("--cni-bin-dir={}", cd.cni_bin_dir.display()))
        .arg(format!("--cni-conf-dir={}", cd.cni_conf_dir.display()))
        // Node i registers with 10.244.i.0/24, which the node IPAM keeps.
        .arg(format!("--pod-cidr={}", node.pod_cidr()))
        .arg(format!("--cgroup-root={}", cd.cgroup_parent))
        .arg(format!("--port={KUBELET_PORT}"))
        .env("RUST_LOG", "info,kube_runtime=warn,kube_client=warn");
    Ok(if dataplane {
        spec.arg(format!("--pin-dir={}", paths.pin_dir.display()))
    } else {
        spec
    })
}

/// Waits until `count` Node objects report Ready=True.
pub fn wait_nodes_ready(
    plane: &ControlPlane,
    count: usize,
    timeout: Duration,
) -> Result<(), NodeAgentError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match node_lines(
            plane,
            "{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}",
        ) {
            Ok(lines) => {
                let ready = lines.lines().filter(|l| l.ends_with("=True")).count();
                if ready == count {
                    return Ok(());
                }
                format!(
                    "{ready}/{count} Ready: {}",
                    lines.trim().replace('\n', ", ")
                )
            }
            Err(err) => err,
        };
        if Instant::now() >= deadline {
            return Err(NodeAgentError::NotReady { timeout, last });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One line per Node: `fields` (a kubectl JSONPath template) of each; the
/// error kubectl gave otherwise.
fn node_lines(plane: &ControlPlane, fields: &str) -> Result<String, String> {
    let template = format!("jsonpath={{range .items[*]}}{fields}{{\"\\n\"}}{{end}}");
    match exec::run(
        plane.kubectl().args(["get", "nodes", "-o", &template]),
        Duration::from_secs(10),
    ) {
        Ok(out) if out.success() => Ok(out.stdout),
        Ok(out) => Err(out.stderr.trim().to_owned()),
        Err(err) => Err(err.to_string()),
    }
}

/// Routes the control plane's namespace to every node's podCIDR via the
/// node's InternalIP, as a network with native pod routing gives the
/// control-plane host: pods then reach the API server through the
/// `kubernetes` Service (its answers go back to pod addresses), as
/// in-cluster clients do. Idempotent.
pub fn route_control_plane_to_pods(
    cluster: &Cluster,
    plane: &ControlPlane,
) -> Result<(), NodeAgentError> {
    let lines = node_lines(
        plane,
        "{.spec.podCIDR} {.status.addresses[?(@.type==\"InternalIP\")].address}",
    )
    .map_err(NodeAgentError::PodRanges)?;
    for line in lines.lines() {
        let mut fields = line.split_whitespace();
        let (Some(cidr), Some(address)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (Ok(cidr), Ok(address)) = (cidr.parse(), address.parse()) else {
            return Err(NodeAgentError::PodRanges(format!("unexpected {line:?}")));
        };
        cluster
            .control()
            .netns()
            .replace_route(&crate::iproute::Route::via(cidr, address))?;
    }
    Ok(())
}

/// Removes every workload and pod the way a user would (through the API, so kubelets
/// stop sandboxes through CRI and CNI releases their addresses, veths and
/// network namespaces), waits up to `timeout` for the nodes' containerds
/// to hold no container, then SIGKILLs whatever is left in the nodes'
/// container cgroups. Used before tearing a cluster down.
pub fn drain(cluster: &Cluster, plane: &ControlPlane, timeout: Duration) {
    if plane.kubeconfig.is_file() {
        // Owners first, or their controllers would replace the pods.
        for kinds in ["cronjobs,jobs,daemonsets,deployments,replicasets", "pods"] {
            let _ = exec::run(
                plane.kubectl().args([
                    "delete",
                    kinds,
                    "--all",
                    "--all-namespaces",
                    "--grace-period=1",
                    "--wait=false",
                ]),
                Duration::from_secs(30),
            );
        }
    }
    let deadline = Instant::now() + timeout;
    for node in cluster.nodes() {
        let Some(cd) = containerd::running(cluster, node) else {
            continue;
        };
        while !runtime_containers(&cd).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for node in cluster.nodes() {
        let paths = containerd::ContainerdPaths::for_node(cluster, node);
        if let Err(err) = containerd::kill_cgroup_tree(&paths.cgroup_parent) {
            tracing::warn!(node = %node.name(), %err, "killing leftover containers");
        }
    }
}

/// Container and sandbox IDs a containerd holds (`ctr`).
pub fn runtime_containers(cd: &Containerd) -> Vec<String> {
    let mut cmd = std::process::Command::new("ctr");
    cmd.arg("--address").arg(&cd.paths.socket).args([
        "--namespace",
        "k8s.io",
        "containers",
        "ls",
        "-q",
    ]);
    let mut ids: Vec<String> = exec::run(&mut cmd, Duration::from_secs(10))
        .map(|out| out.stdout.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// The images every node needs, built if missing.
pub fn standard_images() -> Result<Vec<PathBuf>, NodeAgentError> {
    crate::images::ensure_standard()
        .map_err(|err| NodeAgentError::Containerd(ContainerdError::Images(Box::new(err))))
}
