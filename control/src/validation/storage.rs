//! PersistentVolume and PersistentVolumeClaim: defaults
//! (`SetDefaults_PersistentVolume`, `SetDefaults_PersistentVolumeClaim`)
//! and the core validation users meet (`ValidatePersistentVolume*`,
//! `ValidatePersistentVolumeClaim*`).

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::{Value, json};

use super::field::{self, BadValue, Cause, Path};
use super::formats::NameRule;
use super::json::{Obj, child, default_str, default_value, present};
use super::metadata::{validate_object_meta, validate_object_meta_update};
use super::pod_defaults::canonicalize_resource_list;
use super::resources::{parse_quantity, validate_positive_quantity, validate_quantity_value};
use super::selector::validate_label_selector;

/// `supportedAccessModes` with ReadWriteOncePod, sorted.
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
const RECLAIM_POLICIES: &[&str] = &["Delete", "Recycle", "Retain"];

/// The PersistentVolume source fields (`PersistentVolumeSource`).
const PV_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

/// `SetDefaults_PersistentVolume`.
pub fn default_pv(obj: &mut Obj) {
    if let Some(spec) = child(obj, "spec") {
        default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        default_value(spec, "volumeMode", json!("Filesystem"));
        canonicalize_resource_list(spec.get_mut("capacity"));
        if let Some(h) = present(spec, "hostPath") {
            default_value(h, "type", json!(""));
        }
    }
    if let Some(status) = child(obj, "status") {
        default_str(status, "phase", "Pending");
    }
}

/// `SetDefaults_PersistentVolumeClaim`.
pub fn default_pvc(obj: &mut Obj) {
    if let Some(spec) = child(obj, "spec") {
        default_value(spec, "volumeMode", json!("Filesystem"));
        if let Some(r) = present(spec, "resources") {
            canonicalize_resource_list(r.get_mut("requests"));
            canonicalize_resource_list(r.get_mut("limits"));
        }
    }
    if let Some(status) = child(obj, "status") {
        default_str(status, "phase", "Pending");
        canonicalize_resource_list(status.get_mut("capacity"));
    }
}

fn validate_access_modes(modes: &[String], required_detail: &str, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if modes.is_empty() {
        errs.push(field::required(path, required_detail));
    }
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            errs.push(field::not_supported(path, m, ACCESS_MODES));
        }
    }
    if modes.iter().any(|m| m == "ReadWriteOncePod")
        && modes
            .iter()
            .any(|m| m != "ReadWriteOncePod" && ACCESS_MODES.contains(&m.as_str()))
    {
        errs.push(field::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    errs
}

fn validate_class_name(name: Option<&str>, path: &Path) -> Vec<Cause> {
    let Some(n) = name.filter(|n| !n.is_empty()) else {
        return Vec::new();
    };
    NameRule::Dns1123Subdomain
        .check(n, false)
        .into_iter()
        .map(|m| field::invalid(path, n, &m))
        .collect()
}

/// `ValidatePersistentVolume` / `ValidatePersistentVolumeSpec`.
pub fn validate_pv(pv: &PersistentVolume) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &pv.metadata,
        false,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    let spec = pv.spec.clone().unwrap_or_default();
    let sp = Path::new("spec");
    errs.extend(validate_access_modes(
        spec.access_modes.as_deref().unwrap_or_default(),
        "",
        &sp.child("accessModes"),
    ));
    let capacity = spec.capacity.clone().unwrap_or_default();
    let cp = sp.child("capacity");
    if capacity.is_empty() {
        errs.push(field::required(&cp, ""));
    }
    if !capacity.contains_key("storage") || capacity.len() > 1 {
        let rendered: Vec<String> = capacity
            .iter()
            .map(|(k, v)| format!("{}:{}", field::go_quote(k), v.0))
            .collect();
        errs.push(field::not_supported(
            &cp,
            BadValue::Go(format!("core.ResourceList{{{}}}", rendered.join(", "))),
            &["storage"],
        ));
    }
    for (k, q) in &capacity {
        match parse_quantity(q, &cp.key(k)) {
            Ok(q) => errs.extend(validate_positive_quantity(&q, &cp.key(k))),
            Err(e) => errs.push(e),
        }
    }
    errs.extend(validate_class_name(
        spec.storage_class_name.as_deref(),
        &sp.child("storageClassName"),
    ));
    if let Some(m) = spec.volume_mode.as_deref()
        && !VOLUME_MODES.contains(&m)
    {
        errs.push(field::not_supported(
            &sp.child("volumeMode"),
            m,
            VOLUME_MODES,
        ));
    }
    let reclaim = spec
        .persistent_volume_reclaim_policy
        .as_deref()
        .unwrap_or("");
    if !reclaim.is_empty() && !RECLAIM_POLICIES.contains(&reclaim) {
        errs.push(field::not_supported(
            &sp.child("persistentVolumeReclaimPolicy"),
            reclaim,
            RECLAIM_POLICIES,
        ));
    }
    let raw = serde_json::to_value(&spec).unwrap_or_default();
    let sources: Vec<&str> = PV_SOURCES
        .iter()
        .copied()
        .filter(|s| raw.get(*s).is_some_and(|v| !v.is_null()))
        .collect();
    if sources.is_empty() {
        errs.push(field::required(&sp, "must specify a volume type"));
    }
    for s in sources.iter().skip(1) {
        errs.push(field::forbidden(
            &sp.child(s),
            "may not specify more than 1 volume type",
        ));
    }
    if let Some(h) = &spec.host_path {
        if h.path.is_empty() {
            errs.push(field::required(&sp.child("hostPath").child("path"), ""));
        }
        if h.path.trim_end_matches('/').is_empty() && reclaim == "Recycle" {
            errs.push(field::forbidden(
                &sp.child("persistentVolumeReclaimPolicy"),
                "may not be 'recycle' for a hostPath mount of '/'",
            ));
        }
    }
    if let Some(l) = &spec.local {
        if l.path.is_empty() {
            errs.push(field::required(&sp.child("local").child("path"), ""));
        }
        if spec.node_affinity.is_none() {
            errs.push(field::required(
                &sp.child("nodeAffinity"),
                "Local volume requires node affinity",
            ));
        }
    }
    errs
}

