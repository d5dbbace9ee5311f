//! Pod and PodSpec defaulting (pkg/apis/core/v1/defaults.go and
//! zz_generated.defaults.go: `SetDefaults_Pod`, `SetDefaults_PodSpec`,
//! `SetDefaults_Container`, `SetDefaults_Probe`, `SetDefaults_HTTPGetAction`,
//! `SetDefaults_Volume`, volume source modes, `SetDefaults_ResourceList`),
//! the v1 conversions that fill mirrored fields (`serviceAccount`, `podIP`),
//! and the create-time mutations of the admission plugins kube-apiserver
//! enables by default (ServiceAccount, DefaultTolerationSeconds, Priority).

use baton_apimachinery::quantity::Quantity;
use serde_json::{Value, json};

use super::json::{Obj, child, default_nonzero, default_str, default_value, each, present, str_of};

/// `v1.DefaultTerminationGracePeriodSeconds`.
const DEFAULT_TERMINATION_GRACE_PERIOD: i64 = 30;
/// `SecretVolumeSourceDefaultMode` and the other volume modes: 0644.
const DEFAULT_MODE: i64 = 0o644;
/// DefaultTolerationSeconds admission: `--default-not-ready-toleration-seconds`.
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Every volume source field of `v1.VolumeSource`.
pub const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

/// Rewrites every quantity of a `ResourceList` in canonical form, rounded up
/// to milli precision (`SetDefaults_ResourceList` plus the JSON round trip).
/// Values that do not parse are left for validation to report.
pub fn canonicalize_resource_list(list: Option<&mut Value>) {
    let Some(map) = list.and_then(Value::as_object_mut) else {
        return;
    };
    for v in map.values_mut() {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        if let Ok(mut q) = Quantity::parse(&text) {
            q.round_up_to_milli();
            *v = Value::String(q.canonical());
        }
    }
}

/// Canonical form of a single optional quantity field (no milli rounding).
pub fn canonicalize_quantity(obj: &mut Obj, key: &str) {
    let text = match obj.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return,
    };
    if let Ok(q) = Quantity::parse(&text) {
        obj.insert(key.to_string(), Value::String(q.canonical()));
    }
}

/// The pull policy `SetDefaults_Container` picks: `Always` for `:latest` or
/// an untagged, undigested image, `IfNotPresent` otherwise (including images
/// that do not parse as references).
pub fn default_pull_policy(image: &str) -> &'static str {
    match image_tag(image) {
        Some(tag) if tag == "latest" => "Always",
        _ => "IfNotPresent",
    }
}

/// The tag `parsers.ParseImageName` reports: `Some("latest")` when neither a
/// tag nor a digest is given, `Some("")` with only a digest, `None` when the
/// reference is invalid.
fn image_tag(image: &str) -> Option<String> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let (algo, hex) = d.split_once(':')?;
        if algo.is_empty() || hex.len() < 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(t) = tag {
        let b = t.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !ok {
            return None;
        }
    }
    let mut components: Vec<&str> = repo.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.bytes().any(|c| c.is_ascii_uppercase())
        {
            let valid_domain = !first.is_empty()
                && first.bytes().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']')
                });
            if !valid_domain {
                return None;
            }
            components.remove(0);
        }
    }
    let path_ok = components.iter().all(|c| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| {
                x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'.' | b'_' | b'-')
            })
    });
    if !path_ok {
        return None;
    }
    Some(match (tag, digest) {
        (Some(t), _) => t.to_string(),
        (None, Some(_)) => String::new(),
        (None, None) => "latest".to_string(),
    })
}

fn default_field_ref(obj: &mut Obj) {
    if let Some(fr) = present(obj, "fieldRef") {
        default_str(fr, "apiVersion", "v1");
    }
}

fn default_http_get(handler: &mut Obj) {
    if let Some(h) = present(handler, "httpGet") {
        default_str(h, "path", "/");
        default_str(h, "scheme", "HTTP");
    }
}

fn default_probe(container: &mut Obj, key: &str) {
    let Some(p) = present(container, key) else {
        return;
    };
    default_nonzero(p, "timeoutSeconds", 1);
    default_nonzero(p, "periodSeconds", 10);
    default_nonzero(p, "successThreshold", 1);
    default_nonzero(p, "failureThreshold", 3);
    default_http_get(p);
    if let Some(g) = present(p, "grpc") {
        default_value(g, "service", json!(""));
    }
}

