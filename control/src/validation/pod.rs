//! Pod-level validation (core validation: `ValidatePodCreate`,
//! `ValidatePodUpdate`, `ValidatePodStatusUpdate`,
//! `ValidatePodEphemeralContainersUpdate`, `ValidatePodTemplateSpec`,
//! `ValidatePodBinding`).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Binding, Pod, PodSpec, PodTemplateSpec, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::container::validate_images_for_pod;
use super::field::{self, BadValue, Cause, Path};
use super::formats::{
    NameRule, inclusive_range_error, validate_ip_legacy, validate_qualified_name,
};
use super::metadata::{
    validate_annotations, validate_labels, validate_object_meta, validate_object_meta_update,
};
use super::pod_spec::{validate_pod_spec, validate_tolerations};

/// The fields a pod update may change, as kube-apiserver lists them.
const UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Pod conditions the kubelet owns; others must be qualified names.
const SYSTEM_CONDITIONS: &[&str] = &[
    "PodScheduled",
    "Ready",
    "Initialized",
    "ContainersReady",
    "DisruptionTarget",
    "PodReadyToStartContainers",
    "PodResizePending",
    "PodResizeInProgress",
];

fn spec_of(pod: &Pod) -> PodSpec {
    pod.spec.clone().unwrap_or_default()
}

