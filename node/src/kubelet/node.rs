//! The Node object: registration with capacity, addresses, labels and
//! node info read from the machine, the runtime's images; the Lease in `kube-node-lease`
//! renewed every 10 s; and the node status (Ready and pressure
//! conditions) posted every minute or when it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::KubeletError;
use crate::cri::Cri;
use k8s_cri::v1 as cri;

/// How often the Lease is renewed.
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// The Lease's duration (the kubelet's default).
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// How often the status is posted when nothing changes.
pub const STATUS_REPORT: Duration = Duration::from_secs(60);
/// The kubelet's default `maxPods`.
pub const MAX_PODS: u32 = 110;
/// The Kubernetes version this node agent implements.
pub const KUBELET_VERSION: &str = "v1.33.0";

/// What the Node is registered with.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub internal_ip: String,
    pub kubelet_port: u16,
    pub pod_cidr: Option<String>,
    /// Filesystem whose size is the node's ephemeral storage.
    pub root_dir: std::path::PathBuf,
}

/// Total memory of the machine in bytes (`MemTotal`).
#[must_use]
pub fn memory_capacity_bytes() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn storage_bytes(path: &std::path::Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(0)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// Capacity (and allocatable: nothing is reserved) from the machine.
#[must_use]
pub fn capacity(identity: &Identity) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpus().to_string())),
        (
            "memory".to_owned(),
            Quantity(format!("{}Ki", memory_capacity_bytes() / 1024)),
        ),
        ("pods".to_owned(), Quantity(MAX_PODS.to_string())),
        (
            "ephemeral-storage".to_owned(),
            Quantity(format!("{}Ki", storage_bytes(&identity.root_dir) / 1024)),
        ),
    ])
}

/// The machine's architecture as Go (and so Kubernetes) names it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The most images a node reports (the kubelet's `nodeStatusMaxImages`).
const MAX_IMAGES: usize = 50;
/// The most names reported per image (`MaxNamesPerImageInNodeStatus`).
const MAX_NAMES_PER_IMAGE: usize = 5;

/// `status.images` from the runtime's images, as the kubelet's `Images`
/// setter: largest first, at most 50, each with its tags then digests (at
/// most 5 names).
pub fn images(listed: &[cri::Image]) -> Vec<ContainerImage> {
    let mut sorted: Vec<&cri::Image> = listed.iter().collect();
    sorted.sort_by_key(|image| std::cmp::Reverse(image.size));
    sorted
        .into_iter()
        .take(MAX_IMAGES)
        .map(|image| ContainerImage {
            names: Some(
                image
                    .repo_tags
                    .iter()
                    .chain(&image.repo_digests)
                    .take(MAX_NAMES_PER_IMAGE)
                    .cloned()
                    .collect(),
            ),
            size_bytes: i64::try_from(image.size).ok(),
        })
        .collect()
}

fn node_info(runtime_version: &str) -> NodeSystemInfo {
    let uname = nix::sys::utsname::uname().ok();
    NodeSystemInfo {
        architecture: go_arch().into(),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        container_runtime_version: runtime_version.to_owned(),
        kernel_version: uname
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        kube_proxy_version: String::new(),
        kubelet_version: KUBELET_VERSION.into(),
        machine_id: read_trimmed("/etc/machine-id"),
        operating_system: "linux".into(),
        os_image: os_image(),
        system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
        swap: None,
    }
}

fn condition(kind: &str, ok: bool, reason: &str, message: &str, now: Timestamp) -> NodeCondition {
    NodeCondition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The node's conditions from the runtime's: Ready when the runtime and
/// its network are ready; no pressure (baton does not evict).
pub async fn conditions(cri: &Cri, now: Timestamp) -> Vec<NodeCondition> {
    let (ready, message) = match cri.status().await {
        Ok(status) => {
            let unready: Vec<String> = status
                .conditions
                .iter()
                .filter(|c| !c.status)
                .map(|c| format!("{} is false: {} {}", c.r#type, c.reason, c.message))
                .collect();
            if unready.is_empty() {
                (true, "kubelet is posting ready status".to_owned())
            } else {
                (
                    false,
                    format!("container runtime not ready: {}", unready.join("; ")),
                )
            }
        }
        Err(err) => (false, format!("container runtime is down: {err}")),
    };
    vec![
        condition(
            "MemoryPressure",
            false,
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            now,
        ),
        condition(
            "DiskPressure",
            false,
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            now,
        ),
        condition(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            now,
        ),
        condition(
            "Ready",
            ready,
            if ready {
                "KubeletReady"
            } else {
                "KubeletNotReady"
            },
            &message,
            now,
        ),
    ]
}

/// The status the kubelet posts.
pub async fn status(identity: &Identity, cri: &Cri, now: Timestamp) -> NodeStatus {
    let version = cri
        .version()
        .await
        .map(|v| format!("{}://{}", v.runtime_name, v.runtime_version))
        .unwrap_or_default();
    let capacity = capacity(identity);
    NodeStatus {
        capacity: Some(capacity.clone()),
        allocatable: Some(capacity),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: identity.internal_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: identity.name.clone(),
            },
        ]),
        conditions: Some(conditions(cri, now).await),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(identity.kubelet_port),
            }),
        }),
        node_info: Some(node_info(&version)),
        images: match cri.list_images().await {
            Ok(listed) => Some(images(&listed)),
            Err(err) => {
                tracing::warn!(%err, "listing images for the node status");
                None
            }
        },
        ..Default::default()
    }
}

