//! What a pod's spec says, as every part of the kubelet reads it: its
//! containers with their roles (init, sidecar, app, ephemeral), its QoS
//! class, grace period, hostname and address, a container's spec hash, and
//! `$(VAR)` expansion.

use std::borrow::Cow;
use std::collections::HashMap;

use baton_apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod};
use sha2::{Digest as _, Sha256};

/// Kubernetes' default grace period.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Which list of the pod spec a container comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Init,
    /// An init container with `restartPolicy: Always` (a sidecar): counts
    /// as done once started, then runs beside the app containers, is
    /// probed and restarted like them, and stops after them.
    Sidecar,
    App,
    /// Added through `pods/ephemeralcontainers` (`kubectl debug`): started
    /// once, never restarted, optionally in the process namespace of the
    /// container it targets.
    Ephemeral {
        target: Option<String>,
    },
}

impl Role {
    /// The container's `fieldPath` in events
    /// (`spec.ephemeralContainers{dbg}`).
    #[must_use]
    pub fn field_path(&self, name: &str) -> String {
        let list = match self {
            Self::Init | Self::Sidecar => "initContainers",
            Self::App => "containers",
            Self::Ephemeral { .. } => "ephemeralContainers",
        };
        format!("spec.{list}{{{name}}}")
    }
}

/// Whether an init container is a sidecar (`restartPolicy: Always`).
#[must_use]
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// An ephemeral container as the `Container` of its common fields, which
/// every other step (image, env, mounts, CRI config) takes.
#[must_use]
pub fn ephemeral_as_container(ec: &EphemeralContainer) -> Container {
    Container {
        name: ec.name.clone(),
        image: ec.image.clone(),
        image_pull_policy: ec.image_pull_policy.clone(),
        command: ec.command.clone(),
        args: ec.args.clone(),
        working_dir: ec.working_dir.clone(),
        env: ec.env.clone(),
        env_from: ec.env_from.clone(),
        volume_mounts: ec.volume_mounts.clone(),
        volume_devices: ec.volume_devices.clone(),
        security_context: ec.security_context.clone(),
        stdin: ec.stdin,
        stdin_once: ec.stdin_once,
        tty: ec.tty,
        termination_message_path: ec.termination_message_path.clone(),
        termination_message_policy: ec.termination_message_policy.clone(),
        ..Default::default()
    }
}

/// Every container of the pod with its role: init containers, app
/// containers, then ephemeral containers.
pub fn containers(pod: &Pod) -> impl Iterator<Item = (Cow<'_, Container>, Role)> {
    let spec = pod.spec.as_ref();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let role = if is_sidecar(c) {
                Role::Sidecar
            } else {
                Role::Init
            };
            (Cow::Borrowed(c), role)
        });
    let app = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| (Cow::Borrowed(c), Role::App));
    let ephemeral = spec
        .and_then(|s| s.ephemeral_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let target = e.target_container_name.clone().filter(|t| !t.is_empty());
            (
                Cow::Owned(ephemeral_as_container(e)),
                Role::Ephemeral { target },
            )
        });
    init.chain(app).chain(ephemeral)
}

/// The container of the pod named `name`, with its role.
#[must_use]
pub fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<(Cow<'a, Container>, Role)> {
    containers(pod).find(|(c, _)| c.name == name)
}

/// A pod's QoS class, computed as `v1qos.GetPodQOS` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    #[must_use]
    pub fn of(pod: &Pod) -> Self {
        let Some(spec) = pod.spec.as_ref() else {
            return Self::BestEffort;
        };
        let containers: Vec<&Container> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .collect();
        let mut any = false;
        let mut guaranteed = true;
        for c in &containers {
            let r = c.resources.clone().unwrap_or_default();
            let requests = r.requests.unwrap_or_default();
            let limits = r.limits.unwrap_or_default();
            for name in ["cpu", "memory"] {
                let req = requests.get(name).or_else(|| limits.get(name));
                let lim = limits.get(name);
                if req.is_some() || lim.is_some() {
                    any = true;
                }
                match (req, lim) {
                    (Some(q), Some(l)) if same_amount(&q.0, &l.0) => {}
                    _ => guaranteed = false,
                }
            }
        }
        if !any {
            Self::BestEffort
        } else if guaranteed {
            Self::Guaranteed
        } else {
            Self::Burstable
        }
    }

    /// The QoS tier's cgroup below `kubepods` (Guaranteed pods sit in
    /// `kubepods` itself), as the kubelet's cgroupfs layout.
    #[must_use]
    pub fn cgroup_dir(self) -> &'static str {
        match self {
            Self::Guaranteed => "",
            Self::Burstable => "/burstable",
            Self::BestEffort => "/besteffort",
        }
    }

    /// The `status.qosClass` string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "Guaranteed",
            Self::Burstable => "Burstable",
            Self::BestEffort => "BestEffort",
        }
    }
}

/// A stable hash of a container's spec: a change restarts the container.
#[must_use]
pub fn container_hash(c: &Container) -> String {
    let json = serde_json::to_vec(c).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// The pod's grace period for stopping.
#[must_use]
pub fn grace_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(DEFAULT_GRACE_SECONDS)
        .max(0)
}

/// The pod's hostname: `spec.hostname`, else its name, cut to 63.
#[must_use]
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut name: String = name.chars().take(63).collect();
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    name
}

/// The pod's address: its sandbox's, or the node's (`host_ip`) for a
/// host-network pod, whose sandbox has none of its own, as the kubelet
/// gives it (what `status.podIP`, Endpoints, probes, hooks and the
/// downward API then see).
#[must_use]
pub fn pod_ip(pod: &Pod, sandbox_ip: Option<&str>, host_ip: &str) -> Option<String> {
    match sandbox_ip.filter(|ip| !ip.is_empty()) {
        Some(ip) => Some(ip.to_owned()),
        None if host_network(pod) && !host_ip.is_empty() => Some(host_ip.to_owned()),
        None => None,
    }
}

/// Whether the pod uses the node's network namespace.
#[must_use]
pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// Expands `$(VAR)` references against `env` as Kubernetes does (`$$` is
/// a literal `$`; unknown references stay as written).
#[must_use]
pub fn expand(input: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            if bytes[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if bytes[i + 1] == b'('
                && let Some(end) = input[i + 2..].find(')')
            {
                let name = &input[i + 2..i + 2 + end];
                if let Some(value) = env.get(name) {
                    out.push_str(value);
                } else {
                    out.push_str(&input[i..i + 3 + end]);
                }
                i += 3 + end;
                continue;
            }
        }
        let ch = input[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Whether two quantities are the same amount (`1` and `1000m`); two
/// malformed ones count as the same.
fn same_amount(a: &str, b: &str) -> bool {
    match (Quantity::parse(a), Quantity::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp_value(&b).is_eq(),
        (a, b) => a.is_err() && b.is_err(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_references_expand_like_kubernetes() {
        let env = HashMap::from([("A".to_owned(), "x".to_owned())]);
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
    }
}