/// `SetDefaults_Container` and the generated defaults of its members.
fn default_container(c: &mut Obj) {
    let image = str_of(c, "image").to_string();
    default_str(c, "imagePullPolicy", default_pull_policy(&image));
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    // A non-pointer struct in Go: always serialized, `{}` when empty.
    default_value(c, "resources", json!({}));
    for port in each(c, "ports") {
        default_str(port, "protocol", "TCP");
    }
    for env in each(c, "env") {
        if let Some(vf) = present(env, "valueFrom") {
            default_field_ref(vf);
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        default_probe(c, probe);
    }
    if let Some(lc) = present(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = present(lc, hook) {
                default_http_get(h);
            }
        }
    }
    if let Some(r) = present(c, "resources") {
        canonicalize_resource_list(r.get_mut("limits"));
        canonicalize_resource_list(r.get_mut("requests"));
    }
}

/// `SetDefaults_Volume` and the volume sources' generated defaults.
fn default_volume(v: &mut Obj) {
    if !VOLUME_SOURCES
        .iter()
        .any(|s| v.get(*s).is_some_and(|x| !x.is_null()))
    {
        v.insert("emptyDir".to_string(), json!({}));
    }
    if let Some(e) = present(v, "emptyDir") {
        canonicalize_quantity(e, "sizeLimit");
    }
    for key in ["secret", "configMap"] {
        if let Some(s) = present(v, key) {
            default_value(s, "defaultMode", json!(DEFAULT_MODE));
        }
    }
    if let Some(d) = present(v, "downwardAPI") {
        default_value(d, "defaultMode", json!(DEFAULT_MODE));
        for item in each(d, "items") {
            default_field_ref(item);
        }
    }
    if let Some(p) = present(v, "projected") {
        default_value(p, "defaultMode", json!(DEFAULT_MODE));
        for src in each(p, "sources") {
            if let Some(t) = present(src, "serviceAccountToken") {
                default_value(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = present(src, "downwardAPI") {
                for item in each(d, "items") {
                    default_field_ref(item);
                }
            }
        }
    }
    if let Some(h) = present(v, "hostPath") {
        default_value(h, "type", json!(""));
    }
    if let Some(i) = present(v, "iscsi") {
        default_str(i, "iscsiInterface", "default");
    }
    if let Some(r) = present(v, "rbd") {
        default_str(r, "pool", "rbd");
        default_str(r, "user", "admin");
        default_str(r, "keyring", "/etc/ceph/keyring");
    }
    if let Some(a) = present(v, "azureDisk") {
        default_value(a, "cachingMode", json!("ReadWrite"));
        default_value(a, "fsType", json!("ext4"));
        default_value(a, "readOnly", json!(false));
        default_value(a, "kind", json!("Shared"));
    }
    if let Some(s) = present(v, "scaleIO") {
        default_str(s, "storageMode", "ThinProvisioned");
        default_str(s, "fsType", "xfs");
    }
    if let Some(spec) = present(v, "ephemeral")
        .and_then(|e| present(e, "volumeClaimTemplate"))
        .and_then(|t| present(t, "spec"))
    {
        default_value(spec, "volumeMode", json!("Filesystem"));
        if let Some(r) = present(spec, "resources") {
            canonicalize_resource_list(r.get_mut("requests"));
            canonicalize_resource_list(r.get_mut("limits"));
        }
    }
}

/// `SetDefaults_PodSpec` with everything generated for a PodSpec's members;
/// applies to pods and pod templates alike.
pub fn default_pod_spec(spec: &mut Obj) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_value(spec, "securityContext", json!({}));
    default_value(
        spec,
        "terminationGracePeriodSeconds",
        json!(DEFAULT_TERMINATION_GRACE_PERIOD),
    );
    default_str(spec, "schedulerName", "default-scheduler");
    // v1 conversion: `serviceAccount` is the deprecated alias of
    // `serviceAccountName`; the name wins and the alias mirrors it.
    let sa_name = str_of(spec, "serviceAccountName").to_string();
    let sa_alias = str_of(spec, "serviceAccount").to_string();
    if sa_name.is_empty() && !sa_alias.is_empty() {
        spec.insert("serviceAccountName".into(), json!(sa_alias));
    } else if !sa_name.is_empty() {
        spec.insert("serviceAccount".into(), json!(sa_name));
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in each(spec, key) {
            default_container(c);
        }
    }
    for v in each(spec, "volumes") {
        default_volume(v);
    }
    canonicalize_resource_list(spec.get_mut("overhead"));
    if let Some(r) = present(spec, "resources") {
        canonicalize_resource_list(r.get_mut("limits"));
        canonicalize_resource_list(r.get_mut("requests"));
    }
}

/// Copies `limits` into missing `requests` (`SetDefaults_Pod`; pods only,
/// not templates).
fn requests_from_limits(c: &mut Obj) {
    let Some(r) = present(c, "resources") else {
        return;
    };
    let Some(limits) = r.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = child(r, "requests") else {
        return;
    };
    for (k, v) in limits {
        requests.entry(k).or_insert(v);
    }
}

/// Fills the single-IP field from the list and the list from the single IP
/// (`Convert_v1_PodStatus_To_core_PodStatus`: the single field wins when
/// both are set and differ).
fn sync_ip_pair(status: &mut Obj, single: &str, list: &str) {
    let ip = str_of(status, single).to_string();
    let first = status
        .get(list)
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|e| e.get("ip"))
        .and_then(Value::as_str)
        .map(str::to_string);
    match (ip.is_empty(), first) {
        (false, Some(f)) if f != ip => {
            status.insert(list.into(), json!([{ "ip": ip }]));
        }
        (false, None) => {
            status.insert(list.into(), json!([{ "ip": ip }]));
        }
        (true, Some(f)) => {
            status.insert(single.into(), json!(f));
        }
        _ => {}
    }
}

