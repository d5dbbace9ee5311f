//! The runtime alone: the benchmark's pods (as the API server admits them)
//! started by calling each node's containerd over CRI directly, with the
//! requests baton-node builds for them (`baton_node::kubelet::pod_config`) and
//! nothing else running — no API server write, no watch, no kubelet. Each pod's latency is from its
//! `RunPodSandbox` request to the return of its `StartContainer`, all pods
//! at once, as the kubelets start a burst.
//!
//! Measured in the same cluster, minutes before the pods go through baton
//! and again once baton has removed them, it is the floor the machine
//! allows in that hour: the difference between the two is what baton adds
//! (its API writes, watches, scheduling and status), independent of how
//! fast the machine happens to be. The burst after baton's runs on a
//! containerd that has already started and removed pods, the one before on
//! a fresh one, so the pair also shows what that order does.

use std::path::Path;
use std::time::{Duration, Instant};

use baton_e2e::Stack;
use baton_e2e::nodes::NodeAgentPaths;
use baton_node::cri::{Cri, api as cri};
use baton_node::kubelet::pod_config::cri_config::{self, ContainerInputs, NodeSettings};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use super::operations::Steps;
use super::{QUIET_BUSY, bench_pod, cpu_between, cpu_snapshot};

/// Sandboxes removed together after the measurement.
const REMOVALS_IN_FLIGHT: usize = 8;

/// What the runtime alone took.
pub struct RuntimeAlone {
    /// Each pod's `RunPodSandbox` → `StartContainer` returned, in seconds,
    /// sorted.
    pub latencies: Vec<f64>,
    /// CPU seconds per component over the burst.
    pub cpu: serde_json::Map<String, serde_json::Value>,
    /// Wall-clock seconds from the first request to the last start.
    pub window: f64,
    /// The CRI calls of the burst ([`Steps::until`]).
    pub steps: serde_json::Value,
}

/// Starts baton-node again on every node it was stopped on, also when the
/// measurement panics (the restarted kubelets then remove any sandbox left,
/// as they remove those of pods deleted while they were down).
struct KubeletsStopped<'a> {
    stack: &'a Stack,
    nodes: usize,
}

impl<'a> KubeletsStopped<'a> {
    fn stop(stack: &'a Stack, nodes: usize) -> Self {
        for index in 1..=nodes {
            stack.kill_node(index);
        }
        Self { stack, nodes }
    }
}

impl Drop for KubeletsStopped<'_> {
    fn drop(&mut self) {
        for index in 1..=self.nodes {
            self.stack.start_node(index);
        }
    }
}

/// One node's runtime, and what baton-node would tell it.
struct NodeRuntime {
    cri: Cri,
    settings: NodeSettings,
    root_dir: std::path::PathBuf,
}

/// Starts the benchmark's `pods` through the nodes' runtimes directly with
/// every baton-node stopped, removes them again, and starts the baton-nodes.
/// `round` tells one such burst of a run from another (names and UIDs).
pub async fn measure(
    stack: &Stack,
    api: &Api<Pod>,
    nodes: usize,
    pods: usize,
    round: &str,
) -> RuntimeAlone {
    // The pods as the API server admits them (a dry run): with the
    // service-account token volume baton-node mounts.
    let mut admitted = Vec::new();
    for i in 0..pods {
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        admitted.push(
            api.create(&dry_run, &bench_pod(i, nodes))
                .await
                .expect("the pod as the API server admits it"),
        );
    }
    let stopped = KubeletsStopped::stop(stack, nodes);
    let mut runtimes = Vec::new();
    for index in 1..=nodes {
        let node = stack.cluster.node(index).expect("node index");
        let cd = &stack.containerds[index - 1];
        runtimes.push(NodeRuntime {
            cri: Cri::connect(&cd.paths.socket)
                .await
                .expect("connecting to the node's containerd"),
            settings: NodeSettings {
                cgroup_root: cd.paths.cgroup_parent.clone(),
                cluster_dns: Vec::new(),
                cluster_domain: "cluster.local".into(),
            },
            root_dir: NodeAgentPaths::for_node(node).root_dir,
        });
    }
    let pods: Vec<(usize, Pod)> = admitted
        .into_iter()
        .enumerate()
        .map(|(i, mut pod)| {
            pod.metadata.name = Some(format!("runtime-alone-{round}-{i}"));
            pod.metadata.namespace = Some("default".into());
            pod.metadata.uid = Some(format!("runtime-alone-{}-{round}-{i}", std::process::id()));
            (i % nodes, pod)
        })
        .collect();
    let (waited, _) =
        baton_e2e::wait_until_quiet(QUIET_BUSY, Duration::from_secs(2), Duration::from_secs(120));
    println!(
        "  runtime alone ({round}): waited {:.1} s for the machine to settle",
        waited.as_secs_f64()
    );

    let cpu_before = cpu_snapshot();
    let start = Instant::now();
    let started = futures::future::join_all(
        pods.iter()
            .map(|(node, pod)| start_pod(&runtimes[*node], pod, start)),
    )
    .await;
    let window = start.elapsed().as_secs_f64();
    let cpu = cpu_between(&cpu_before, &cpu_snapshot());
    let mut calls = Steps::default();
    for runtime in &runtimes {
        calls.add_scrape(&runtime.cri.metrics().render());
    }
    let steps = Steps::default().until(&calls);

    let mut latencies = Vec::new();
    let mut sandboxes = Vec::new();
    for ((node, _), result) in pods.iter().zip(started) {
        let (sandbox, latency) = result.expect("starting a pod through CRI");
        latencies.push(latency);
        sandboxes.push((*node, sandbox));
    }
    futures::stream::iter(sandboxes.iter().map(|(node, sandbox)| {
        let cri = &runtimes[*node].cri;
        async move {
            cri.stop_pod_sandbox(sandbox)
                .await
                .expect("stopping a sandbox");
            cri.remove_pod_sandbox(sandbox)
                .await
                .expect("removing a sandbox");
        }
    }))
    .buffer_unordered(REMOVALS_IN_FLIGHT)
    .collect::<Vec<()>>()
    .await;
    drop(stopped);

    latencies.sort_by(f64::total_cmp);
    RuntimeAlone {
        latencies,
        cpu,
        window,
        steps,
    }
}

