//! Configuration and storage kinds (`printConfigMap`, `printSecret`,
//! `printServiceAccount`, `printPersistentVolume`,
//! `printPersistentVolumeClaim` in kube-apiserver's printers.go).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::format::{age, list_at, map_len, str_at};
use crate::api::table::{AGE, Doc, NAME, Printed, Printer, col, wide};

pub const CONFIG_MAP: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Data",
            "string",
            Doc::Field("io.k8s.api.core.v1.ConfigMap", "data"),
        ),
        AGE,
    ],
    print: |cm, now| {
        vec![
            json!(str_at(cm, "/metadata/name")),
            json!(map_len(cm, "/data") + map_len(cm, "/binaryData")),
            json!(age(now, cm)),
        ]
        .into()
    },
};

pub const SECRET: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Type",
            "string",
            Doc::Field("io.k8s.api.core.v1.Secret", "type"),
        ),
        col(
            "Data",
            "string",
            Doc::Field("io.k8s.api.core.v1.Secret", "data"),
        ),
        AGE,
    ],
    print: |s, now| {
        vec![
            json!(str_at(s, "/metadata/name")),
            json!(str_at(s, "/type")),
            json!(map_len(s, "/data")),
            json!(age(now, s)),
        ]
        .into()
    },
};

pub const SERVICE_ACCOUNT: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Secrets",
            "string",
            Doc::Field("io.k8s.api.core.v1.ServiceAccount", "secrets"),
        ),
        AGE,
    ],
    print: |sa, now| {
        vec![
            json!(str_at(sa, "/metadata/name")),
            json!(list_at(sa, "/secrets").len()),
            json!(age(now, sa)),
        ]
        .into()
    },
};

/// `helper.GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The beta storage-class annotation, which wins over the field
/// (`helper.GetPersistentVolumeClass`, `GetPersistentVolumeClaimClass`).
fn storage_class(obj: &Value) -> String {
    if let Some(class) = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .and_then(Value::as_str)
    {
        return class.to_string();
    }
    str_at(obj, "/spec/storageClassName").to_string()
}

fn phase(obj: &Value) -> String {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        "Terminating".into()
    } else {
        str_at(obj, "/status/phase").into()
    }
}

fn or_unset(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer).and_then(Value::as_str) {
        Some(s) => s.to_string(),
        None => "<unset>".into(),
    }
}

const PV_SPEC: &str = "io.k8s.api.core.v1.PersistentVolumeSpec";
const PV_STATUS: &str = "io.k8s.api.core.v1.PersistentVolumeStatus";

pub const PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        col("Capacity", "string", Doc::Field(PV_SPEC, "capacity")),
        col("Access Modes", "string", Doc::Field(PV_SPEC, "accessModes")),
        col(
            "Reclaim Policy",
            "string",
            Doc::Field(PV_SPEC, "persistentVolumeReclaimPolicy"),
        ),
        col("Status", "string", Doc::Field(PV_STATUS, "phase")),
        col("Claim", "string", Doc::Field(PV_SPEC, "claimRef")),
        col(
            "StorageClass",
            "string",
            Doc::Text("StorageClass of the pv"),
        ),
        col(
            "VolumeAttributesClass",
            "string",
            Doc::Text("VolumeAttributesClass of the pv"),
        ),
        col("Reason", "string", Doc::Field(PV_STATUS, "reason")),
        AGE,
        wide("VolumeMode", "string", Doc::Field(PV_SPEC, "volumeMode")),
    ],
    print: print_pv,
};

fn print_pv(pv: &Value, now: Timestamp) -> Printed {
    let claim = match pv.pointer("/spec/claimRef").filter(|c| c.is_object()) {
        Some(c) => format!("{}/{}", str_at(c, "/namespace"), str_at(c, "/name")),
        None => String::new(),
    };
    vec![
        json!(str_at(pv, "/metadata/name")),
        json!(str_at(pv, "/spec/capacity/storage")),
        json!(access_modes(list_at(pv, "/spec/accessModes"))),
        json!(str_at(pv, "/spec/persistentVolumeReclaimPolicy")),
        json!(phase(pv)),
        json!(claim),
        json!(storage_class(pv)),
        json!(or_unset(pv, "/spec/volumeAttributesClassName")),
        json!(str_at(pv, "/status/reason")),
        json!(age(now, pv)),
        json!(or_unset(pv, "/spec/volumeMode")),
    ]
    .into()
}

const PVC_SPEC: &str = "io.k8s.api.core.v1.PersistentVolumeClaimSpec";
const PVC_STATUS: &str = "io.k8s.api.core.v1.PersistentVolumeClaimStatus";

pub const PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", Doc::Field(PVC_STATUS, "phase")),
        col("Volume", "string", Doc::Field(PVC_SPEC, "volumeName")),
        col("Capacity", "string", Doc::Field(PVC_STATUS, "capacity")),
        col(
            "Access Modes",
            "string",
            Doc::Field(PVC_STATUS, "accessModes"),
        ),
        col(
            "StorageClass",
            "string",
            Doc::Text("StorageClass of the pvc"),
        ),
        col(
            "VolumeAttributesClass",
            "string",
            Doc::Text("VolumeAttributesClass of the pvc"),
        ),
        AGE,
        wide("VolumeMode", "string", Doc::Field(PVC_SPEC, "volumeMode")),
    ],
    print: print_pvc,
};

/// Capacity and access modes are shown only once the claim is bound.
fn print_pvc(pvc: &Value, now: Timestamp) -> Printed {
    let volume = str_at(pvc, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            str_at(pvc, "/status/capacity/storage").to_string(),
            access_modes(list_at(pvc, "/status/accessModes")),
        )
    };
    vec![
        json!(str_at(pvc, "/metadata/name")),
        json!(phase(pvc)),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(storage_class(pvc)),
        json!(or_unset(pvc, "/spec/volumeAttributesClassName")),
        json!(age(now, pvc)),
        json!(or_unset(pvc, "/spec/volumeMode")),
    ]
    .into()
}