/// All defaults of a Pod.
pub fn default_pod(pod: &mut Obj) {
    let Some(spec) = child(pod, "spec") else {
        return;
    };
    for key in ["containers", "initContainers"] {
        for c in each(spec, key) {
            requests_from_limits(c);
        }
    }
    default_value(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for c in each(spec, key) {
                for port in each(c, "ports") {
                    let cp = port.get("containerPort").cloned().unwrap_or(Value::Null);
                    if port.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                        port.insert("hostPort".into(), cp);
                    }
                }
            }
        }
    }
    default_pod_spec(spec);
    if let Some(status) = present(pod, "status") {
        sync_ip_pair(status, "podIP", "podIPs");
        sync_ip_pair(status, "hostIP", "hostIPs");
    }
}

/// A PriorityClass as the Priority admission plugin needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityClassInfo {
    pub name: String,
    pub value: i32,
    pub preemption_policy: Option<String>,
}

/// The built-in classes (`scheduling.SystemPriorityClasses`).
pub fn system_priority_class(name: &str) -> Option<PriorityClassInfo> {
    let value = match name {
        "system-node-critical" => 2_000_001_000,
        "system-cluster-critical" => 2_000_000_000,
        _ => return None,
    };
    Some(PriorityClassInfo {
        name: name.to_string(),
        value,
        preemption_policy: Some("PreemptLowerPriority".to_string()),
    })
}

/// Why the Priority admission plugin refused a pod (kube-apiserver answers
/// 403 Forbidden with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("no PriorityClass with name {0} was found")]
    PriorityClassNotFound(String),
    #[error(
        "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name"
    )]
    PriorityMismatch { given: i64, computed: i64 },
}

