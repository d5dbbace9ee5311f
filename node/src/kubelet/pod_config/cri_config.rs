//! The CRI configurations of a pod: its sandbox (hostname, DNS, cgroup
//! parent, log directory, port mappings, namespaces) and each container
//! (image, command/args with `$(VAR)` expansion, environment, mounts, log
//! path, resources as Linux cgroup settings, labels and annotations that
//! let a restarted kubelet recognise it).

use std::collections::HashMap;
use std::path::Path;

use baton_apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::cri::api as cri;
use crate::cri::labels::{self, PodRef};
use crate::kubelet::node;
use crate::kubelet::pod_spec::{
    Qos, container_hash, expand, grace_seconds, host_network, hostname,
};

/// CFS period the kubelet uses (100 ms).
const CPU_PERIOD: i64 = 100_000;
/// Minimum CPU shares (the kernel's).
const MIN_SHARES: i64 = 2;
const SHARES_PER_CPU: i64 = 1024;

/// Node-level settings that shape every pod.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Absolute cgroup (cgroupfs) under which `kubepods` lives.
    pub cgroup_root: String,
    /// Cluster DNS servers (`--cluster-dns`); empty: pods use the node's
    /// resolver (the runtime copies its resolv.conf).
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
}

/// The pod's identity for labels.
#[must_use]
pub fn pod_ref(pod: &Pod) -> PodRef {
    PodRef {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
    }
}

/// The sandbox's cgroup parent:
/// `<root>/kubepods[/burstable|/besteffort]/pod<uid>`.
#[must_use]
pub fn cgroup_parent(pod: &Pod, settings: &NodeSettings) -> String {
    format!(
        "{}/kubepods{}/pod{}",
        settings.cgroup_root.trim_end_matches('/'),
        Qos::of(pod).cgroup_dir(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn namespace_options(pod: &Pod) -> cri::NamespaceOption {
    let spec = pod.spec.clone().unwrap_or_default();
    let mode = |host: Option<bool>| {
        if host.unwrap_or(false) {
            cri::NamespaceMode::Node as i32
        } else {
            cri::NamespaceMode::Pod as i32
        }
    };
    cri::NamespaceOption {
        network: mode(spec.host_network),
        pid: if spec.host_pid.unwrap_or(false) {
            cri::NamespaceMode::Node as i32
        } else if spec.share_process_namespace.unwrap_or(false) {
            cri::NamespaceMode::Pod as i32
        } else {
            cri::NamespaceMode::Container as i32
        },
        ipc: mode(spec.host_ipc),
        ..Default::default()
    }
}

/// DNS per `dnsPolicy` (`ClusterFirst` with cluster DNS configured,
/// `None` with `dnsConfig`; otherwise the node's resolver).
fn dns_config(pod: &Pod, settings: &NodeSettings) -> Option<cri::DnsConfig> {
    let spec = pod.spec.as_ref()?;
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirst" => !host_network(pod),
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    let mut config = cri::DnsConfig::default();
    if cluster_first && !settings.cluster_dns.is_empty() {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let domain = &settings.cluster_domain;
        config.servers = settings.cluster_dns.clone();
        config.searches = vec![
            format!("{ns}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.clone(),
        ];
        config.options = vec!["ndots:5".into()];
    } else if policy != "None" {
        return None;
    }
    if let Some(extra) = &spec.dns_config {
        config
            .servers
            .extend(extra.nameservers.clone().unwrap_or_default());
        config
            .searches
            .extend(extra.searches.clone().unwrap_or_default());
        for option in extra.options.clone().unwrap_or_default() {
            let name = option.name.unwrap_or_default();
            config.options.push(match option.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    Some(config)
}

/// The sandbox configuration of `pod`, logging into `log_dir`.
#[must_use]
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    log_dir: &Path,
    settings: &NodeSettings,
) -> cri::PodSandboxConfig {
    let r = pod_ref(pod);
    let mut sandbox_labels = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect::<HashMap<_, _>>();
    sandbox_labels.extend(r.labels());
    sandbox_labels.insert(
        labels::CONTAINER_NAME.into(),
        labels::SANDBOX_CONTAINER_NAME.into(),
    );
    let mut annotations: HashMap<String, String> = pod
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    annotations.insert(labels::SANDBOX_ATTEMPT.into(), attempt.to_string());
    annotations.insert(
        labels::POD_TERMINATION_GRACE_PERIOD.into(),
        grace_seconds(pod).to_string(),
    );
    let spec = pod.spec.clone().unwrap_or_default();
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.clone().unwrap_or_default())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| cri::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => cri::Protocol::Udp as i32,
                Some("SCTP") => cri::Protocol::Sctp as i32,
                _ => cri::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or_default(),
            host_ip: p.host_ip.unwrap_or_default(),
        })
        .collect();
    let sysctls = spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, s.value))
        .collect();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: r.name.clone(),
            uid: r.uid.clone(),
            namespace: r.namespace.clone(),
            attempt,
        }),
        // A host-network pod shares the node's UTS namespace.
        hostname: if host_network(pod) {
            String::new()
        } else {
            hostname(pod)
        },
        log_directory: log_dir.display().to_string(),
        dns_config: dns_config(pod, settings),
        port_mappings,
        labels: sandbox_labels,
        annotations,
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(pod, settings),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// CPU in millicores, rounded up (`MilliValue`), or `None` if malformed.
fn millicores(q: &str) -> Option<i64> {
    Quantity::parse(q).ok().map(|q| q.milli_value_i64())
}