/// Runs `pod`'s sandbox and its containers as baton-node's worker does
/// (log directory, sandbox, its status for the IP, the hosts and
/// termination-message files, create, start) and returns its sandbox ID
/// and the seconds since `start`.
async fn start_pod(
    runtime: &NodeRuntime,
    pod: &Pod,
    start: Instant,
) -> Result<(String, f64), Box<dyn std::error::Error>> {
    let log_dir = baton_node::kubelet::log_dir(&runtime.root_dir, pod);
    std::fs::create_dir_all(&log_dir)?;
    let sandbox_config = cri_config::sandbox_config(pod, 0, &log_dir, &runtime.settings);
    let sandbox = runtime.cri.run_pod_sandbox(sandbox_config.clone()).await?;
    let ip = runtime
        .cri
        .pod_sandbox_status(&sandbox)
        .await?
        .network
        .map(|n| n.ip)
        .unwrap_or_default();
    let volumes = volume_dirs(&runtime.root_dir, pod)?;
    let pod_dir = runtime
        .root_dir
        .join("pods")
        .join(pod.metadata.uid.as_deref().unwrap_or_default());
    for c in &pod.spec.as_ref().expect("a pod spec").containers {
        let term_file = termination_file(&runtime.root_dir, pod, &c.name)?;
        // The same bind mounts as baton-node's: the pod's volumes (here
        // empty directories: setting them up is the kubelet's work, not
        // the runtime's), its hosts file and the termination-message file.
        let mut mounts = baton_node::kubelet::pod_config::volumes::mounts(c, &volumes)?;
        mounts.extend(baton_node::kubelet::pod_config::hosts::mount(
            pod,
            c,
            &pod_dir,
            &ip,
            &runtime.settings.cluster_domain,
        )?);
        mounts.push(cri::Mount {
            container_path: "/dev/termination-log".into(),
            host_path: term_file.display().to_string(),
            ..Default::default()
        });
        let inputs = ContainerInputs {
            image: c.image.clone().unwrap_or_default(),
            mounts,
            ..Default::default()
        };
        let config = cri_config::container_config(pod, c, &inputs);
        let id = runtime
            .cri
            .create_container(&sandbox, config, sandbox_config.clone())
            .await?;
        runtime.cri.start_container(&id).await?;
    }
    Ok((sandbox, start.elapsed().as_secs_f64()))
}

/// An empty directory for each volume of `pod`, by volume name.
fn volume_dirs(
    root_dir: &Path,
    pod: &Pod,
) -> std::io::Result<std::collections::HashMap<String, std::path::PathBuf>> {
    let mut dirs = std::collections::HashMap::new();
    for volume in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let dir = root_dir
            .join("pods")
            .join(pod.metadata.uid.as_deref().unwrap_or_default())
            .join("volumes")
            .join(&volume.name);
        std::fs::create_dir_all(&dir)?;
        dirs.insert(volume.name.clone(), dir);
    }
    Ok(dirs)
}

/// An empty termination-message file for container `name` of `pod`, where
/// baton-node keeps it.
fn termination_file(root_dir: &Path, pod: &Pod, name: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = root_dir
        .join("pods")
        .join(pod.metadata.uid.as_deref().unwrap_or_default())
        .join("containers")
        .join(name);
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("0");
    std::fs::write(&file, b"")?;
    Ok(file)
}