/// `validatePodMetadataAndSpec`.
fn validate_metadata_and_spec(pod: &Pod) -> Vec<Cause> {
    let spec = spec_of(pod);
    let sp = Path::new("spec");
    let mut errs = validate_object_meta(
        &pod.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_pod_spec(&spec, &sp));
    if spec
        .service_account_name
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        for (vi, v) in spec.volumes.iter().flatten().enumerate() {
            for (si, src) in v
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .enumerate()
            {
                if src.service_account_token.is_some() {
                    errs.push(field::forbidden(
                        &sp.child("volumes")
                            .index(vi)
                            .child("projected")
                            .child("sources")
                            .index(si)
                            .child("serviceAccountToken"),
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    errs.extend(validate_images_for_pod(
        &spec.containers,
        &sp.child("containers"),
    ));
    errs.extend(validate_images_for_pod(
        spec.init_containers.as_deref().unwrap_or_default(),
        &sp.child("initContainers"),
    ));
    errs
}

/// `ValidatePodCreate`.
pub fn validate_pod_create(pod: &Pod) -> Vec<Cause> {
    let mut errs = validate_metadata_and_spec(pod);
    let spec = spec_of(pod);
    let sp = Path::new("spec");
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(field::forbidden(
            &sp.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
        && spec
            .scheduling_gates
            .as_ref()
            .is_some_and(|g| !g.is_empty())
    {
        errs.push(field::forbidden(
            &sp.child("nodeName"),
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    errs
}

/// `ValidatePodTemplateSpec`, for workloads' templates.
pub fn validate_pod_template(template: &PodTemplateSpec, path: &Path) -> Vec<Cause> {
    let meta = template.metadata.clone().unwrap_or_default();
    let spec = template.spec.clone().unwrap_or_default();
    let mut errs = validate_labels(meta.labels.as_ref(), &path.child("labels"));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_pod_spec(&spec, &path.child("spec")));
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(field::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// `validateOnlyAddedTolerations`.
fn validate_only_added_tolerations(
    new: &[Toleration],
    old: &[Toleration],
    path: &Path,
) -> Vec<Cause> {
    for o in old {
        let found = new.iter().any(|n| {
            let mut clone = o.clone();
            clone.toleration_seconds = n.toleration_seconds;
            clone == *n
        });
        if !found {
            return vec![field::forbidden(
                path,
                "existing toleration can not be modified except its tolerationSeconds",
            )];
        }
    }
    validate_tolerations(new, path)
}

/// Drops what upstream's semantic equality ignores (nulls, empty lists).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null() && !v.as_array().is_some_and(Vec::is_empty))
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// A short listing of the top-level PodSpec fields that differ, in the
/// spirit of the `cmp.Diff` kube-apiserver appends.
fn spec_diff(old: &Value, new: &Value) -> String {
    let empty = serde_json::Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::from("  core.PodSpec{\n");
    let go_name = |k: &str| {
        let mut c = k.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    for k in keys {
        let (ov, nv) = (o.get(k), n.get(k));
        if ov != nv {
            if let Some(ov) = ov {
                out.push_str(&format!("- \t{}: {},\n", go_name(k), ov));
            }
            if let Some(nv) = nv {
                out.push_str(&format!("+ \t{}: {},\n", go_name(k), nv));
            }
        }
    }
    out.push_str("  }\n");
    out
}

fn validate_container_images(
    new: &[k8s_openapi::api::core::v1::Container],
    old_len: usize,
    path: &Path,
) -> (Vec<Cause>, bool) {
    if new.len() != old_len {
        return (
            vec![field::forbidden(
                path,
                "pod updates may not add or remove containers",
            )],
            true,
        );
    }
    let mut errs = Vec::new();
    for (i, c) in new.iter().enumerate() {
        let image = c.image.as_deref().unwrap_or("");
        if image.is_empty() {
            errs.push(field::required(&path.index(i).child("image"), ""));
        }
        if image.trim() != image {
            errs.push(field::invalid(
                &path.index(i).child("image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    (errs, false)
}

/// `ValidatePodUpdate`: only images, activeDeadlineSeconds (lowered),
/// added tolerations and removed scheduling gates may change in the spec.
pub fn validate_pod_update(
    new: &Pod,
    old: &Pod,
    new_value: &Value,
    old_value: &Value,
) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let sp = Path::new("spec");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &mp);
    errs.extend(validate_metadata_and_spec(new));
    let (ns, os) = (spec_of(new), spec_of(old));
    for (key, n, o) in [
        (
            "containers",
            ns.containers.as_slice(),
            os.containers.as_slice(),
        ),
        (
            "initContainers",
            ns.init_containers.as_deref().unwrap_or_default(),
            os.init_containers.as_deref().unwrap_or_default(),
        ),
    ] {
        let (e, stop) = validate_container_images(n, o.len(), &sp.child(key));
        errs.extend(e);
        if stop {
            return errs;
        }
    }
    match (ns.active_deadline_seconds, os.active_deadline_seconds) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(field::invalid(
                &sp.child("activeDeadlineSeconds"),
                n,
                &inclusive_range_error(0, i32::MAX.into()),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(field::invalid(
                &sp.child("activeDeadlineSeconds"),
                n,
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => errs.push(field::invalid(
            &sp.child("activeDeadlineSeconds"),
            BadValue::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    errs.extend(validate_only_added_tolerations(
        ns.tolerations.as_deref().unwrap_or_default(),
        os.tolerations.as_deref().unwrap_or_default(),
        &sp.child("tolerations"),
    ));
    let old_gates: HashSet<&str> = os
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, g) in ns.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(g.name.as_str()) {
            errs.push(field::forbidden(
                &sp.child("schedulingGates").index(i).child("name"),
                &format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    g.name
                ),
            ));
        }
    }

    let null = Value::Null;
    let old_spec = normalized(old_value.get("spec").unwrap_or(&null));
    let mut munged = normalized(new_value.get("spec").unwrap_or(&null));
    if old_spec == munged {
        return errs;
    }
    if let (Some(m), Some(o)) = (munged.as_object_mut(), old_spec.as_object()) {
        for key in ["containers", "initContainers"] {
            if let (Some(Value::Array(mc)), Some(Value::Array(oc))) = (m.get_mut(key), o.get(key)) {
                for (c, oc) in mc.iter_mut().zip(oc) {
                    if let (Some(c), Some(img)) = (c.as_object_mut(), oc.get("image")) {
                        c.insert("image".into(), img.clone());
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match o.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        let old_grace = o
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0)
            && m.get("terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                == Some(1)
        {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                Value::from(old_grace),
            );
        }
    }
    if munged != old_spec {
        errs.push(field::forbidden(
            &sp,
            &format!(
                "pod updates may not change fields other than {UPDATABLE_FIELDS}\n{}",
                spec_diff(&old_spec, &munged)
            ),
        ));
    }
    errs
}

/// The annotation that marks a static pod's mirror.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// `ValidatePodEphemeralContainersUpdate`: the pod as a whole stays valid,
/// and ephemeral containers are only added: none removed, none changed.
pub fn validate_pod_ephemeral_containers_update(new: &Pod, old: &Pod) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &mp);
    errs.extend(validate_metadata_and_spec(new));
    if old
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
    {
        return vec![field::forbidden(
            &Path::new(""),
            "static pods do not support ephemeral containers",
        )];
    }
    let path = Path::new("spec").child("ephemeralContainers");
    let (ns, os) = (spec_of(new), spec_of(old));
    let added = ns.ephemeral_containers.unwrap_or_default();
    for before in os.ephemeral_containers.iter().flatten() {
        match added.iter().find(|c| c.name == before.name) {
            None => errs.push(field::forbidden(
                &path,
                &format!(
                    "existing ephemeral containers {} may not be removed\n",
                    field::go_quote(&before.name)
                ),
            )),
            Some(now) if now != before => {
                let as_value = |c| normalized(&serde_json::to_value(c).unwrap_or_default());
                errs.push(field::forbidden(
                    &path.key(&before.name),
                    &format!(
                        "existing ephemeral containers {} may not be changed\n{}",
                        field::go_quote(&before.name),
                        spec_diff(&as_value(before), &as_value(now))
                            .replace("core.PodSpec", "core.EphemeralContainer")
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    errs
}

/// `ValidatePodStatusUpdate`.
pub fn validate_pod_status_update(new: &Pod, old: &Pod) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &mp);
    let status = new.status.clone().unwrap_or_default();
    for (i, c) in status.conditions.iter().flatten().enumerate() {
        if !SYSTEM_CONDITIONS.contains(&c.type_.as_str()) {
            errs.extend(validate_qualified_name(
                &c.type_,
                &mp.child("conditions").index(i).child("Type"),
            ));
        }
    }
    let stp = Path::new("status");
    let (ns, os) = (spec_of(new), spec_of(old));
    if ns.node_name != os.node_name {
        errs.push(field::forbidden(
            &stp.child("nodeName"),
            "may not be changed directly",
        ));
    }
    let old_nominated = old
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.clone());
    if let Some(nn) = status
        .nominated_node_name
        .as_deref()
        .filter(|n| !n.is_empty())
        && old_nominated.as_deref() != Some(nn)
    {
        for m in NameRule::Dns1123Subdomain.check(nn, false) {
            errs.push(field::invalid(&stp.child("nominatedNodeName"), nn, &m));
        }
    }
    for (single, list, key) in [
        (
            status.pod_ip.as_deref(),
            status
                .pod_ips
                .as_ref()
                .map(|l| l.iter().map(|p| p.ip.clone()).collect::<Vec<_>>()),
            "podIPs",
        ),
        (
            status.host_ip.as_deref(),
            status
                .host_ips
                .as_ref()
                .map(|l| l.iter().map(|p| p.ip.clone()).collect::<Vec<_>>()),
            "hostIPs",
        ),
    ] {
        let ips = list.unwrap_or_default();
        let lp = stp.child(key);
        let single_name = if key == "podIPs" { "podIP" } else { "hostIP" };
        if let (Some(s), Some(first)) = (single.filter(|s| !s.is_empty()), ips.first())
            && s != first
        {
            errs.push(field::invalid(
                &lp.index(0).child("ip"),
                first,
                &format!("must be equal to {single_name}"),
            ));
        }
        let mut seen = HashSet::new();
        for (i, ip) in ips.iter().enumerate() {
            errs.extend(validate_ip_legacy(ip, &lp.index(i)));
            if !seen.insert(ip) {
                errs.push(field::duplicate(&lp.index(i), ip));
            }
        }
        if ips.len() > 2 {
            errs.push(field::too_many(&lp, ips.len(), 2));
        }
    }
    errs
}

/// `ValidatePodBinding`.
pub fn validate_binding(binding: &Binding) -> Vec<Cause> {
    let mut errs = Vec::new();
    let target = Path::new("target");
    let kind = binding.target.kind.as_deref().unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        errs.push(field::not_supported(
            &target.child("kind"),
            kind,
            &["Node", "<empty>"],
        ));
    }
    if binding.target.name.as_deref().unwrap_or("").is_empty() {
        errs.push(field::required(&target.child("name"), ""));
    }
    errs
}

/// The metadata of a pod template, defaulted to empty.
pub fn template_meta(t: &PodTemplateSpec) -> ObjectMeta {
    t.metadata.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_json() -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "default", "resourceVersion": "1"},
            "spec": {
                "containers": [{"name": "c", "image": "nginx:1", "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File"}],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30,
                "tolerations": [{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
            }
        })
    }

    fn pod(v: &Value) -> Pod {
        serde_json::from_value(v.clone()).unwrap()
    }

    fn update(new: &Value, old: &Value) -> Vec<String> {
        validate_pod_update(&pod(new), &pod(old), new, old)
            .iter()
            .map(Cause::error_string)
            .collect()
    }

    #[test]
    fn valid_pod_passes_create() {
        assert!(validate_pod_create(&pod(&pod_json())).is_empty());
    }

    // ValidatePodCreate: a missing image, an invalid name.
    #[test]
    fn create_errors() {
        let mut p = pod_json();
        p["metadata"]["name"] = json!("Bad_Name");
        p["spec"]["containers"][0]["image"] = json!("");
        let errs: Vec<String> = validate_pod_create(&pod(&p))
            .iter()
            .map(Cause::error_string)
            .collect();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
        assert_eq!(errs[1], "spec.containers[0].image: Required value");
    }

    // ValidatePodEphemeralContainersUpdate: added, never changed or removed;
    // the common container rules and the ephemeral ones.
    #[test]
    fn ephemeral_containers_are_only_added() {
        let ephemeral_update = |new: &Value, old: &Value| -> Vec<String> {
            validate_pod_ephemeral_containers_update(&pod(new), &pod(old))
                .iter()
                .map(Cause::error_string)
                .collect()
        };
        let old = pod_json();
        let dbg = json!({"name": "dbg", "image": "busybox", "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File", "targetContainerName": "c", "resources": {}, "stdin": true, "tty": true});
        let mut added = old.clone();
        added["spec"]["ephemeralContainers"] = json!([dbg.clone()]);
        assert!(ephemeral_update(&added, &old).is_empty());

        let mut removed = added.clone();
        removed["spec"]["ephemeralContainers"] = json!([]);
        assert_eq!(
            ephemeral_update(&removed, &added),
            [
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"dbg\" may not be removed\n"
            ]
        );
        let mut changed = added.clone();
        changed["spec"]["ephemeralContainers"][0]["image"] = json!("other");
        let errs = ephemeral_update(&changed, &added);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("spec.ephemeralContainers[dbg]: Forbidden: existing ephemeral containers \"dbg\" may not be changed"),
            "{errs:?}"
        );

        let mut bad = dbg.clone();
        bad["name"] = json!("c");
        bad["targetContainerName"] = json!("nope");
        bad["ports"] = json!([{"containerPort": 80}]);
        bad["readinessProbe"] = json!({"tcpSocket": {"port": 80}});
        bad["volumeMounts"] = json!([{"name": "v", "mountPath": "/v", "subPath": "x"}]);
        let mut invalid = old.clone();
        invalid["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
        let mut with = invalid.clone();
        with["spec"]["ephemeralContainers"] = json!([bad]);
        let errs = ephemeral_update(&with, &invalid);
        for want in [
            "spec.ephemeralContainers[0].name: Duplicate value: \"c\"",
            "spec.ephemeralContainers[0].targetContainerName: Not found: \"nope\"",
            "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
            "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
            "spec.ephemeralContainers[0].volumeMounts[0].subPath: Forbidden: cannot be set for an Ephemeral Container",
        ] {
            assert!(errs.iter().any(|e| e == want), "{want} not in {errs:?}");
        }

        let mut mirror = old.clone();
        mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
        let mut mirror_added = mirror.clone();
        mirror_added["spec"]["ephemeralContainers"] = json!([dbg]);
        assert_eq!(
            ephemeral_update(&mirror_added, &mirror),
            ["[]: Forbidden: static pods do not support ephemeral containers"]
        );
    }

    // ValidatePodUpdate: image, activeDeadlineSeconds and added tolerations are mutable.
    #[test]
    fn mutable_fields() {
        let old = pod_json();
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:2");
        new["spec"]["activeDeadlineSeconds"] = json!(100);
        new["spec"]["tolerations"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "b", "operator": "Exists"}));
        new["spec"]["tolerations"][0]["tolerationSeconds"] = json!(10);
        assert!(update(&new, &old).is_empty(), "{:?}", update(&new, &old));
    }

    // ValidatePodUpdate: anything else is Forbidden with upstream's wording.
    #[test]
    fn immutable_spec() {
        let old = pod_json();
        let mut new = old.clone();
        new["spec"]["restartPolicy"] = json!("Never");
        let errs = update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n  core.PodSpec{\n- \tRestartPolicy: \"Always\",\n+ \tRestartPolicy: \"Never\","), "{}", errs[0]);
        let mut new = old.clone();
        new["spec"]["tolerations"] = json!([]);
        assert_eq!(
            update(&new, &old),
            vec![
                "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
            ]
        );
        let mut new = old.clone();
        new["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "d", "image": "x"}));
        assert!(update(&new, &old).contains(
            &"spec.containers: Forbidden: pod updates may not add or remove containers".to_string()
        ));
    }

    // ValidatePodStatusUpdate.
    #[test]
    fn status_update() {
        let old = pod_json();
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!("n1");
        new["status"] = json!({"podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.6"}]});
        let errs: Vec<String> = validate_pod_status_update(&pod(&new), &pod(&old))
            .iter()
            .map(Cause::error_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "status.nodeName: Forbidden: may not be changed directly",
                "status.podIPs[0].ip: Invalid value: \"10.244.0.6\": must be equal to podIP",
            ]
        );
    }

    // ValidatePodBinding.
    #[test]
    fn binding() {
        let b: Binding = serde_json::from_value(
            json!({"metadata": {"name": "p"}, "target": {"kind": "Pod", "name": ""}}),
        )
        .unwrap();
        let errs: Vec<String> = validate_binding(&b)
            .iter()
            .map(Cause::error_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "target.kind: Unsupported value: \"Pod\": supported values: \"Node\", \"<empty>\"",
                "target.name: Required value",
            ]
        );
    }
}
