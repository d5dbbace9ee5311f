//! ConfigMap, Secret and ServiceAccount: the Secret defaults (`type`
//! Opaque, `stringData` folded into `data` as the v1 conversion does) and
//! core validation (`ValidateConfigMap*`, `ValidateSecret*`,
//! `ValidateServiceAccount*`).

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use serde_json::{Value, json};

use super::field::{self, Cause, Path};
use super::formats::{NameRule, is_config_map_key};
use super::json::{Obj, default_str};
use super::metadata::{immutable_str, validate_object_meta, validate_object_meta_update};

/// `core.MaxSecretSize`, also the ConfigMap limit.
const MAX_SIZE: usize = 1024 * 1024;
const IMMUTABLE_MSG: &str = "field is immutable when `immutable` is set";

/// `SetDefaults_Secret` and `Convert_v1_Secret_To_core_Secret`:
/// `stringData` entries overwrite `data` entries, base64-encoded.
pub fn default_secret(obj: &mut Obj) {
    default_str(obj, "type", "Opaque");
    let Some(Value::Object(string_data)) = obj.remove("stringData") else {
        return;
    };
    let data = obj.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    if let Some(d) = data.as_object_mut() {
        for (k, v) in string_data {
            if let Some(s) = v.as_str() {
                d.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(s)),
                );
            }
        }
    }
}

fn check_key(key: &str, path: &Path, errs: &mut Vec<Cause>) {
    for m in is_config_map_key(key) {
        errs.push(field::invalid(path, key, &m));
    }
}

/// `ValidateConfigMap`.
pub fn validate_config_map(cm: &ConfigMap) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &cm.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    let mut total = 0;
    let binary = cm.binary_data.clone().unwrap_or_default();
    for (k, v) in cm.data.iter().flatten() {
        let p = Path::new("data").key(k);
        check_key(k, &p, &mut errs);
        if binary.contains_key(k) {
            errs.push(field::invalid(
                &p,
                k,
                "duplicate of key present in binaryData",
            ));
        }
        total += v.len();
    }
    for (k, v) in &binary {
        check_key(k, &Path::new("binaryData").key(k), &mut errs);
        total += v.0.len();
    }
    if total > MAX_SIZE {
        errs.push(field::too_long(&Path::new(""), MAX_SIZE));
    }
    errs
}

/// `ValidateConfigMapUpdate`.
pub fn validate_config_map_update(new: &ConfigMap, old: &ConfigMap) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(field::forbidden(&Path::new("immutable"), IMMUTABLE_MSG));
        }
        if new.data.clone().unwrap_or_default() != old.data.clone().unwrap_or_default() {
            errs.push(field::forbidden(&Path::new("data"), IMMUTABLE_MSG));
        }
        if new.binary_data.clone().unwrap_or_default()
            != old.binary_data.clone().unwrap_or_default()
        {
            errs.push(field::forbidden(&Path::new("binaryData"), IMMUTABLE_MSG));
        }
    }
    errs.extend(validate_config_map(new));
    errs
}

