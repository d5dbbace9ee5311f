//! The pod's `/etc/hosts`, which the kubelet writes and mounts into every
//! container (`kubelet_pods.go`: `makeHostsMount`, `ensureHostsFile`):
//! localhost entries, the pod's own address under its hostname (and its
//! fully qualified name when it has a subdomain), then the pod's
//! `hostAliases`. A host-network pod gets the node's file instead, with its
//! aliases after it. Without it a container would see the hosts file the
//! runtime copies from the node, where the pod's own name is unknown.

use std::fmt::Write as _;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, HostAlias, Pod};

use crate::cri::api as cri;
use crate::kubelet::pod_spec;

/// Where containers see the file.
pub const ETC_HOSTS: &str = "/etc/hosts";
/// The file's name in the pod's directory.
const FILE: &str = "etc-hosts";

fn aliases(out: &mut String, aliases: &[HostAlias]) {
    if aliases.is_empty() {
        return;
    }
    out.push_str("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        let _ = writeln!(out, "{}\t{names}", alias.ip);
    }
}

/// The managed file of a pod with addresses `ips` (`managedHostsFileContent`).
fn managed(pod: &Pod, ips: &[&str], cluster_domain: &str) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let hostname = pod_spec::hostname(pod);
    let spec = pod.spec.as_ref();
    let subdomain = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty());
    for ip in ips {
        match subdomain {
            Some(sub) => {
                let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
                let _ = writeln!(
                    out,
                    "{ip}\t{hostname}.{sub}.{namespace}.svc.{cluster_domain}\t{hostname}"
                );
            }
            None => {
                let _ = writeln!(out, "{ip}\t{hostname}");
            }
        }
    }
    aliases(
        &mut out,
        spec.and_then(|s| s.host_aliases.as_deref())
            .unwrap_or_default(),
    );
    out
}

/// The file of a host-network pod: the node's, then the pod's aliases
/// (`nodeHostsFileContent`).
fn of_host_network(pod: &Pod, node_hosts: &str) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file (host network).\n");
    out.push_str(node_hosts);
    aliases(
        &mut out,
        pod.spec
            .as_ref()
            .and_then(|s| s.host_aliases.as_deref())
            .unwrap_or_default(),
    );
    out
}

/// Writes the pod's hosts file into `pod_dir` and returns its mount for
/// `container`; none when the container mounts a volume at `/etc/hosts`
/// itself, or when the pod has no address yet (`pod_ip` empty, not on the
/// host network).
pub fn mount(
    pod: &Pod,
    container: &Container,
    pod_dir: &Path,
    pod_ip: &str,
    cluster_domain: &str,
) -> std::io::Result<Option<cri::Mount>> {
    let own_mount = container
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == ETC_HOSTS);
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    if own_mount || (pod_ip.is_empty() && !host_network) {
        return Ok(None);
    }
    let content = if host_network {
        of_host_network(pod, &std::fs::read_to_string(ETC_HOSTS)?)
    } else {
        managed(pod, &[pod_ip], cluster_domain)
    };
    std::fs::create_dir_all(pod_dir)?;
    let path = pod_dir.join(FILE);
    std::fs::write(&path, content)?;
    Ok(Some(cri::Mount {
        container_path: ETC_HOSTS.into(),
        host_path: path.display().to_string(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    const LOCAL: &str = "# Kubernetes-managed hosts file.\n\
        127.0.0.1\tlocalhost\n\
        ::1\tlocalhost ip6-localhost ip6-loopback\n\
        fe00::0\tip6-localnet\n\
        fe00::0\tip6-mcastprefix\n\
        fe00::1\tip6-allnodes\n\
        fe00::2\tip6-allrouters\n";

    #[test]
    fn a_pod_finds_itself_and_its_aliases_in_its_hosts_file() {
        let plain = pod(serde_json::json!({"containers": []}));
        assert_eq!(
            managed(&plain, &["10.244.1.7"], "cluster.local"),
            format!("{LOCAL}10.244.1.7\tweb-0\n")
        );
        let named = pod(serde_json::json!({
            "containers": [],
            "hostname": "db",
            "subdomain": "backends",
            "hostAliases": [
                {"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]},
                {"ip": "10.1.2.4", "hostnames": ["baz.local"]},
            ],
        }));
        assert_eq!(
            managed(&named, &["10.244.1.7"], "cluster.local"),
            format!(
                "{LOCAL}10.244.1.7\tdb.backends.shop.svc.cluster.local\tdb\n\
                 \n# Entries added by HostAliases.\n\
                 10.1.2.3\tfoo.local\tbar.local\n\
                 10.1.2.4\tbaz.local\n"
            )
        );
    }

    #[test]
    fn a_host_network_pod_gets_the_nodes_file_with_its_aliases() {
        let host = pod(serde_json::json!({
            "containers": [],
            "hostNetwork": true,
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local"]}],
        }));
        assert_eq!(
            of_host_network(&host, "127.0.0.1\tlocalhost\n"),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1\tlocalhost\n\
             \n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\n"
        );
    }

    #[test]
    fn the_file_is_mounted_unless_the_container_brings_its_own_or_the_pod_has_no_address() {
        let dir = tempfile::tempdir().unwrap();
        let p = pod(serde_json::json!({"containers": []}));
        let plain: Container = serde_json::from_value(serde_json::json!({"name": "c"})).unwrap();
        let m = mount(&p, &plain, dir.path(), "10.244.1.7", "cluster.local")
            .unwrap()
            .expect("a mount");
        assert_eq!(m.container_path, "/etc/hosts");
        assert!(
            std::fs::read_to_string(&m.host_path)
                .unwrap()
                .ends_with("10.244.1.7\tweb-0\n")
        );
        assert!(
            mount(&p, &plain, dir.path(), "", "cluster.local")
                .unwrap()
                .is_none()
        );
        let own: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "volumeMounts": [{"name": "h", "mountPath": "/etc/hosts"}],
        }))
        .unwrap();
        assert!(
            mount(&p, &own, dir.path(), "10.244.1.7", "cluster.local")
                .unwrap()
                .is_none()
        );
    }
}