/// Bytes, rounded up (`Value`), or `None` if malformed.
fn bytes(q: &str) -> Option<i64> {
    Quantity::parse(q).ok().map(|q| q.value_i64())
}

/// The Linux resources of a container from its requests and limits.
#[must_use]
pub fn linux_resources(c: &Container, qos: Qos) -> cri::LinuxContainerResources {
    let r = c.resources.clone().unwrap_or_default();
    let requests = r.requests.unwrap_or_default();
    let limits = r.limits.unwrap_or_default();
    let cpu_request = requests
        .get("cpu")
        .or_else(|| limits.get("cpu"))
        .and_then(|q| millicores(&q.0));
    let cpu_limit = limits.get("cpu").and_then(|q| millicores(&q.0));
    let memory_limit = limits.get("memory").and_then(|q| bytes(&q.0));
    let memory_request = requests.get("memory").and_then(|q| bytes(&q.0));
    let shares = cpu_request.map_or(MIN_SHARES, |m| (m * SHARES_PER_CPU / 1000).max(MIN_SHARES));
    // The kubelet's OOM score policy (pkg/kubelet/qos/policy.go).
    let oom_score_adj = match qos {
        Qos::Guaranteed => -997,
        Qos::BestEffort => 1000,
        Qos::Burstable => {
            let capacity = node::memory_capacity_bytes().max(1);
            let request = memory_request.unwrap_or(0);
            let adj = 1000 - (1000 * request) / capacity;
            adj.clamp(3, 999)
        }
    };
    cri::LinuxContainerResources {
        cpu_period: if cpu_limit.is_some() { CPU_PERIOD } else { 0 },
        cpu_quota: cpu_limit.map_or(0, |m| (m * CPU_PERIOD / 1000).max(1000)),
        cpu_shares: shares,
        memory_limit_in_bytes: memory_limit.unwrap_or(0),
        oom_score_adj,
        ..Default::default()
    }
}

/// Everything of a container config that the sync computes elsewhere.
#[derive(Debug, Clone, Default)]
pub struct ContainerInputs {
    pub attempt: u32,
    pub init: bool,
    /// The runtime ID of the container whose process namespace an
    /// ephemeral container joins (CRI `NamespaceMode::TARGET`).
    pub target_id: Option<String>,
    pub envs: Vec<(String, String)>,
    pub mounts: Vec<cri::Mount>,
    pub image: String,
}