/// `ValidatePersistentVolumeUpdate`: the volume source and mode are
/// immutable.
pub fn validate_pv_update(
    new: &PersistentVolume,
    old: &PersistentVolume,
    new_value: &Value,
    old_value: &Value,
) -> Vec<Cause> {
    let mut errs = validate_pv(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    let source = |v: &Value| {
        PV_SOURCES
            .iter()
            .map(|s| {
                v.pointer(&format!("/spec/{s}"))
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect::<Vec<_>>()
    };
    if source(new_value) != source(old_value) {
        errs.push(field::forbidden(
            &Path::new("spec").child("persistentvolumesource"),
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    let (nm, om) = (
        new.spec.as_ref().and_then(|s| s.volume_mode.clone()),
        old.spec.as_ref().and_then(|s| s.volume_mode.clone()),
    );
    if nm != om {
        errs.push(field::invalid(
            &Path::new("spec").child("volumeMode"),
            BadValue::from(nm),
            "field is immutable",
        ));
    }
    errs
}

/// `ValidatePersistentVolumeStatusUpdate`.
pub fn validate_pv_status_update(new: &PersistentVolume, old: &PersistentVolume) -> Vec<Cause> {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// `ValidatePersistentVolumeClaim` / `ValidatePersistentVolumeClaimSpec`.
pub fn validate_pvc(pvc: &PersistentVolumeClaim) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &pvc.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    let spec = pvc.spec.clone().unwrap_or_default();
    let sp = Path::new("spec");
    errs.extend(validate_access_modes(
        spec.access_modes.as_deref().unwrap_or_default(),
        "at least 1 access mode is required",
        &sp.child("accessModes"),
    ));
    if let Some(sel) = &spec.selector {
        errs.extend(validate_label_selector(sel, &sp.child("selector")));
    }
    let rp = sp.child("resources").key("storage");
    match spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    {
        None => errs.push(field::required(&rp, "")),
        Some(q) => match parse_quantity(q, &rp) {
            Ok(q) => {
                let positive = validate_positive_quantity(&q, &rp);
                if positive.is_empty() {
                    errs.extend(validate_quantity_value("storage", &q, &rp));
                } else {
                    errs.extend(positive);
                }
            }
            Err(e) => errs.push(e),
        },
    }
    errs.extend(validate_class_name(
        spec.storage_class_name.as_deref(),
        &sp.child("storageClassName"),
    ));
    if let Some(m) = spec.volume_mode.as_deref()
        && !VOLUME_MODES.contains(&m)
    {
        errs.push(field::not_supported(
            &sp.child("volumeMode"),
            m,
            VOLUME_MODES,
        ));
    }
    errs
}

/// `ValidatePersistentVolumeClaimUpdate`: the spec is immutable except a
/// first binding, storage requests of bound claims (never shrinking) and
/// the volume attributes class.
pub fn validate_pvc_update(
    new: &PersistentVolumeClaim,
    old: &PersistentVolumeClaim,
    new_value: &Value,
    old_value: &Value,
) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_pvc(new));
    let bound = new.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let munge = |v: &Value, other: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(json!({}));
        if let Some(o) = spec.as_object_mut() {
            o.remove("volumeAttributesClassName");
            if bound
                && let Some(r) = o
                    .get_mut("resources")
                    .and_then(Value::as_object_mut)
                    .and_then(|r| r.get_mut("requests"))
                    .and_then(Value::as_object_mut)
            {
                r.remove("storage");
            }
            if other
                .pointer("/spec/volumeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
                || v.pointer("/spec/volumeName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
            {
                o.remove("volumeName");
            }
            o.retain(|_, v| !v.is_null());
        }
        spec
    };
    if munge(new_value, old_value) != munge(old_value, new_value) {
        errs.push(field::forbidden(
            &Path::new("spec"),
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let storage = |c: &PersistentVolumeClaim| {
        c.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| baton_apimachinery::quantity::Quantity::parse(&q.0).ok())
    };
    if let (Some(n), Some(o)) = (storage(new), storage(old))
        && n.cmp_value(&o) == std::cmp::Ordering::Less
    {
        errs.push(field::forbidden(
            &Path::new("spec")
                .child("resources")
                .child("requests")
                .child("storage"),
            "field can not be less than previous value",
        ));
    }
    errs
}

/// `ValidatePersistentVolumeClaimStatusUpdate`.
pub fn validate_pvc_status_update(
    new: &PersistentVolumeClaim,
    old: &PersistentVolumeClaim,
) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let cp = Path::new("status").child("capacity");
    for (k, q) in new.status.iter().flat_map(|s| s.capacity.iter().flatten()) {
        match parse_quantity(q, &cp.key(k)) {
            Ok(q) => errs.extend(validate_quantity_value(k, &q, &cp.key(k))),
            Err(e) => errs.push(e),
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(errs: &[Cause]) -> Vec<String> {
        errs.iter().map(Cause::error_string).collect()
    }

    // SetDefaults_PersistentVolume + ValidatePersistentVolume.
    #[test]
    fn pv() {
        let mut v = json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "1024Mi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}});
        default_pv(v.as_object_mut().unwrap());
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(v["spec"]["volumeMode"], "Filesystem");
        assert_eq!(v["spec"]["capacity"]["storage"], "1Gi");
        assert_eq!(v["status"]["phase"], "Pending");
        assert!(validate_pv(&serde_json::from_value(v).unwrap()).is_empty());
        let bad: PersistentVolume = serde_json::from_value(
            json!({"metadata": {"name": "pv1"}, "spec": {"accessModes": ["ReadWriteSometimes"]}}),
        )
        .unwrap();
        assert_eq!(
            msgs(&validate_pv(&bad)),
            vec![
                "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.capacity: Required value",
                "spec.capacity: Unsupported value: core.ResourceList{}: supported values: \"storage\"",
                "spec: Required value: must specify a volume type",
            ]
        );
    }

    // ValidatePersistentVolumeClaim / ValidatePersistentVolumeClaimUpdate.
    #[test]
    fn pvc() {
        let mut v = json!({"metadata": {"name": "c", "namespace": "d", "resourceVersion": "1"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        default_pvc(v.as_object_mut().unwrap());
        assert_eq!(v["spec"]["volumeMode"], "Filesystem");
        assert!(validate_pvc(&serde_json::from_value(v.clone()).unwrap()).is_empty());
        let bad: PersistentVolumeClaim = serde_json::from_value(
            json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {}}),
        )
        .unwrap();
        assert_eq!(
            msgs(&validate_pvc(&bad)),
            vec![
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value"
            ]
        );
        let mut new = v.clone();
        new["spec"]["storageClassName"] = json!("fast");
        let errs = validate_pvc_update(
            &serde_json::from_value(new.clone()).unwrap(),
            &serde_json::from_value(v.clone()).unwrap(),
            &new,
            &v,
        );
        assert_eq!(
            msgs(&errs),
            vec![
                "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
            ]
        );
        let mut bind = v.clone();
        bind["spec"]["volumeName"] = json!("pv1");
        assert!(
            validate_pvc_update(
                &serde_json::from_value(bind.clone()).unwrap(),
                &serde_json::from_value(v.clone()).unwrap(),
                &bind,
                &v
            )
            .is_empty()
        );
    }
}
