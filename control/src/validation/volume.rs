//! Pod volume validation (core validation: `ValidateVolumes`,
//! `validateVolumeSource` and the per-source validators for the sources
//! users reach for: emptyDir, hostPath, configMap, secret,
//! persistentVolumeClaim, projected, downwardAPI, nfs, csi, ephemeral).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Volume};

use super::container::{VolumeNames, validate_local_descending_path, validate_path_no_backsteps};
use super::field::{self, Cause, Path};
use super::formats::validate_dns1123_label;
use super::resources::parse_quantity;

/// `fileModeErrorMsg`.
const FILE_MODE_ERR: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// `supportedHostPathTypes`, sorted.
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

fn validate_mode(mode: Option<i32>, path: &Path) -> Vec<Cause> {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => vec![field::invalid(path, m, FILE_MODE_ERR)],
        _ => Vec::new(),
    }
}

/// `validateLocalNonReservedPath`.
fn validate_local_non_reserved_path(target: &str, path: &Path) -> Vec<Cause> {
    let mut errs = validate_local_descending_path(target, path);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(field::invalid(path, target, "must not start with '..'"));
    }
    errs
}

/// `validateKeyToPath`.
fn validate_key_to_path(kp: &KeyToPath, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if kp.key.is_empty() {
        errs.push(field::required(&path.child("key"), ""));
    }
    if kp.path.is_empty() {
        errs.push(field::required(&path.child("path"), ""));
    }
    errs.extend(validate_local_non_reserved_path(
        &kp.path,
        &path.child("path"),
    ));
    errs.extend(validate_mode(kp.mode, &path.child("mode")));
    errs
}

/// `validateDownwardAPIVolumeFile`.
fn validate_downward_file(file: &DownwardAPIVolumeFile, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if file.path.is_empty() {
        errs.push(field::required(&path.child("path"), ""));
    }
    errs.extend(validate_local_non_reserved_path(
        &file.path,
        &path.child("path"),
    ));
    match (&file.field_ref, &file.resource_field_ref) {
        (Some(_), Some(_)) => errs.push(field::invalid(
            path,
            "resource",
            "fieldRef and resourceFieldRef can not be specified simultaneously",
        )),
        (None, None) => errs.push(field::required(
            path,
            "one of fieldRef and resourceFieldRef is required",
        )),
        _ => {}
    }
    errs.extend(validate_mode(file.mode, &path.child("mode")));
    errs
}

