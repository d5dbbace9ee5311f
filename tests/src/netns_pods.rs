//! "Pods" without a container runtime: a network namespace per pod, wired
//! by the real `baton-cni` plugin exactly as containerd would call it (ADD:
//! veth, an address from the node's podCIDR as a /32, default route via
//! 169.254.1.1, the endpoint record baton-node turns into a dataplane
//! endpoint), with a server process started inside. For service tests that
//! run before, or without, the kubelet.
//!
//! A [`NetnsPod`] is removed on drop: CNI DEL (address released, veth
//! gone), its processes killed, its namespace deleted. Namespace names
//! carry the cluster's name (`<cluster>-pod-<node>-<name>`), so the
//! harness's leftover sweep removes those of killed runs.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Cluster, ClusterError, Node};
use crate::exec::{self, CommandError};
use crate::netns::Netns;

/// Errors creating or removing a pod.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("running baton-cni {command} for {pod}: {source}")]
    Spawn {
        command: &'static str,
        pod: String,
        #[source]
        source: std::io::Error,
    },
    #[error("baton-cni {command} for {pod} failed: {output}")]
    Plugin {
        command: &'static str,
        pod: String,
        output: String,
    },
}

/// How a node's pods are wired: the plugin binary and its configuration.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    /// The `baton-cni` binary.
    pub plugin: PathBuf,
    /// The plugin's data directory (IPAM state and endpoint records); the
    /// node's baton-node reads the records from here (`--cni-data-dir`).
    pub data_dir: PathBuf,
    /// The node's podCIDR.
    pub pod_cidr: ipnet::Ipv4Net,
}

impl PodNetwork {
    /// The network of `node`, with state under `<node dir>/cni-data`.
    #[must_use]
    pub fn for_node(node: &Node, plugin: PathBuf) -> Self {
        Self {
            plugin,
            data_dir: node.dir().join("cni-data"),
            pod_cidr: node.pod_cidr(),
        }
    }

    fn conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "baton",
            "type": "baton-cni",
            "podCIDR": self.pod_cidr.to_string(),
            "dataDir": self.data_dir,
            "mtu": 1500,
        })
    }
}

/// A pod: its namespace, address and the node it runs on.
#[derive(Debug)]
pub struct NetnsPod {
    pub name: String,
    pub netns: Netns,
    pub ip: Ipv4Addr,
    /// 1-based index of its node.
    pub node: usize,
    node_netns: Netns,
    network: PodNetwork,
    container_id: String,
    children: Vec<std::process::Child>,
    removed: bool,
}

impl NetnsPod {
    /// Creates pod `name` on node `node` of `cluster` and runs CNI ADD for it.
    pub fn create(
        cluster: &Cluster,
        node: usize,
        name: &str,
        network: &PodNetwork,
    ) -> Result<Self, PodError> {
        let node_ref = cluster.node(node)?;
        let netns = Netns::new(format!("{}-pod-{node}-{name}", cluster.name()));
        exec::run(
            Command::new("ip").args(["netns", "add", netns.name()]),
            Duration::from_secs(10),
        )?
        .check()?;
        let mut pod = Self {
            name: name.to_owned(),
            netns,
            ip: Ipv4Addr::UNSPECIFIED,
            node,
            node_netns: node_ref.netns().clone(),
            network: network.clone(),
            container_id: format!("{}-{node}-{name}", cluster.name()),
            children: Vec::new(),
            removed: false,
        };
        // `lo` up, as containerd does for every sandbox.
        exec::run(
            pod.netns.command("ip").args(["link", "set", "lo", "up"]),
            Duration::from_secs(10),
        )?
        .check()?;
        let result = pod.cni("ADD")?;
        let address = result["ips"][0]["address"].as_str().unwrap_or_default();
        pod.ip = address
            .split('/')
            .next()
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| PodError::Plugin {
                command: "ADD",
                pod: name.to_owned(),
                output: result.to_string(),
            })?;
        Ok(pod)
    }

    /// Runs a CNI command in the node's namespace (as containerd does).
    fn cni(&self, command: &'static str) -> Result<Value, PodError> {
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", self.node_netns.path().display()))
            .arg("--")
            .arg(&self.network.plugin)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", self.netns.path())
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_PATH",
                self.network.plugin.parent().unwrap_or(Path::new("/")),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| PodError::Spawn {
                command,
                pod: self.name.clone(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(self.network.conf().to_string().as_bytes());
        }
        let output = child.wait_with_output().map_err(|source| PodError::Spawn {
            command,
            pod: self.name.clone(),
            source,
        })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(PodError::Plugin {
                command,
                pod: self.name.clone(),
                output: format!("{stdout} {}", String::from_utf8_lossy(&output.stderr)),
            });
        }
        Ok(serde_json::from_str(&stdout).unwrap_or(Value::Null))
    }

    /// Starts `program args…` with `env` inside the pod's namespace, in
    /// the cgroup v2 directory `cgroup` when given (a pod's cgroup below
    /// its node's subtree), output appended to `log`; the process is killed
    /// when the pod is removed. Returns its PID.
    pub fn start(
        &mut self,
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
        cgroup: Option<&Path>,
        log: &Path,
    ) -> Result<u32, PodError> {
        let spawn_error = |source| PodError::Spawn {
            command: "server",
            pod: self.name.clone(),
            source,
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_error)?;
        let err = out.try_clone().map_err(spawn_error)?;
        let os_args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns.path().display()))
            .arg("--");
        match cgroup {
            Some(dir) => {
                cmd.arg("sh")
                    .args(crate::node_cgroup::cgroup_exec_args(dir, program, &os_args));
            }
            None => {
                cmd.arg(program).args(&os_args);
            }
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(spawn_error)?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Removes the pod now (CNI DEL, processes, namespace).
    pub fn remove(mut self) -> Result<(), PodError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), PodError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let del = self.cni("DEL");
        if let Ok(pids) = self.netns.pids() {
            for pid in pids {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        exec::run(
            Command::new("ip").args(["netns", "del", self.netns.name()]),
            Duration::from_secs(10),
        )?
        .check()?;
        del.map(|_| ())
    }
}

impl Drop for NetnsPod {
    fn drop(&mut self) {
        if let Err(err) = self.teardown() {
            tracing::warn!(pod = %self.name, %err, "removing a pod");
        }
    }
}

/// The echo server binary pods run (`baton-images`' `echo`): the one built
/// beside the test binaries, else the images' static build, else built now
/// (`cargo build -p baton-images --bin echo`).
pub fn echo_server(binaries: &crate::Binaries) -> Result<PathBuf, CommandError> {
    if let Ok(path) = binaries.path("echo") {
        return Ok(path);
    }
    let musl = crate::images::target_dir()
        .join(crate::images::IMAGE_TARGET)
        .join("release")
        .join("echo");
    if musl.is_file() {
        return Ok(musl);
    }
    let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
    exec::run(
        Command::new(cargo)
            .current_dir(crate::images::repo_root())
            .args(["build", "-p", "baton-images", "--bin", "echo"]),
        Duration::from_secs(900),
    )?
    .check()?;
    Ok(crate::images::target_dir().join("debug").join("echo"))
}