/// The CRI configuration of container `c` of `pod`.
#[must_use]
pub fn container_config(
    pod: &Pod,
    c: &Container,
    inputs: &ContainerInputs,
) -> cri::ContainerConfig {
    let r = pod_ref(pod);
    let env_map: HashMap<String, String> = inputs.envs.iter().cloned().collect();
    let mut container_labels = r.labels();
    container_labels.insert(labels::CONTAINER_NAME.into(), c.name.clone());
    let annotations = HashMap::from([
        (labels::CONTAINER_HASH.to_owned(), container_hash(c)),
        (
            labels::CONTAINER_RESTART_COUNT.to_owned(),
            inputs.attempt.to_string(),
        ),
        (
            labels::TERMINATION_MESSAGE_PATH.to_owned(),
            c.termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        ),
        (
            labels::TERMINATION_MESSAGE_POLICY.to_owned(),
            c.termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        ),
        (
            labels::POD_TERMINATION_GRACE_PERIOD.to_owned(),
            grace_seconds(pod).to_string(),
        ),
        (labels::CONTAINER_INIT.to_owned(), inputs.init.to_string()),
    ]);
    let sc = c.security_context.clone().unwrap_or_default();
    let pod_sc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let run_as_user = sc.run_as_user.or(pod_sc.run_as_user);
    let run_as_group = sc.run_as_group.or(pod_sc.run_as_group);
    let capabilities = sc.capabilities.clone().map(|caps| cri::Capability {
        add_capabilities: caps.add.unwrap_or_default(),
        drop_capabilities: caps.drop.unwrap_or_default(),
        ..Default::default()
    });
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt: inputs.attempt,
        }),
        image: Some(cri::ImageSpec {
            image: inputs.image.clone(),
            ..Default::default()
        }),
        command: c
            .command
            .iter()
            .flatten()
            .map(|a| expand(a, &env_map))
            .collect(),
        args: c
            .args
            .iter()
            .flatten()
            .map(|a| expand(a, &env_map))
            .collect(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: inputs
            .envs
            .iter()
            .map(|(key, value)| cri::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: inputs.mounts.clone(),
        labels: container_labels,
        annotations,
        log_path: format!("{}/{}.log", c.name, inputs.attempt),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(linux_resources(c, Qos::of(pod))),
            security_context: Some(cri::LinuxContainerSecurityContext {
                capabilities,
                privileged: sc.privileged.unwrap_or(false),
                namespace_options: Some(match &inputs.target_id {
                    Some(target) => cri::NamespaceOption {
                        pid: cri::NamespaceMode::Target as i32,
                        target_id: target.clone(),
                        ..namespace_options(pod)
                    },
                    None => namespace_options(pod),
                }),
                run_as_user: run_as_user.map(|value| cri::Int64Value { value }),
                run_as_group: run_as_group.map(|value| cri::Int64Value { value }),
                readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
                no_new_privs: !sc.allow_privilege_escalation.unwrap_or(true),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn settings() -> NodeSettings {
        NodeSettings {
            cgroup_root: "/baton/c/n1".into(),
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
        }
    }

    #[test]
    fn qos_classes_and_cgroup_parents() {
        let best = pod(
            serde_json::json!({"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "a"}]}}),
        );
        assert_eq!(Qos::of(&best), Qos::BestEffort);
        assert_eq!(
            cgroup_parent(&best, &settings()),
            "/baton/c/n1/kubepods/besteffort/podu"
        );
        let guaranteed = pod(
            serde_json::json!({"metadata": {"uid": "u"}, "spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]}}),
        );
        assert_eq!(Qos::of(&guaranteed), Qos::Guaranteed);
        assert_eq!(
            cgroup_parent(&guaranteed, &settings()),
            "/baton/c/n1/kubepods/podu"
        );
        let burstable = pod(
            serde_json::json!({"metadata": {"uid": "u"}, "spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m"}}}]}}),
        );
        assert_eq!(Qos::of(&burstable), Qos::Burstable);
    }

    #[test]
    fn resources_become_cgroup_settings() {
        let p = pod(serde_json::json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}}]}}));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let r = linux_resources(c, Qos::of(&p));
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.memory_limit_in_bytes, 64 * 1024 * 1024);
        assert!((3..=999).contains(&r.oom_score_adj));
        let none = pod(serde_json::json!({"spec": {"containers": [{"name": "a"}]}}));
        let r = linux_resources(&none.spec.as_ref().unwrap().containers[0], Qos::BestEffort);
        assert_eq!(
            (
                r.cpu_shares,
                r.cpu_quota,
                r.memory_limit_in_bytes,
                r.oom_score_adj
            ),
            (2, 0, 0, 1000)
        );
    }

    #[test]
    fn sandbox_carries_hostname_dns_logs_and_labels() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}]},
        }));
        let s = sandbox_config(&p, 2, Path::new("/var/log/pods/x"), &settings());
        assert_eq!(s.hostname, "web-1");
        assert_eq!(s.log_directory, "/var/log/pods/x");
        assert_eq!(s.metadata.as_ref().unwrap().attempt, 2);
        assert_eq!(s.labels["app"], "web");
        assert_eq!(s.labels[labels::POD_UID], "u1");
        let dns = s.dns_config.unwrap();
        assert_eq!(dns.servers, ["10.96.0.10"]);
        assert_eq!(dns.searches[0], "shop.svc.cluster.local");
        assert_eq!(s.port_mappings[0].host_port, 8080);
    }

    #[test]
    fn container_config_expands_args_and_names_its_log() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "img", "command": ["sh"], "args": ["-c", "echo $(MSG)"]}]},
        }));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let inputs = ContainerInputs {
            attempt: 3,
            envs: vec![("MSG".into(), "hi".into())],
            image: "img".into(),
            ..Default::default()
        };
        let config = container_config(&p, c, &inputs);
        assert_eq!(config.args, ["-c", "echo hi"]);
        assert_eq!(config.log_path, "c/3.log");
        assert_eq!(
            config.annotations[labels::CONTAINER_HASH],
            container_hash(c)
        );
        assert_eq!(config.labels[labels::CONTAINER_NAME], "c");
    }
}
