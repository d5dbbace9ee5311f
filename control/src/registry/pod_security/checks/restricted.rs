//! The restricted level's checks: current pod hardening practice.

use std::collections::BTreeSet;

use serde_json::Value;

use super::baseline::{pod_volumes, valid_seccomp};
use super::{
    Violation, container_sc, containers, containers_phrase, get, join_quote, name, pluralize,
    pod_sc, sorted, str_of, strings,
};

/// Whether the pod runs on Windows (`spec.os.name`), where the Linux-only
/// restricted checks do not apply since v1.25; its API validation refuses
/// the Linux-only fields instead.
fn windows(spec: &Value) -> bool {
    spec.pointer("/os/name").and_then(Value::as_str) == Some("windows")
}

/// Containers must set `allowPrivilegeEscalation: false`, unless the pod
/// runs on Windows.
pub(super) fn allow_privilege_escalation(meta: &Value, spec: &Value) -> Option<Violation> {
    if windows(spec) {
        return None;
    }
    allow_privilege_escalation_1_8(meta, spec)
}

/// Containers must set `allowPrivilegeEscalation: false` (before v1.25).
pub(super) fn allow_privilege_escalation_1_8(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<&str> = containers(spec)
        .filter(|c| {
            container_sc(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false)
        })
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    Violation::new(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    )
}

/// Containers must drop ALL capabilities and may add only
/// NET_BIND_SERVICE, unless the pod runs on Windows.
pub(super) fn capabilities(meta: &Value, spec: &Value) -> Option<Violation> {
    if windows(spec) {
        return None;
    }
    capabilities_1_22(meta, spec)
}

/// The capabilities rule before v1.25.
pub(super) fn capabilities_1_22(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut missing_drop_all = Vec::new();
    let mut adding = Vec::new();
    let mut added = BTreeSet::new();
    for c in containers(spec) {
        let Some(caps) = container_sc(c, "capabilities") else {
            missing_drop_all.push(name(c));
            continue;
        };
        if !strings(caps.get("drop")).any(|d| d == "ALL") {
            missing_drop_all.push(name(c));
        }
        let mut forbidden = false;
        for cap in strings(caps.get("add")) {
            if cap != "NET_BIND_SERVICE" {
                forbidden = true;
                added.insert(cap.to_string());
            }
        }
        if forbidden {
            adding.push(name(c));
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop_all)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&sorted(&added))
        ));
    }
    if details.is_empty() {
        return None;
    }
    Violation::new("unrestricted capabilities", details.join("; "))
}

/// The volume sources restricted pods may use.
const ALLOWED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// The sources restricted pods may not use, in upstream's order of
/// precedence when a volume names several.
const RESTRICTED_VOLUMES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

/// Only core volume types (and PersistentVolumeClaims) are allowed.
pub(super) fn volumes(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad_volumes = Vec::new();
    let mut types = BTreeSet::new();
    for v in pod_volumes(spec) {
        if ALLOWED_VOLUMES.iter().any(|k| get(v, k).is_some()) {
            continue;
        }
        bad_volumes.push(name(v));
        let t = RESTRICTED_VOLUMES
            .iter()
            .find(|k| get(v, k).is_some())
            .copied()
            .unwrap_or("unknown");
        types.insert(t.to_string());
    }
    if bad_volumes.is_empty() {
        return None;
    }
    Violation::new(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad_volumes.len()),
            join_quote(&bad_volumes),
            pluralize("uses", "use", bad_volumes.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&sorted(&types))
        ),
    )
}