/// Registers the Node (creates it, or takes over an existing one of the
/// same name, as a restarted kubelet does) and returns it.
pub async fn register(
    api: &Api<Node>,
    identity: &Identity,
    cri: &Cri,
) -> Result<Node, KubeletError> {
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), identity.name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), go_arch().to_owned()),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("beta.kubernetes.io/arch".to_owned(), go_arch().to_owned()),
    ]);
    let node = Node {
        metadata: ObjectMeta {
            name: Some(identity.name.clone()),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: identity.pod_cidr.clone(),
            pod_cidrs: identity.pod_cidr.clone().map(|c| vec![c]),
            ..Default::default()
        }),
        status: Some(status(identity, cri, Timestamp::now()).await),
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(created) => {
            tracing::info!(node = %identity.name, "registered the node");
            let _ = created;
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Already registered: refresh labels (and the podCIDR, if the
            // node has none yet), as the kubelet's `tryRegisterWithAPIServer`.
            let mut patch = serde_json::json!({"metadata": {"labels": labels}});
            if let Some(cidr) = &identity.pod_cidr {
                let existing = api
                    .get(&identity.name)
                    .await
                    .map_err(KubeletError::api("get node"))?;
                if existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.pod_cidr.as_ref())
                    .is_none()
                {
                    patch["spec"] = serde_json::json!({"podCIDR": cidr, "podCIDRs": [cidr]});
                }
            }
            api.patch(
                &identity.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(KubeletError::api("update node"))?;
            tracing::info!(node = %identity.name, "node was registered before; updated it");
        }
        Err(err) => return Err(KubeletError::api("register node")(err)),
    }
    post_status(api, identity, cri).await
}

/// Posts the node status through the status subresource.
pub async fn post_status(
    api: &Api<Node>,
    identity: &Identity,
    cri: &Cri,
) -> Result<Node, KubeletError> {
    let status = status(identity, cri, Timestamp::now()).await;
    api.patch_status(
        &identity.name,
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({ "status": status })),
    )
    .await
    .map_err(KubeletError::api("post node status"))
}

/// Creates or renews the node's Lease.
pub async fn renew_lease(api: &Api<Lease>, node: &Node) -> Result<(), KubeletError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let spec = LeaseSpec {
        holder_identity: Some(name.clone()),
        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
        renew_time: Some(MicroTime(Timestamp::now())),
        ..Default::default()
    };
    match api
        .get_opt(&name)
        .await
        .map_err(KubeletError::api("get lease"))?
    {
        Some(mut lease) => {
            lease.spec = Some(spec);
            api.replace(&name, &PostParams::default(), &lease)
                .await
                .map_err(KubeletError::api("renew lease"))?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some("kube-node-lease".into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: name.clone(),
                        uid: node.metadata.uid.clone().unwrap_or_default(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease)
                .await
                .map_err(KubeletError::api("create lease"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(tag: &str, digests: usize, size: u64) -> cri::Image {
        cri::Image {
            id: format!("sha256:{tag}"),
            repo_tags: vec![tag.to_owned()],
            repo_digests: (0..digests).map(|i| format!("{tag}@sha256:{i}")).collect(),
            size,
            ..Default::default()
        }
    }

    #[test]
    fn images_are_reported_largest_first_with_tags_then_digests() {
        let listed: Vec<cri::Image> = (0..60)
            .map(|i| image(&format!("img{i}"), 1, i * 10))
            .chain([image("big", 9, 10_000)])
            .collect();
        let reported = images(&listed);
        assert_eq!(reported.len(), 50);
        let big = &reported[0];
        assert_eq!(big.size_bytes, Some(10_000));
        let names = big.names.clone().unwrap();
        assert_eq!(names.len(), 5);
        assert_eq!(names[0], "big");
        assert_eq!(names[1], "big@sha256:0");
        assert_eq!(
            reported[1].names.as_deref(),
            Some(&["img59".to_owned(), "img59@sha256:0".to_owned()][..])
        );
        assert!(
            reported
                .windows(2)
                .all(|w| w[0].size_bytes >= w[1].size_bytes)
        );
    }

    #[test]
    fn the_architecture_is_named_as_go_names_it() {
        let arch = go_arch();
        assert!(!arch.is_empty());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(arch, "amd64");
        }
    }
}
