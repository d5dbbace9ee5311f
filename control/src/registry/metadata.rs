//! Object metadata as kube-apiserver sets it: names (generateName), uid,
//! creationTimestamp, generation, and what an update may not change.

use rand::Rng;
use serde_json::{Map, Value, json};

use crate::api::resource::Resource;
use crate::api::status::{ApiError, Cause};

/// Current time in RFC 3339 with seconds precision, as metav1.Time: the
/// fraction is cut off, not rounded (Go's `time.Format`), so a timestamp is
/// never later than the moment it records.
pub fn now() -> String {
    time(jiff::Timestamp::now())
}

/// Time `secs` seconds from now, in the same format.
pub fn now_plus(secs: i64) -> String {
    time(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs))
}

/// `t` in the same format.
pub fn time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The metadata map of an object, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Random suffix alphabet of generateName (no vowels, no confusable digits).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `prefix` + 5 random characters, truncated like kube's name generator.
pub fn generate_name(prefix: &str) -> String {
    let mut rng = rand::rng();
    let base: String = if prefix.len() > 58 {
        prefix[..58].to_string()
    } else {
        prefix.to_string()
    };
    let suffix: String = (0..5)
        .map(|_| ALPHANUMS[rng.random_range(0..ALPHANUMS.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// Checks the object's identity against the URL and sets namespace.
pub fn check_identity(
    r: &Resource,
    obj: &mut Value,
    namespace: &str,
    url_name: Option<&str>,
) -> Result<(), ApiError> {
    let meta = meta_mut(obj);
    if r.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(namespace));
            }
        }
    } else {
        meta.remove("namespace");
    }
    if let Some(url_name) = url_name {
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if n == url_name => {}
            Some(n) if !n.is_empty() => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )));
            }
            _ => {
                meta.insert("name".into(), json!(url_name));
            }
        }
    }
    Ok(())
}

/// Sets the metadata of a new object (after identity checks).
pub fn prepare_create(
    r: &Resource,
    obj: &mut Value,
    tracks_generation: bool,
) -> Result<(), ApiError> {
    let meta = meta_mut(obj);
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                r.kind,
                r.group,
                "",
                &[Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
        meta.insert("name".into(), json!(generate_name(&prefix)));
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("selfLink");
    if tracks_generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    Ok(())
}

/// Carries over what an update may not change and bumps generation when
/// the object's spec (everything but metadata and status) changed.
pub fn prepare_update(new: &mut Value, old: &Value, tracks_generation: bool) {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let spec_changed = {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
                m.remove("apiVersion");
                m.remove("kind");
            }
            v
        };
        strip(new) != strip(old)
    };
    let meta = meta_mut(new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(k) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.remove(k);
            }
        }
    }
    meta.remove("selfLink");
    if tracks_generation {
        let g = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let g = if spec_changed { g + 1 } else { g };
        meta.insert("generation".into(), json!(g));
    }
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::find;

    #[test]
    fn timestamps_cut_the_fraction_and_are_never_in_the_future() {
        for _ in 0..50 {
            let stamped: jiff::Timestamp = now().parse().expect("RFC 3339");
            let after = jiff::Timestamp::now();
            assert!(stamped <= after, "{stamped} is after {after}");
            assert_eq!(stamped.subsec_nanosecond(), 0);
            assert!(after.duration_since(stamped) < jiff::SignedDuration::from_secs(1));
            std::thread::sleep(std::time::Duration::from_millis(23));
        }
    }

    #[test]
    fn generate_name_appends_five_characters() {
        let n = generate_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("web-"));
    }

    #[test]
    fn create_sets_identity_and_generation() {
        let d = find("apps", "v1", "deployments").unwrap();
        let mut o = json!({"metadata": {"generateName": "x-", "resourceVersion": "5"}});
        check_identity(d, &mut o, "default", None).unwrap();
        prepare_create(d, &mut o, true).unwrap();
        assert_eq!(o["metadata"]["namespace"], "default");
        assert_eq!(o["metadata"]["generation"], 1);
        assert!(o["metadata"]["uid"].as_str().unwrap().len() == 36);
        assert!(o["metadata"].get("resourceVersion").is_none());
        let mut bad = json!({"metadata": {"name": "a", "namespace": "other"}});
        assert_eq!(
            check_identity(d, &mut bad, "default", None)
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn generation_moves_with_spec_only() {
        let old = json!({"metadata": {"uid": "u", "generation": 3}, "spec": {"replicas": 1}, "status": {"x": 1}});
        let mut same = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"x": 2}});
        prepare_update(&mut same, &old, true);
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["metadata"]["uid"], "u");
        let mut changed = json!({"metadata": {}, "spec": {"replicas": 2}});
        prepare_update(&mut changed, &old, true);
        assert_eq!(changed["metadata"]["generation"], 4);
    }
}