/// The pod or every container must set `runAsNonRoot: true`, and none may
/// set it false.
pub(super) fn run_as_non_root(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut pod_non_root = false;
    match pod_sc(spec, "runAsNonRoot").and_then(Value::as_bool) {
        Some(false) => setters.push("pod".to_string()),
        Some(true) => pod_non_root = true,
        None => {}
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for c in containers(spec) {
        match container_sc(c, "runAsNonRoot").and_then(Value::as_bool) {
            Some(false) => explicitly_bad.push(name(c)),
            Some(true) => {}
            None if !pod_non_root => implicitly_bad.push(name(c)),
            None => {}
        }
    }
    if !explicitly_bad.is_empty() {
        setters.push(containers_phrase(&explicitly_bad));
    }
    if !setters.is_empty() {
        return Violation::new(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if implicitly_bad.is_empty() {
        return None;
    }
    Violation::new(
        "runAsNonRoot != true",
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_phrase(&implicitly_bad)
        ),
    )
}

/// Neither the pod nor a container may set `runAsUser: 0`.
pub(super) fn run_as_user(_meta: &Value, spec: &Value) -> Option<Violation> {
    let root = |v: Option<&Value>| v.and_then(Value::as_i64) == Some(0);
    let mut setters = Vec::new();
    if root(pod_sc(spec, "runAsUser")) {
        setters.push("pod".to_string());
    }
    let bad: Vec<&str> = containers(spec)
        .filter(|c| root(container_sc(c, "runAsUser")))
        .map(name)
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    Violation::new(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

/// A seccomp profile must be set, on the pod or every container, to
/// `RuntimeDefault` or `Localhost`, unless the pod runs on Windows.
pub(super) fn seccomp_profile(meta: &Value, spec: &Value) -> Option<Violation> {
    if windows(spec) {
        return None;
    }
    seccomp_profile_1_19(meta, spec)
}

/// The seccomp rule before v1.25.
pub(super) fn seccomp_profile_1_19(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    let mut pod_set = false;
    if let Some(profile) = pod_sc(spec, "seccompProfile") {
        let t = str_of(profile, "type");
        if valid_seccomp(t) {
            pod_set = true;
        } else {
            setters.push("pod".to_string());
            bad_values.insert(t.to_string());
        }
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for c in containers(spec) {
        match container_sc(c, "seccompProfile") {
            Some(profile) => {
                let t = str_of(profile, "type");
                if !valid_seccomp(t) {
                    explicitly_bad.push(name(c));
                    bad_values.insert(t.to_string());
                }
            }
            None if !pod_set => implicitly_bad.push(name(c)),
            None => {}
        }
    }
    if !explicitly_bad.is_empty() {
        setters.push(containers_phrase(&explicitly_bad));
    }
    if !setters.is_empty() {
        return Violation::new(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&sorted(&bad_values))
            ),
        );
    }
    if implicitly_bad.is_empty() {
        return None;
    }
    Violation::new(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&implicitly_bad)
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::run;
    use super::*;

    fn spec_of(containers: Value) -> Value {
        json!({ "containers": containers })
    }

    #[test]
    fn privilege_escalation() {
        let ok =
            spec_of(json!([{"name": "a", "securityContext": {"allowPrivilegeEscalation": false}}]));
        assert_eq!(run(allow_privilege_escalation, &json!({}), &ok), None);
        let bad = json!({
            "initContainers": [{"name": "i"}],
            "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": true}},
                           {"name": "b", "securityContext": {"allowPrivilegeEscalation": false}}],
        });
        assert_eq!(
            run(allow_privilege_escalation, &json!({}), &bad).unwrap(),
            "allowPrivilegeEscalation != false (containers \"i\", \"a\" must set securityContext.allowPrivilegeEscalation=false)"
        );
    }

    #[test]
    fn restricted_capabilities() {
        let ok = spec_of(json!([
            {"name": "a", "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}
        ]));
        assert_eq!(run(capabilities, &json!({}), &ok), None);
        let missing = spec_of(
            json!([{"name": "a"}, {"name": "b", "securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}]),
        );
        assert_eq!(
            run(capabilities, &json!({}), &missing).unwrap(),
            "unrestricted capabilities (containers \"a\", \"b\" must set securityContext.capabilities.drop=[\"ALL\"])"
        );
        let adding = spec_of(json!([
            {"name": "a", "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["SYS_TIME", "CHOWN"]}}}
        ]));
        assert_eq!(
            run(capabilities, &json!({}), &adding).unwrap(),
            "unrestricted capabilities (container \"a\" must not include \"CHOWN\", \"SYS_TIME\" in securityContext.capabilities.add)"
        );
    }

    #[test]
    fn restricted_volume_types() {
        let ok = json!({"volumes": [
            {"name": "a", "configMap": {"name": "x"}}, {"name": "b", "csi": {"driver": "d"}},
            {"name": "c", "downwardAPI": {}}, {"name": "d", "emptyDir": {}},
            {"name": "e", "ephemeral": {}}, {"name": "f", "persistentVolumeClaim": {"claimName": "c"}},
            {"name": "g", "projected": {}}, {"name": "h", "secret": {"secretName": "s"}},
            {"name": "i", "image": {"reference": "r"}},
        ]});
        assert_eq!(run(volumes, &json!({}), &ok), None);
        let one = json!({"volumes": [{"name": "host", "hostPath": {"path": "/"}}]});
        assert_eq!(
            run(volumes, &json!({}), &one).unwrap(),
            "restricted volume types (volume \"host\" uses restricted volume type \"hostPath\")"
        );
        let many = json!({"volumes": [
            {"name": "c", "nfs": {"server": "s", "path": "/"}},
            {"name": "d", "emptyDir": {}},
            {"name": "e", "hostPath": {"path": "/"}},
            {"name": "f"},
        ]});
        assert_eq!(
            run(volumes, &json!({}), &many).unwrap(),
            "restricted volume types (volumes \"c\", \"e\", \"f\" use restricted volume types \"hostPath\", \"nfs\", \"unknown\")"
        );
    }

    #[test]
    fn non_root() {
        let ok = json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "a"}]});
        assert_eq!(run(run_as_non_root, &json!({}), &ok), None);
        let ok = spec_of(json!([{"name": "a", "securityContext": {"runAsNonRoot": true}}]));
        assert_eq!(run(run_as_non_root, &json!({}), &ok), None);
        let implicit = spec_of(
            json!([{"name": "a"}, {"name": "b", "securityContext": {"runAsNonRoot": true}}]),
        );
        assert_eq!(
            run(run_as_non_root, &json!({}), &implicit).unwrap(),
            "runAsNonRoot != true (pod or container \"a\" must set securityContext.runAsNonRoot=true)"
        );
        let explicit = json!({"securityContext": {"runAsNonRoot": false},
            "containers": [{"name": "a", "securityContext": {"runAsNonRoot": false}}, {"name": "b"}]});
        assert_eq!(
            run(run_as_non_root, &json!({}), &explicit).unwrap(),
            "runAsNonRoot != true (pod and container \"a\" must not set securityContext.runAsNonRoot=false)"
        );
    }

    #[test]
    fn root_user() {
        let ok = json!({"securityContext": {"runAsUser": 1000},
            "containers": [{"name": "a", "securityContext": {"runAsUser": 1}}, {"name": "b"}]});
        assert_eq!(run(run_as_user, &json!({}), &ok), None);
        let bad = json!({"securityContext": {"runAsUser": 0},
            "containers": [{"name": "a", "securityContext": {"runAsUser": 0}},
                           {"name": "b", "securityContext": {"runAsUser": 0}}]});
        assert_eq!(
            run(run_as_user, &json!({}), &bad).unwrap(),
            "runAsUser=0 (pod and containers \"a\", \"b\" must not set runAsUser=0)"
        );
    }

    #[test]
    fn seccomp_restricted() {
        let ok = json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a"}]});
        assert_eq!(run(seccomp_profile, &json!({}), &ok), None);
        let implicit = spec_of(json!([{"name": "a"},
            {"name": "b", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}}]));
        assert_eq!(
            run(seccomp_profile, &json!({}), &implicit).unwrap(),
            "seccompProfile (pod or container \"a\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        let explicit = json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "a"}]});
        assert_eq!(
            run(seccomp_profile, &json!({}), &explicit).unwrap(),
            "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
    }
}
