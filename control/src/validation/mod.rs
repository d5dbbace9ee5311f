//! kube-apiserver's defaulting, admission mutations and validation for every
//! served kind, as pure functions on the wire form (`serde_json::Value`).
//!
//! One module per API group's rules (as `pkg/apis/<group>/validation`);
//! each kind's strategy (`kinds/`) calls its defaulting and validation
//! functions, the generic registry calls the strategy. A non-empty list of
//! [`Cause`]s is answered with [`invalid_status`] (422).

pub mod field;
pub mod formats;
pub mod metadata;
pub mod selector;

pub mod apps;
pub mod authorization;
pub mod batch;
pub mod certificates;
pub mod cluster;
pub mod config;
pub mod container;
pub mod coordination;
pub mod cron;
pub mod daemon_set;
pub mod endpoints;
pub mod event;
pub mod json;
pub mod pod;
pub mod pod_defaults;
pub mod pod_spec;
pub mod pod_status;
pub mod policy;
pub mod rbac;
pub mod resources;
pub mod scheduling;
pub mod service;
pub mod service_account;
pub mod service_validation;
pub mod storage;
pub mod volume;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use field::{BadValue, Cause, CauseType, Path, invalid_message, invalid_status};
pub use pod_defaults::{AdmissionError, PriorityClassInfo, system_priority_class};
pub use policy::validate_delete_options;
pub use service::normalize_cluster_ips;

/// Decodes the wire object into its typed form; a value of the wrong JSON
/// type is reported as a `FieldValueTypeInvalid` cause on the object.
pub fn decode<T: DeserializeOwned>(obj: &Value) -> Result<T, Vec<Cause>> {
    T::deserialize(obj).map_err(|e| {
        vec![field::type_invalid(
            &Path::new(""),
            BadValue::Omit,
            &e.to_string(),
        )]
    })
}

/// Runs `check` on the decoded object.
pub fn check<T: DeserializeOwned>(obj: &Value, check: impl FnOnce(&T) -> Vec<Cause>) -> Vec<Cause> {
    match decode::<T>(obj) {
        Ok(t) => check(&t),
        Err(e) => e,
    }
}

/// Runs `check` on the decoded new and old objects.
pub fn check2<T: DeserializeOwned>(
    new: &Value,
    old: &Value,
    check: impl FnOnce(&T, &T) -> Vec<Cause>,
) -> Vec<Cause> {
    match (decode::<T>(new), decode::<T>(old)) {
        (Ok(n), Ok(o)) => check(&n, &o),
        (Err(e), _) | (_, Err(e)) => e,
    }
}

/// The generic registry's final check of a stored object's name
/// (`BeforeCreate`): once the kind's own validation passed, every name must
/// be a valid path segment.
pub fn path_segment_name_causes(obj: &Value) -> Vec<Cause> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    formats::is_valid_path_segment_name(name)
        .into_iter()
        .map(|m| field::invalid(&Path::new("metadata").child("name"), name, &m))
        .collect()
}