/// The create-time mutations of kube-apiserver's default admission plugins
/// on a Pod:
/// - ServiceAccount: `serviceAccountName` (and its alias) default to
///   `default`;
/// - DefaultTolerationSeconds: `NoExecute` tolerations of 300 s for the
///   not-ready and unreachable taints unless already tolerated;
/// - Priority: `priority` and `preemptionPolicy` from the pod's
///   PriorityClass. `class` is the class named by
///   `spec.priorityClassName` (or the global default class when the pod
///   names none), looked up by the caller; built-in `system-*` classes are
///   resolved here.
pub fn admit_pod_create(
    pod: &mut Value,
    class: Option<&PriorityClassInfo>,
) -> Result<(), AdmissionError> {
    let Some(spec) = pod.as_object_mut().and_then(|p| child(p, "spec")) else {
        return Ok(());
    };
    default_str(spec, "serviceAccountName", "default");
    let sa = str_of(spec, "serviceAccountName").to_string();
    spec.insert("serviceAccount".into(), json!(sa));

    let mut tolerates = [false, false];
    for t in spec
        .get("tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = t.get("key").and_then(Value::as_str).unwrap_or("");
        let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
        if effect != "NoExecute" && !effect.is_empty() {
            continue;
        }
        for (i, taint) in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ]
        .iter()
        .enumerate()
        {
            if key == *taint || key.is_empty() {
                tolerates[i] = true;
            }
        }
    }
    for (i, taint) in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    .iter()
    .enumerate()
    {
        if !tolerates[i] {
            let list = spec.entry("tolerations").or_insert_with(|| json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            if let Some(a) = list.as_array_mut() {
                a.push(json!({
                    "key": taint,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }));
            }
        }
    }

    let class_name = str_of(spec, "priorityClassName").to_string();
    let resolved = if class_name.is_empty() {
        class.cloned()
    } else {
        match system_priority_class(&class_name).or_else(|| class.cloned()) {
            Some(c) => Some(c),
            None => return Err(AdmissionError::PriorityClassNotFound(class_name)),
        }
    };
    let (priority, policy) = match &resolved {
        Some(c) => (
            i64::from(c.value),
            c.preemption_policy
                .clone()
                .unwrap_or_else(|| "PreemptLowerPriority".into()),
        ),
        None => (0, "PreemptLowerPriority".to_string()),
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != priority
    {
        return Err(AdmissionError::PriorityMismatch {
            given,
            computed: priority,
        });
    }
    if class_name.is_empty()
        && let Some(c) = &resolved
    {
        spec.insert("priorityClassName".into(), json!(c.name));
    }
    spec.insert("priority".into(), json!(priority));
    default_value(spec, "preemptionPolicy", json!(policy));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(pod: Value) -> Value {
        let mut pod = pod;
        default_pod(pod.as_object_mut().unwrap());
        pod
    }

    // SetDefaults_Container: imagePullPolicy from the tag.
    #[test]
    fn pull_policy_by_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/nginx:1"),
            "IfNotPresent"
        );
        assert_eq!(
            default_pull_policy(
                "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("NGINX"), "IfNotPresent");
        assert_eq!(default_pull_policy(""), "IfNotPresent");
    }

    // SetDefaults_Pod / SetDefaults_PodSpec / SetDefaults_Container / probes / volumes.
    #[test]
    fn pod_defaults_match_kube_apiserver() {
        let pod = defaulted(json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{
                    "name": "c", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80}],
                    "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}},
                    "livenessProbe": {"httpGet": {"port": 80}},
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
                }],
                "volumes": [{"name": "a"}, {"name": "b", "configMap": {"name": "x"}}, {"name": "h", "hostPath": {"path": "/x"}}]
            }
        }));
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(
            c["resources"]["limits"],
            json!({"cpu": "500m", "memory": "1Gi"})
        );
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu": "500m", "memory": "1Gi"})
        );
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][2]["hostPath"]["type"], "");
    }

    // Convert_v1_PodStatus_To_core_PodStatus / serviceAccount alias.
    #[test]
    fn mirrored_fields() {
        let pod = defaulted(
            json!({"spec": {"serviceAccount": "sa", "containers": []}, "status": {"podIPs": [{"ip": "10.244.1.5"}]}}),
        );
        assert_eq!(pod["spec"]["serviceAccountName"], "sa");
        assert_eq!(pod["status"]["podIP"], "10.244.1.5");
        let pod = defaulted(json!({"spec": {}, "status": {"hostIP": "10.0.0.2"}}));
        assert_eq!(pod["status"]["hostIPs"], json!([{"ip": "10.0.0.2"}]));
    }

    // hostNetwork pods: hostPort defaults to containerPort.
    #[test]
    fn host_network_ports() {
        let pod = defaulted(
            json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]}}),
        );
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
    }

    // ServiceAccount, DefaultTolerationSeconds and Priority admission.
    #[test]
    fn admission_mutations() {
        let mut pod = json!({"spec": {"containers": [], "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]}});
        admit_pod_create(&mut pod, None).unwrap();
        let spec = &pod["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(
            spec["tolerations"][1],
            json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
        );

        let mut pod = json!({"spec": {"priorityClassName": "system-node-critical"}});
        admit_pod_create(&mut pod, None).unwrap();
        assert_eq!(pod["spec"]["priority"], 2_000_001_000);

        let mut pod = json!({"spec": {"priorityClassName": "gold"}});
        assert_eq!(
            admit_pod_create(&mut pod, None).unwrap_err().to_string(),
            "no PriorityClass with name gold was found"
        );
        let gold = PriorityClassInfo {
            name: "gold".into(),
            value: 1000,
            preemption_policy: Some("Never".into()),
        };
        let mut pod = json!({"spec": {"priorityClassName": "gold"}});
        admit_pod_create(&mut pod, Some(&gold)).unwrap();
        assert_eq!(pod["spec"]["priority"], 1000);
        assert_eq!(pod["spec"]["preemptionPolicy"], "Never");
    }
}