/// `ValidateSecret`: keys, total size, and the keys each well-known type
/// requires.
pub fn validate_secret(secret: &Secret) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &secret.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    let dp = Path::new("data");
    let data = secret.data.clone().unwrap_or_default();
    let mut total = 0;
    for (k, v) in &data {
        check_key(k, &dp.key(k), &mut errs);
        total += v.0.len();
    }
    if total > MAX_SIZE {
        errs.push(field::too_long(&dp, MAX_SIZE));
    }
    let require = |key: &str, errs: &mut Vec<Cause>| -> bool {
        if data.contains_key(key) {
            true
        } else {
            errs.push(field::required(&dp.key(key), ""));
            false
        }
    };
    let require_json = |key: &str, errs: &mut Vec<Cause>| {
        if require(key, errs)
            && let Some(bytes) = data.get(key)
            && let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes.0)
        {
            errs.push(field::invalid(
                &dp.key(key),
                "<secret contents redacted>",
                &e.to_string(),
            ));
        }
    };
    match secret.type_.as_deref().unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let name = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .map(String::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(field::required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => require_json(".dockercfg", &mut errs),
        "kubernetes.io/dockerconfigjson" => require_json(".dockerconfigjson", &mut errs),
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errs.push(field::required(&dp.key("username"), ""));
            errs.push(field::required(&dp.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            errs.push(field::required(&dp.key("ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            require("tls.crt", &mut errs);
            require("tls.key", &mut errs);
        }
        _ => {}
    }
    errs
}

/// `ValidateSecretUpdate`: the type never changes; immutable secrets keep
/// their data.
pub fn validate_secret_update(new: &Secret, old: &Secret) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(immutable_str(
        new.type_.as_deref().unwrap_or(""),
        old.type_.as_deref().unwrap_or(""),
        &Path::new("type"),
    ));
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(field::forbidden(&Path::new("immutable"), IMMUTABLE_MSG));
        }
        if new.data.clone().unwrap_or_default() != old.data.clone().unwrap_or_default() {
            errs.push(field::forbidden(&Path::new("data"), IMMUTABLE_MSG));
        }
    }
    errs.extend(validate_secret(new));
    errs
}

/// `ValidateServiceAccount`.
pub fn validate_service_account(sa: &ServiceAccount) -> Vec<Cause> {
    validate_object_meta(
        &sa.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// `ValidateServiceAccountUpdate`.
pub fn validate_service_account_update(new: &ServiceAccount, old: &ServiceAccount) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_service_account(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(errs: &[Cause]) -> Vec<String> {
        errs.iter().map(Cause::error_string).collect()
    }

    // ValidateConfigMap: keys and size.
    #[test]
    fn config_map() {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a/b": "x", "ok.key": "y"}, "binaryData": {"ok.key": "eA=="}})).unwrap();
        assert_eq!(
            msgs(&validate_config_map(&cm)),
            vec![
                "data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                "data[ok.key]: Invalid value: \"ok.key\": duplicate of key present in binaryData",
            ]
        );
        let big: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"k": "x".repeat(MAX_SIZE + 1)}})).unwrap();
        assert_eq!(
            msgs(&validate_config_map(&big)),
            vec!["[]: Too long: may not be more than 1048576 bytes"]
        );
    }

    // ValidateConfigMapUpdate with immutable set.
    #[test]
    fn immutable_config_map() {
        let old: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c", "namespace": "d", "resourceVersion": "1"}, "immutable": true, "data": {"a": "1"}})).unwrap();
        let new: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c", "namespace": "d", "resourceVersion": "1"}, "immutable": true, "data": {"a": "2"}})).unwrap();
        assert_eq!(
            msgs(&validate_config_map_update(&new, &old)),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
    }

    // Secret defaults (type, stringData) and ValidateSecret / ValidateSecretUpdate.
    #[test]
    fn secret() {
        let mut s = json!({"metadata": {"name": "s", "namespace": "d"}, "data": {"a": "eA=="}, "stringData": {"a": "hello", "b": "x"}});
        default_secret(s.as_object_mut().unwrap());
        assert_eq!(s["type"], "Opaque");
        assert_eq!(s["data"], json!({"a": "aGVsbG8=", "b": "eA=="}));
        assert!(s.get("stringData").is_none());
        let tls: Secret = serde_json::from_value(json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}})).unwrap();
        assert_eq!(
            msgs(&validate_secret(&tls)),
            vec!["data[tls.key]: Required value"]
        );
        let mut old: Secret = serde_json::from_value(s).unwrap();
        old.metadata.resource_version = Some("1".into());
        let mut new = old.clone();
        new.type_ = Some("kubernetes.io/tls".into());
        new.data
            .as_mut()
            .unwrap()
            .insert("tls.crt".into(), k8s_openapi::ByteString(b"x".to_vec()));
        new.data
            .as_mut()
            .unwrap()
            .insert("tls.key".into(), k8s_openapi::ByteString(b"x".to_vec()));
        assert_eq!(
            msgs(&validate_secret_update(&new, &old)),
            vec!["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
        );
    }
}