/// `validateVolumeSource`: exactly one source, each checked.
fn validate_source(v: &Volume, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut count = 0;
    let mut one = |name: &str, set: bool, errs: &mut Vec<Cause>| -> bool {
        if !set {
            return false;
        }
        if count > 0 {
            errs.push(field::forbidden(
                &path.child(name),
                "may not specify more than 1 volume type",
            ));
            false
        } else {
            count += 1;
            true
        }
    };
    if one("emptyDir", v.empty_dir.is_some(), &mut errs)
        && let Some(limit) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref())
    {
        let p = path.child("emptyDir").child("sizeLimit");
        match parse_quantity(limit, &p) {
            Ok(q) if q.is_negative() => {
                errs.push(field::forbidden(
                    &p,
                    "SizeLimit field must be a valid resource quantity",
                ));
            }
            Ok(_) => {}
            Err(e) => errs.push(e),
        }
    }
    if one("hostPath", v.host_path.is_some(), &mut errs)
        && let Some(h) = &v.host_path
    {
        let p = path.child("hostPath");
        if h.path.is_empty() {
            errs.push(field::required(&p.child("path"), ""));
        } else {
            errs.extend(validate_path_no_backsteps(&h.path, &p.child("path")));
            let t = h.type_.as_deref().unwrap_or("");
            if !HOST_PATH_TYPES.contains(&t) {
                errs.push(field::not_supported(&p.child("type"), t, HOST_PATH_TYPES));
            }
        }
    }
    if one("secret", v.secret.is_some(), &mut errs)
        && let Some(s) = &v.secret
    {
        let p = path.child("secret");
        if s.secret_name.as_deref().unwrap_or("").is_empty() {
            errs.push(field::required(&p.child("secretName"), ""));
        }
        errs.extend(validate_mode(s.default_mode, &p.child("defaultMode")));
        for (i, kp) in s.items.iter().flatten().enumerate() {
            errs.extend(validate_key_to_path(kp, &p.child("items").index(i)));
        }
    }
    if one("configMap", v.config_map.is_some(), &mut errs)
        && let Some(c) = &v.config_map
    {
        let p = path.child("configMap");
        if c.name.is_empty() {
            errs.push(field::required(&p.child("name"), ""));
        }
        errs.extend(validate_mode(c.default_mode, &p.child("defaultMode")));
        for (i, kp) in c.items.iter().flatten().enumerate() {
            errs.extend(validate_key_to_path(kp, &p.child("items").index(i)));
        }
    }
    if one(
        "persistentVolumeClaim",
        v.persistent_volume_claim.is_some(),
        &mut errs,
    ) && v
        .persistent_volume_claim
        .as_ref()
        .is_some_and(|c| c.claim_name.is_empty())
    {
        errs.push(field::required(
            &path.child("persistentVolumeClaim").child("claimName"),
            "",
        ));
    }
    if one("nfs", v.nfs.is_some(), &mut errs)
        && let Some(n) = &v.nfs
    {
        let p = path.child("nfs");
        if n.server.is_empty() {
            errs.push(field::required(&p.child("server"), ""));
        }
        if n.path.is_empty() {
            errs.push(field::required(&p.child("path"), ""));
        }
        if !n.path.starts_with('/') {
            errs.push(field::invalid(
                &p.child("path"),
                &n.path,
                "must be an absolute path",
            ));
        }
    }
    if one("downwardAPI", v.downward_api.is_some(), &mut errs)
        && let Some(d) = &v.downward_api
    {
        let p = path.child("downwardAPI");
        errs.extend(validate_mode(d.default_mode, &p.child("defaultMode")));
        for (i, item) in d.items.iter().flatten().enumerate() {
            errs.extend(validate_downward_file(item, &p.child("items").index(i)));
        }
    }
    if one("projected", v.projected.is_some(), &mut errs)
        && let Some(pr) = &v.projected
    {
        errs.extend(validate_projected(pr, &path.child("projected")));
    }
    if one("csi", v.csi.is_some(), &mut errs) && v.csi.as_ref().is_some_and(|c| c.driver.is_empty())
    {
        errs.push(field::required(&path.child("csi").child("driver"), ""));
    }
    if one("ephemeral", v.ephemeral.is_some(), &mut errs)
        && v.ephemeral
            .as_ref()
            .is_some_and(|e| e.volume_claim_template.is_none())
    {
        errs.push(field::required(
            &path.child("ephemeral").child("volumeClaimTemplate"),
            "",
        ));
    }
    let others = [
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("rbd", v.rbd.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("fc", v.fc.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("image", v.image.is_some()),
    ];
    for (name, set) in others {
        one(name, set, &mut errs);
    }
    if count == 0 {
        errs.push(field::required(path, "must specify a volume type"));
    }
    errs
}

/// `validateProjectedVolumeSource`.
fn validate_projected(
    pr: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = validate_mode(pr.default_mode, &path.child("defaultMode"));
    let mut paths = HashSet::new();
    let mut claim = |p: &str, at: &Path, errs: &mut Vec<Cause>| {
        if !paths.insert(p.to_string()) {
            errs.push(field::invalid(at, p, "conflicting duplicate paths"));
        }
    };
    for (i, src) in pr.sources.iter().flatten().enumerate() {
        let sp = path.child("sources").index(i);
        let mut kinds = 0;
        if let Some(s) = &src.secret {
            kinds += 1;
            let p = sp.child("secret");
            if s.name.is_empty() {
                errs.push(field::required(&p.child("name"), ""));
            }
            for (j, kp) in s.items.iter().flatten().enumerate() {
                let ip = p.child("items").index(j);
                errs.extend(validate_key_to_path(kp, &ip));
                claim(&kp.path, &ip.child("path"), &mut errs);
            }
        }
        if let Some(c) = &src.config_map {
            kinds += 1;
            let p = sp.child("configMap");
            if c.name.is_empty() {
                errs.push(field::required(&p.child("name"), ""));
            }
            for (j, kp) in c.items.iter().flatten().enumerate() {
                let ip = p.child("items").index(j);
                errs.extend(validate_key_to_path(kp, &ip));
                claim(&kp.path, &ip.child("path"), &mut errs);
            }
        }
        if let Some(d) = &src.downward_api {
            kinds += 1;
            for (j, item) in d.items.iter().flatten().enumerate() {
                let ip = sp.child("downwardAPI").child("items").index(j);
                errs.extend(validate_downward_file(item, &ip));
                claim(&item.path, &ip.child("path"), &mut errs);
            }
        }
        if let Some(t) = &src.service_account_token {
            kinds += 1;
            let p = sp.child("serviceAccountToken");
            if let Some(e) = t.expiration_seconds {
                if e < 600 {
                    errs.push(field::invalid(
                        &p.child("expirationSeconds"),
                        e,
                        "may not specify a duration less than 10 minutes",
                    ));
                }
                if e > 1 << 32 {
                    errs.push(field::invalid(
                        &p.child("expirationSeconds"),
                        e,
                        "may not specify a duration larger than 2^32 seconds",
                    ));
                }
            }
            if t.path.is_empty() {
                errs.push(field::required(&p.child("path"), ""));
            } else {
                errs.extend(validate_local_non_reserved_path(&t.path, &p.child("path")));
                claim(&t.path, &p.child("path"), &mut errs);
            }
        }
        if src.cluster_trust_bundle.is_some() {
            kinds += 1;
        }
        if kinds > 1 {
            errs.push(field::forbidden(
                &sp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
    errs
}

/// `ValidateVolumes`: names are unique DNS labels; returns the names of the
/// volumes that passed, which mounts may reference.
pub fn validate_volumes(volumes: &[Volume], path: &Path) -> (VolumeNames, Vec<Cause>) {
    let mut names = VolumeNames::new();
    let mut errs = Vec::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        let name_path = p.child("name");
        let mut el = validate_source(v, &p);
        if v.name.is_empty() {
            el.push(field::required(&name_path, ""));
        } else {
            el.extend(validate_dns1123_label(&v.name, &name_path));
        }
        if names.contains(&v.name) {
            el.push(field::duplicate(&name_path, &v.name));
        }
        if el.is_empty() {
            names.insert(v.name.clone());
        } else {
            errs.extend(el);
        }
    }
    (names, errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: serde_json::Value) -> Vec<String> {
        let vols: Vec<Volume> = serde_json::from_value(v).unwrap();
        validate_volumes(&vols, &Path::new("spec").child("volumes"))
            .1
            .iter()
            .map(Cause::error_string)
            .collect()
    }

    // ValidateVolumes: duplicate names, bad names.
    #[test]
    fn names() {
        assert_eq!(
            check(serde_json::json!([
                {"name": "a", "emptyDir": {}},
                {"name": "a", "emptyDir": {}},
                {"name": "B", "emptyDir": {}}
            ])),
            vec![
                "spec.volumes[1].name: Duplicate value: \"a\"",
                "spec.volumes[2].name: Invalid value: \"B\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ]
        );
    }

    // validateVolumeSource: one source; per-source required fields.
    #[test]
    fn sources() {
        assert_eq!(
            check(serde_json::json!([
                {"name": "a", "emptyDir": {}, "hostPath": {"path": "/x"}},
                {"name": "b"},
                {"name": "c", "secret": {"defaultMode": 1000}},
                {"name": "d", "configMap": {"name": "cm", "items": [{"key": "k", "path": "../x"}]}},
                {"name": "e", "hostPath": {"path": "/a/../b", "type": "Dir"}},
                {"name": "f", "persistentVolumeClaim": {"claimName": ""}}
            ])),
            vec![
                "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[1]: Required value: must specify a volume type",
                "spec.volumes[2].secret.secretName: Required value",
                "spec.volumes[2].secret.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[3].configMap.items[0].path: Invalid value: \"../x\": must not contain '..'",
                "spec.volumes[4].hostPath.path: Invalid value: \"/a/../b\": must not contain '..'",
                "spec.volumes[4].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\"",
                "spec.volumes[5].persistentVolumeClaim.claimName: Required value",
            ]
        );
    }
}
