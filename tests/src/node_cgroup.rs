//! Each node's cgroup v2 subtree: on one machine every node shares the
//! host's cgroup hierarchy, so a node's socket-level load balancing is
//! attached to a subtree of its own, `<cgroup2>/baton/<cluster>/<node>` —
//! the same path below which the node's containerd places its pods
//! ([`crate::containerd::ContainerdPaths::cgroup_parent`]). Processes the
//! harness starts "on a node" (clients in the node's host namespace or in
//! a pod's namespace) must live below it too, or the node's socket
//! programs never see their sockets: [`NodeCgroups::spawn`] and
//! [`in_cgroup`] start them there.
//!
//! [`NodeCgroups`] removes the subtrees (killing what is left in them) on
//! drop, and at creation removes the subtrees of dead runs.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::cgroup::CGROUP2_ROOT;
use crate::cluster::{Cluster, ClusterError, Node};
use crate::containerd::kill_cgroup_tree;
use crate::process::{ProcessRecord, ProcessSpec};

/// Parent of every cluster's node subtrees (below each hierarchy).
const PARENT: &str = "baton";

/// The cgroup path (relative to a hierarchy's root, with a leading `/`) of
/// `node`'s subtree: what the node's kubelet gets as `--cgroup-root`.
#[must_use]
pub fn node_cgroup_path(cluster: &Cluster, node: &Node) -> String {
    format!("/{PARENT}/{}/{}", cluster.name(), node.name())
}

/// `node`'s subtree in the cgroup v2 hierarchy: where its socket-LB
/// programs attach.
#[must_use]
pub fn node_cgroup2_dir(cluster: &Cluster, node: &Node) -> PathBuf {
    Path::new(CGROUP2_ROOT).join(node_cgroup_path(cluster, node).trim_start_matches('/'))
}

/// A [`ProcessSpec`] that moves itself into the cgroup v2 directory `dir`
/// before running `spec`'s program (through `sh`, which `exec`s it, so the
/// PID stays the program's).
pub fn in_cgroup(spec: ProcessSpec, dir: &Path) -> ProcessSpec {
    let script = format!(
        "echo $$ > '{}/cgroup.procs' && exec \"$0\" \"$@\"",
        dir.display()
    );
    let mut wrapped = ProcessSpec::new(spec.name.clone(), "sh")
        .arg("-c")
        .arg(script)
        .arg(&spec.program)
        .args(&spec.args);
    wrapped.env = spec.env;
    wrapped.cwd = spec.cwd;
    wrapped
}

/// The arguments that make `sh` move itself into `dir` and exec
/// `program args…`: for commands run with `nsenter`.
#[must_use]
pub fn cgroup_exec_args(dir: &Path, program: &Path, args: &[OsString]) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![
        "-c".into(),
        format!(
            "echo $$ > '{}/cgroup.procs' && exec \"$0\" \"$@\"",
            dir.display()
        )
        .into(),
        program.as_os_str().to_owned(),
    ];
    out.extend(args.iter().cloned());
    out
}

/// The node subtrees of one cluster, removed on drop.
#[derive(Debug)]
pub struct NodeCgroups {
    /// Per node index: (cgroup path, v2 directory).
    nodes: Vec<(String, PathBuf)>,
}

/// Creating a node's cgroup failed.
#[derive(Debug, thiserror::Error)]
#[error("creating cgroup {}: {source}", path.display())]
pub struct CgroupError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl NodeCgroups {
    /// Creates `<node subtree>/host` for every node of `cluster` (the
    /// host processes' leaf), after removing subtrees of dead runs.
    pub fn create(cluster: &Cluster) -> Result<Self, CgroupError> {
        remove_leftovers();
        let mut nodes = Vec::new();
        for node in cluster.nodes() {
            let dir = node_cgroup2_dir(cluster, node);
            let host = dir.join("host");
            fs::create_dir_all(&host).map_err(|source| CgroupError {
                path: host.clone(),
                source,
            })?;
            nodes.push((node_cgroup_path(cluster, node), dir));
        }
        Ok(Self { nodes })
    }

    /// The v2 directory of node `index` (1-based): attach socket LB here.
    #[must_use]
    pub fn node_dir(&self, index: usize) -> &Path {
        &self.nodes[index - 1].1
    }

    /// The leaf for host processes of node `index`.
    #[must_use]
    pub fn host_dir(&self, index: usize) -> PathBuf {
        self.node_dir(index).join("host")
    }

    /// A leaf for a pod of node `index`, created if missing.
    pub fn pod_dir(&self, index: usize, pod: &str) -> Result<PathBuf, CgroupError> {
        let dir = self.node_dir(index).join("pods").join(pod);
        fs::create_dir_all(&dir).map_err(|source| CgroupError {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    /// Starts `spec` in node `index`'s network namespace, in its host
    /// cgroup leaf.
    pub fn spawn(
        &self,
        cluster: &Cluster,
        index: usize,
        spec: ProcessSpec,
    ) -> Result<ProcessRecord, ClusterError> {
        let node = cluster.node(index)?;
        cluster.spawn(node.netns(), in_cgroup(spec, &self.host_dir(index)))
    }
}

impl Drop for NodeCgroups {
    fn drop(&mut self) {
        for (path, _) in &self.nodes {
            if let Err(err) = kill_cgroup_tree(path) {
                tracing::warn!(%err, cgroup = %path, "removing a node cgroup");
            }
        }
    }
}

/// Removes the subtrees of clusters whose owner is dead
/// (`baton/baton-<pid>-<slot>`), killing what is left in them.
fn remove_leftovers() {
    let Ok(entries) = fs::read_dir(Path::new(CGROUP2_ROOT).join(PARENT)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("baton-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = kill_cgroup_tree(&format!("/{PARENT}/{name}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_specs_join_the_cgroup_then_exec_the_program() {
        let spec = ProcessSpec::new("client", "/bin/echo")
            .arg("hi")
            .env("A", "1");
        let wrapped = in_cgroup(spec, Path::new("/sys/fs/cgroup/unified/baton/c/n/host"));
        assert_eq!(wrapped.program, "sh");
        assert_eq!(wrapped.args[0], "-c");
        assert!(
            wrapped.args[1]
                .to_string_lossy()
                .contains("/sys/fs/cgroup/unified/baton/c/n/host/cgroup.procs")
        );
        assert_eq!(wrapped.args[2], "/bin/echo");
        assert_eq!(wrapped.args[3], "hi");
        assert_eq!(wrapped.env, vec![("A".into(), "1".into())]);
    }
}
