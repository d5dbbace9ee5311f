//! A container's environment as the kubelet builds it
//! (`makeEnvironmentVariables`): `envFrom` sources first, then `env` in
//! order with `$(VAR)` expansion against what came before, `valueFrom`
//! field, resource, ConfigMap and Secret references, and the `kubernetes`
//! Service's variables.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use baton_apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::configmap_secret_watch::SourceData;
use crate::kubelet::pod_spec::expand;

/// A reference that cannot be resolved: the container cannot be created
/// (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("unsupported fieldPath {0}")]
    FieldPath(String),
    #[error("unsupported resource {0}")]
    Resource(String),
}

/// What environment resolution reads besides the pod.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The contents of the ConfigMaps and Secrets the pod references, by
    /// name; an absent one does not exist.
    pub config_maps: HashMap<String, Arc<SourceData>>,
    pub secrets: HashMap<String, Arc<SourceData>>,
    pub pod_ip: String,
    pub host_ip: String,
    /// The node's allocatable cpu (millicores) and memory (bytes): the
    /// value of a limit that is not set.
    pub node_cpu_millis: i64,
    pub node_memory_bytes: i64,
    /// `KUBERNETES_SERVICE_HOST`/`PORT`… of the `kubernetes` Service, when known.
    pub master_service: Option<(String, i32)>,
}

impl Sources {
    /// What this node gives every pod: its addresses and the node's
    /// capacity (the value of a limit that is not set).
    #[must_use]
    pub fn of_node(pod_ip: &str, host_ip: &str) -> Self {
        Self {
            pod_ip: pod_ip.to_owned(),
            host_ip: host_ip.to_owned(),
            node_cpu_millis: i64::try_from(
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            )
            .unwrap_or(1)
                * 1000,
            node_memory_bytes: crate::kubelet::node::memory_capacity_bytes(),
            ..Self::default()
        }
    }
}

/// ConfigMaps and Secrets the pod's containers reference in env and
/// envFrom (names), so the caller can fetch exactly those.
#[must_use]
pub fn referenced(pod: &Pod) -> (HashSet<String>, HashSet<String>) {
    let mut cms = HashSet::new();
    let mut secrets = HashSet::new();
    for (c, _) in crate::kubelet::pod_spec::containers(pod) {
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &e.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
        for e in c.env.iter().flatten() {
            if let Some(from) = &e.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    cms.insert(r.name.clone());
                }
                if let Some(r) = &from.secret_key_ref {
                    secrets.insert(r.name.clone());
                }
            }
        }
    }
    (cms, secrets)
}

/// A value as an environment variable holds it (bytes read as UTF-8).
fn as_string(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// `metadata.labels['x']` style selectors and plain field paths.
pub fn field_value(pod: &Pod, path: &str, sources: &Sources) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let subscript = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
            .map(|key| map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = subscript("metadata.labels", m.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = subscript("metadata.annotations", m.annotations.as_ref()) {
        return Ok(v);
    }
    let spec = pod.spec.clone().unwrap_or_default();
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(m.labels.as_ref()),
        "metadata.annotations" => format_map(m.annotations.as_ref()),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => sources.host_ip.clone(),
        "status.podIP" | "status.podIPs" => sources.pod_ip.clone(),
        other => return Err(EnvError::FieldPath(other.to_owned())),
    })
}

/// `key="value"` lines, sorted, as the downward API writes maps.
#[must_use]
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// A quantity in base units (cores, bytes), or `None` if malformed.
fn amount(q: &str) -> Option<f64> {
    Quantity::parse(q).ok().map(|q| q.as_approximate_f64())
}

/// A `resourceFieldRef` value: limits default to the node's allocatable,
/// divided by the divisor and rounded up (as `ExtractContainerResourceValue`).
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    sources: &Sources,
) -> Result<String, EnvError> {
    let r = c.resources.clone().unwrap_or_default();
    let get = |map: &Option<
        BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key))
            .and_then(|q| amount(&q.0))
    };
    let value = match resource {
        "limits.cpu" => get(&r.limits, "cpu").unwrap_or(sources.node_cpu_millis as f64 / 1000.0),
        "limits.memory" => get(&r.limits, "memory").unwrap_or(sources.node_memory_bytes as f64),
        "limits.ephemeral-storage" => get(&r.limits, "ephemeral-storage").unwrap_or(0.0),
        "requests.cpu" => get(&r.requests, "cpu").unwrap_or(0.0),
        "requests.memory" => get(&r.requests, "memory").unwrap_or(0.0),
        "requests.ephemeral-storage" => get(&r.requests, "ephemeral-storage").unwrap_or(0.0),
        other => return Err(EnvError::Resource(other.to_owned())),
    };
    let divisor = divisor.and_then(amount).filter(|d| *d > 0.0).unwrap_or(1.0);
    Ok(format!(
        "{}",
        (value / divisor - 1e-9).ceil().max(0.0) as i64
    ))
}

