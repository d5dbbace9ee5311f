//! The token mount of kube-apiserver's ServiceAccount admission plugin: a
//! pod that automounts its ServiceAccount's token gets a projected
//! `kube-api-access-<suffix>` volume (a bound token renewed by the kubelet,
//! the `kube-root-ca.crt` bundle and the namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container and
//! init container that has nothing mounted there.

use serde_json::{Value, json};

/// Prefix of the volume's name.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// Where containers find the token, `ca.crt` and `namespace`.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token lifetime the kubelet asks for (kube-apiserver extends or
/// warns about tokens of exactly this lifetime).
const TOKEN_SECONDS: i64 = 3607;
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Whether `pod` gets its ServiceAccount's token: the pod's
/// `automountServiceAccountToken` when set, else the ServiceAccount's,
/// else yes. Mirror pods never do.
#[must_use]
pub fn automounts(pod: &Value, service_account: &Value) -> bool {
    if pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_ANNOTATION))
        .is_some()
    {
        return false;
    }
    let flag = |v: &Value, pointer: &str| v.pointer(pointer).and_then(Value::as_bool);
    flag(pod, "/spec/automountServiceAccountToken")
        .or_else(|| flag(service_account, "/automountServiceAccountToken"))
        .unwrap_or(true)
}

/// The projected volume `name`, as the plugin writes it.
fn volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// Mounts the token in `pod`: in each container and init container with
/// nothing at [`MOUNT_PATH`], from the pod's existing `kube-api-access-*`
/// volume or else a new one named `new_name`.
pub fn mount_token(pod: &mut Value, new_name: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_owned);
    let name = existing.clone().unwrap_or_else(|| new_name.to_owned());
    let mount = json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH});
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        for container in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            if mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
            {
                continue;
            }
            mounts.push(mount.clone());
            mounted = true;
        }
    }
    if mounted && existing.is_none() {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(volumes) = volumes.as_array_mut() {
            volumes.push(volume(&name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web"},
            "spec": {
                "initContainers": [{"name": "init", "image": "i"}],
                "containers": [
                    {"name": "a", "image": "a"},
                    {"name": "b", "image": "b", "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]},
                ],
                "volumes": [{"name": "own", "emptyDir": {}}],
            },
        })
    }

    #[test]
    fn every_container_without_its_own_mount_gets_the_token_volume() {
        let mut p = pod();
        mount_token(&mut p, "kube-api-access-x2b4z");
        let spec = &p["spec"];
        assert_eq!(
            spec["initContainers"][0]["volumeMounts"][0],
            json!({"name": "kube-api-access-x2b4z", "readOnly": true, "mountPath": MOUNT_PATH})
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-x2b4z"
        );
        // The container that mounts something there keeps only its own.
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let volumes = spec["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        let sources = &volumes[1]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(
            sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );

        // Admitting it again (a recreated pod keeps its volume) adds nothing.
        let before = p.clone();
        mount_token(&mut p, "kube-api-access-other");
        assert_eq!(p, before);
    }

    #[test]
    fn the_pod_then_the_service_account_decide_whether_the_token_is_mounted() {
        let sa_off = json!({"automountServiceAccountToken": false});
        let mut p = pod();
        assert!(automounts(&p, &json!({})));
        assert!(!automounts(&p, &sa_off));
        p["spec"]["automountServiceAccountToken"] = json!(true);
        assert!(automounts(&p, &sa_off));
        p["spec"]["automountServiceAccountToken"] = json!(false);
        assert!(!automounts(&p, &json!({})));
        let mirror = json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}});
        assert!(!automounts(&mirror, &json!({})));
    }
}