/// The environment of container `c` in order, names unique (a later
/// definition replaces an earlier one in place).
pub fn resolve(
    pod: &Pod,
    c: &Container,
    sources: &Sources,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let set =
        |order: &mut Vec<String>, values: &mut HashMap<String, String>, k: String, v: String| {
            if !values.contains_key(&k) {
                order.push(k.clone());
            }
            values.insert(k, v);
        };
    if let Some((host, port)) = &sources.master_service {
        for (k, v) in [
            ("KUBERNETES_SERVICE_HOST", host.clone()),
            ("KUBERNETES_SERVICE_PORT", port.to_string()),
            ("KUBERNETES_SERVICE_PORT_HTTPS", port.to_string()),
            ("KUBERNETES_PORT", format!("tcp://{host}:{port}")),
            (
                &format!("KUBERNETES_PORT_{port}_TCP"),
                format!("tcp://{host}:{port}"),
            ),
            (&format!("KUBERNETES_PORT_{port}_TCP_PROTO"), "tcp".into()),
            (
                &format!("KUBERNETES_PORT_{port}_TCP_PORT"),
                port.to_string(),
            ),
            (&format!("KUBERNETES_PORT_{port}_TCP_ADDR"), host.clone()),
        ] {
            set(&mut order, &mut values, k.to_owned(), v);
        }
    }
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.iter() {
                        set(
                            &mut order,
                            &mut values,
                            format!("{prefix}{k}"),
                            as_string(v),
                        );
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name) {
                Some(s) => {
                    for (k, v) in s.iter() {
                        set(
                            &mut order,
                            &mut values,
                            format!("{prefix}{k}"),
                            as_string(v),
                        );
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => Some(expand(e.value.as_deref().unwrap_or_default(), &values)),
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    Some(field_value(pod, &f.field_path, sources)?)
                } else if let Some(r) = &from.resource_field_ref {
                    let target = match r.container_name.as_deref() {
                        Some(name) if !name.is_empty() => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.iter().find(|x| x.name == name))
                            .unwrap_or(c),
                        _ => c,
                    };
                    Some(resource_value(
                        target,
                        &r.resource,
                        r.divisor.as_ref().map(|d| d.0.as_str()),
                        sources,
                    )?)
                } else if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match sources.config_maps.get(&r.name) {
                        Some(cm) => match cm.get(&r.key) {
                            Some(v) => Some(as_string(v)),
                            None if optional => None,
                            None => {
                                return Err(EnvError::ConfigMapKey {
                                    namespace: namespace.clone(),
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                        None if optional => None,
                        None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match sources.secrets.get(&r.name) {
                        Some(s) => match s.get(&r.key) {
                            Some(v) => Some(as_string(v)),
                            None if optional => None,
                            None => {
                                return Err(EnvError::SecretKey {
                                    namespace: namespace.clone(),
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                        None if optional => None,
                        None => return Err(EnvError::SecretNotFound(r.name.clone())),
                    }
                } else {
                    None
                }
            }
        };
        if let Some(value) = value {
            set(&mut order, &mut values, e.name.clone(), value);
        }
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = values.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "baton-node-1", "containers": [{
                "name": "c",
                "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "64Mi"}},
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                "env": [
                    {"name": "A", "value": "x"},
                    {"name": "B", "value": "$(A)-y"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
                    {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "key"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                    {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": true}}},
                ],
            }]},
        }))
        .unwrap()
    }

    fn sources() -> Sources {
        let cm = SourceData::from([
            ("key".into(), b"value".to_vec()),
            ("mode".into(), b"fast".to_vec()),
        ]);
        let secret = SourceData::from([("password".into(), b"hunter2".to_vec())]);
        Sources {
            config_maps: HashMap::from([("cfg".into(), Arc::new(cm))]),
            secrets: HashMap::from([("s".into(), Arc::new(secret))]),
            pod_ip: "10.244.1.5".into(),
            host_ip: "172.28.1.11".into(),
            node_cpu_millis: 2000,
            node_memory_bytes: 1 << 30,
            master_service: None,
        }
    }

    #[test]
    fn resolves_every_kind_of_reference_in_order() {
        let p = pod();
        let env = resolve(&p, &p.spec.as_ref().unwrap().containers[0], &sources()).unwrap();
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("CFG_key", "value"),
                ("CFG_mode", "fast"),
                ("A", "x"),
                ("B", "x-y"),
                ("POD", "web"),
                ("APP", "web"),
                ("IP", "10.244.1.5"),
                ("NODE", "baton-node-1"),
                ("MEM_MI", "64"),
                ("CPU_M", "250"),
                ("KEY", "value"),
                ("PASS", "hunter2"),
            ]
        );
    }

    #[test]
    fn a_missing_required_source_is_an_error() {
        let p = pod();
        let mut s = sources();
        s.secrets.clear();
        let err = resolve(&p, &p.spec.as_ref().unwrap().containers[0], &s).unwrap_err();
        assert_eq!(err, EnvError::SecretNotFound("s".into()));
        let (cms, secrets) = referenced(&p);
        assert_eq!(cms, HashSet::from(["cfg".to_owned()]));
        assert_eq!(
            secrets,
            HashSet::from(["s".to_owned(), "absent".to_owned()])
        );
    }
}
