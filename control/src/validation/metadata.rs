//! ObjectMeta rules shared by every kind: k8s.io/apimachinery/pkg/api/validation
//! (objectmeta.go: `ValidateObjectMetaAccessor`,
//! `ValidateObjectMetaAccessorUpdate`, annotations, owner references,
//! finalizers), meta/v1/validation (`ValidateLabels`, `ValidateManagedFields`)
//! and core's `validateKubeFinalizerName`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde_json::Value;

use super::field::{self, BadValue, Cause, Path, go_quote};
use super::formats::{NameRule, is_qualified_name, is_valid_label_value};

/// `FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE: &str = "field is immutable";
/// `TotalAnnotationSizeLimitB`.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// `IsNegativeErrorMsg`.
pub const IS_NEGATIVE: &str = "must be greater than or equal to 0";

/// Finalizers that need no domain prefix (`IsStandardFinalizerName`).
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// `ValidateNonnegativeField`.
pub fn validate_nonnegative(value: i64, path: &Path) -> Vec<Cause> {
    if value < 0 {
        vec![field::invalid(path, value, IS_NEGATIVE)]
    } else {
        Vec::new()
    }
}

/// `ValidateLabelName`: a qualified name.
pub fn validate_label_name(name: &str, path: &Path) -> Vec<Cause> {
    is_qualified_name(name)
        .into_iter()
        .map(|m| field::invalid(path, name, &m))
        .collect()
}

/// `ValidateLabels`: keys are qualified names, values label values. Causes
/// name the map, not the key, as upstream does.
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(validate_label_name(k, path));
        for m in is_valid_label_value(v) {
            errs.push(field::invalid(path, v, &m));
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitive) and
/// the whole map stays under 256 KiB.
pub fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let Some(annotations) = annotations else {
        return errs;
    };
    let mut total = 0usize;
    for (k, v) in annotations {
        for m in is_qualified_name(&k.to_lowercase()) {
            errs.push(field::invalid(path, k, &m));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(field::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// Go's `%#v` of a `metav1.OwnerReference` (pointers print as their type).
fn go_owner_reference(r: &OwnerReference) -> String {
    let ptr = |b: Option<bool>| match b {
        None => "(*bool)(nil)".to_string(),
        Some(v) => format!("(*bool)({v})"),
    };
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        go_quote(&r.api_version),
        go_quote(&r.kind),
        go_quote(&r.name),
        go_quote(&r.uid),
        ptr(r.controller),
        ptr(r.block_owner_deletion)
    )
}

/// `ValidateOwnerReferences`.
pub fn validate_owner_references(refs: Option<&[OwnerReference]>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs.into_iter().flatten() {
        let (group, version) = match r.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", r.api_version.as_str()),
        };
        if version.is_empty() {
            errs.push(field::invalid(
                &path.child("apiVersion"),
                &r.api_version,
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(field::invalid(
                &path.child("kind"),
                &r.kind,
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(field::invalid(
                &path.child("name"),
                &r.name,
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(field::invalid(
                &path.child("uid"),
                &r.uid,
                "uid must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && r.kind == "Event" {
            errs.push(field::invalid(
                path,
                BadValue::Go(go_owner_reference(r)),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => {
                    let all: Vec<String> =
                        refs.into_iter().flatten().map(go_owner_reference).collect();
                    errs.push(field::invalid(
                        path,
                        BadValue::Go(format!("[]v1.OwnerReference{{{}}}", all.join(", "))),
                        &format!(
                            "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                        ),
                    ));
                }
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// `ValidateFinalizers` plus core's `validateKubeFinalizerName`.
pub fn validate_finalizers(finalizers: Option<&[String]>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let list = finalizers.unwrap_or_default();
    for f in list {
        errs.extend(validate_finalizer_name(f, path));
    }
    if list.iter().any(|f| f == "orphan") && list.iter().any(|f| f == "foregroundDeletion") {
        errs.push(field::invalid(
            path,
            BadValue::Go(field::go_string_slice(Some(list))),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    for (i, f) in list.iter().enumerate() {
        errs.extend(validate_kube_finalizer_name(f, &path.index(i)));
    }
    errs
}

/// `ValidateFinalizerName` (apimachinery): a qualified name.
pub fn validate_finalizer_name(name: &str, path: &Path) -> Vec<Cause> {
    is_qualified_name(name)
        .into_iter()
        .map(|m| field::invalid(path, name, &m))
        .collect()
}

/// `validateKubeFinalizerName`: unprefixed names must be standard ones.
pub fn validate_kube_finalizer_name(name: &str, path: &Path) -> Vec<Cause> {
    if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        vec![field::invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        )]
    } else {
        Vec::new()
    }
}

/// `ValidateManagedFields` (operation and fieldsType).
fn validate_managed_fields(meta: &ObjectMeta, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, entry) in meta.managed_fields.iter().flatten().enumerate() {
        let p = path.index(i);
        let op = entry.operation.as_deref().unwrap_or("");
        if op != "Apply" && op != "Update" {
            errs.push(field::invalid(
                &p.child("operation"),
                op,
                "must be `Apply` or `Update`",
            ));
        }
        if let Some(t) = entry.fields_type.as_deref()
            && !t.is_empty()
            && t != "FieldsV1"
        {
            errs.push(field::invalid(
                &p.child("fieldsType"),
                t,
                "must be `FieldsV1`",
            ));
        }
    }
    errs
}

/// `ValidateObjectMeta` (core's wrapper over apimachinery's): name or
/// generateName by `rule`, namespace presence by scope, labels, annotations,
/// owner references, finalizers, managed fields.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    rule: NameRule,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        for m in rule.check(generate_name, true) {
            errs.push(field::invalid(
                &path.child("generateName"),
                generate_name,
                &m,
            ));
        }
    }
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        errs.push(field::required(
            &path.child("name"),
            "name or generateName is required",
        ));
    } else {
        for m in rule.check(name, false) {
            errs.push(field::invalid(&path.child("name"), name, &m));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(field::required(&path.child("namespace"), ""));
        } else {
            for m in NameRule::Dns1123Label.check(namespace, false) {
                errs.push(field::invalid(&path.child("namespace"), namespace, &m));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(field::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    errs.extend(validate_nonnegative(
        meta.generation.unwrap_or(0),
        &path.child("generation"),
    ));
    errs.extend(validate_labels(meta.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        meta.owner_references.as_deref(),
        &path.child("ownerReferences"),
    ));
    errs.extend(validate_finalizers(
        meta.finalizers.as_deref(),
        &path.child("finalizers"),
    ));
    errs.extend(validate_managed_fields(meta, &path.child("managedFields")));
    errs
}

/// Go's `time.Time.String()` for the timestamps ObjectMeta carries.
fn go_time(t: Option<&Time>) -> BadValue {
    match t {
        None => BadValue::Null,
        Some(t) => BadValue::Go(t.0.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()),
    }
}

/// `ValidateImmutableField` for strings.
pub fn immutable_str(new: &str, old: &str, path: &Path) -> Vec<Cause> {
    if new == old {
        Vec::new()
    } else {
        vec![field::invalid(path, new, FIELD_IMMUTABLE)]
    }
}

/// `ValidateImmutableField` for any value, with the bad value pre-rendered.
pub fn immutable<T: PartialEq>(
    new: &T,
    old: &T,
    rendered: impl FnOnce() -> BadValue,
    path: &Path,
) -> Vec<Cause> {
    if new == old {
        Vec::new()
    } else {
        vec![field::invalid(path, rendered(), FIELD_IMMUTABLE)]
    }
}

/// `ValidateObjectMetaUpdate`: identity fields are immutable, a
/// resourceVersion is required, finalizers cannot be added while deleting.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if old.deletion_timestamp.is_some() {
        let old_set: std::collections::BTreeSet<&String> =
            old.finalizers.iter().flatten().collect();
        let extra: std::collections::BTreeSet<&String> = new
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !old_set.contains(f))
            .collect();
        if !extra.is_empty() {
            let list: Vec<String> = extra.into_iter().cloned().collect();
            errs.push(field::forbidden(
                &path.child("finalizers"),
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    field::go_string_slice(Some(&list))
                ),
            ));
        }
    }
    let rv = new.resource_version.as_deref().unwrap_or("");
    if rv.is_empty() {
        errs.push(field::invalid(
            &path.child("resourceVersion"),
            rv,
            "must be specified for an update",
        ));
    }
    let (new_gen, old_gen) = (new.generation.unwrap_or(0), old.generation.unwrap_or(0));
    if new_gen < old_gen {
        errs.push(field::invalid(
            &path.child("generation"),
            new_gen,
            "must not be decremented",
        ));
    }
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    errs.extend(immutable_str(
        &s(&new.name),
        &s(&old.name),
        &path.child("name"),
    ));
    errs.extend(immutable_str(
        &s(&new.namespace),
        &s(&old.namespace),
        &path.child("namespace"),
    ));
    errs.extend(immutable_str(
        &s(&new.uid),
        &s(&old.uid),
        &path.child("uid"),
    ));
    errs.extend(immutable(
        &new.creation_timestamp,
        &old.creation_timestamp,
        || go_time(new.creation_timestamp.as_ref()),
        &path.child("creationTimestamp"),
    ));
    errs.extend(immutable(
        &new.deletion_timestamp,
        &old.deletion_timestamp,
        || go_time(new.deletion_timestamp.as_ref()),
        &path.child("deletionTimestamp"),
    ));
    errs.extend(immutable(
        &new.deletion_grace_period_seconds,
        &old.deletion_grace_period_seconds,
        || new.deletion_grace_period_seconds.into(),
        &path.child("deletionGracePeriodSeconds"),
    ));
    errs.extend(validate_labels(new.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        new.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        new.owner_references.as_deref(),
        &path.child("ownerReferences"),
    ));
    errs.extend(validate_managed_fields(new, &path.child("managedFields")));
    errs
}

/// What the generic registry's `BeforeUpdate` carries from the stored
/// object into an update before validating it: the uid when none is given,
/// the creation timestamp, and the deletion grace period once set.
pub fn carry_over_for_update(new: &mut Value, old: &Value) {
    let Some(old_meta) = old.get("metadata").and_then(Value::as_object) else {
        return;
    };
    let Some(new_meta) = new
        .as_object_mut()
        .map(|o| {
            o.entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()))
        })
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let missing = |m: &serde_json::Map<String, Value>, k: &str| {
        m.get(k)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    };
    for key in ["uid", "deletionGracePeriodSeconds"] {
        if missing(new_meta, key)
            && let Some(v) = old_meta.get(key)
        {
            new_meta.insert(key.to_string(), v.clone());
        }
    }
    if let Some(ts) = old_meta.get("creationTimestamp").filter(|v| !v.is_null()) {
        new_meta.insert("creationTimestamp".to_string(), ts.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: Value) -> ObjectMeta {
        serde_json::from_value(v).unwrap()
    }

    fn msgs(errs: &[Cause]) -> Vec<String> {
        errs.iter().map(Cause::error_string).collect()
    }

    // ValidateObjectMetaAccessor: missing name.
    #[test]
    fn name_or_generate_name_required() {
        let errs = validate_object_meta(
            &meta(serde_json::json!({"namespace": "default"})),
            true,
            NameRule::Dns1123Subdomain,
            &Path::new("metadata"),
        );
        assert_eq!(
            msgs(&errs),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
    }

    // ValidateObjectMetaAccessor: namespace required / forbidden by scope.
    #[test]
    fn namespace_scope() {
        let m = meta(serde_json::json!({"name": "a"}));
        assert_eq!(
            msgs(&validate_object_meta(
                &m,
                true,
                NameRule::Dns1123Subdomain,
                &Path::new("metadata")
            )),
            vec!["metadata.namespace: Required value"]
        );
        let m = meta(serde_json::json!({"name": "a", "namespace": "x"}));
        assert_eq!(
            msgs(&validate_object_meta(
                &m,
                false,
                NameRule::Dns1123Subdomain,
                &Path::new("metadata")
            )),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
    }

    // ValidateLabels: the cause names the map and shows the bad key or value.
    #[test]
    fn labels_and_annotations() {
        let m = meta(
            serde_json::json!({"name": "a", "labels": {"app": "bad value"}, "annotations": {"-x": "1"}}),
        );
        let errs = validate_object_meta(
            &m,
            false,
            NameRule::Dns1123Subdomain,
            &Path::new("metadata"),
        );
        assert_eq!(errs.len(), 2);
        assert!(errs[0].error_string().starts_with(
            "metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string"
        ));
        assert!(
            errs[1].error_string().starts_with(
                "metadata.annotations: Invalid value: \"-x\": name part must consist of"
            )
        );
        let big = meta(
            serde_json::json!({"name": "a", "annotations": {"k": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)}}),
        );
        assert_eq!(
            msgs(&validate_object_meta(
                &big,
                false,
                NameRule::Dns1123Subdomain,
                &Path::new("metadata")
            )),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
    }

    // ValidateOwnerReferences / ValidateFinalizers / validateKubeFinalizerName.
    #[test]
    fn owner_references_and_finalizers() {
        let m = meta(serde_json::json!({"name": "a",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "", "uid": "u"}],
            "finalizers": ["example.com/x", "foo", "kubernetes"]}));
        let errs = validate_object_meta(
            &m,
            false,
            NameRule::Dns1123Subdomain,
            &Path::new("metadata"),
        );
        assert_eq!(
            msgs(&errs),
            vec![
                "metadata.ownerReferences.name: Invalid value: \"\": name must not be empty",
                "metadata.finalizers[1]: Invalid value: \"foo\": name is neither a standard finalizer name nor is it fully qualified",
            ]
        );
    }

    // ValidateObjectMetaAccessorUpdate.
    #[test]
    fn update_rules() {
        let old = meta(
            serde_json::json!({"name": "a", "uid": "1", "resourceVersion": "5", "generation": 3}),
        );
        let new = meta(serde_json::json!({"name": "b", "uid": "1", "generation": 2}));
        assert_eq!(
            msgs(&validate_object_meta_update(
                &new,
                &old,
                &Path::new("metadata")
            )),
            vec![
                "metadata.resourceVersion: Invalid value: \"\": must be specified for an update",
                "metadata.generation: Invalid value: 2: must not be decremented",
                "metadata.name: Invalid value: \"b\": field is immutable",
            ]
        );
        let old = meta(
            serde_json::json!({"name": "a", "resourceVersion": "5", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a.io/x"]}),
        );
        let new = meta(
            serde_json::json!({"name": "a", "resourceVersion": "5", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a.io/x", "b.io/y"]}),
        );
        assert_eq!(
            msgs(&validate_object_meta_update(
                &new,
                &old,
                &Path::new("metadata")
            )),
            vec![
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b.io/y\"}"
            ]
        );
    }

    #[test]
    fn carry_over_keeps_identity() {
        let old = serde_json::json!({"metadata": {"uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z"}});
        let mut new = serde_json::json!({"metadata": {"name": "a"}});
        carry_over_for_update(&mut new, &old);
        assert_eq!(new["metadata"]["uid"], "u1");
        assert_eq!(new["metadata"]["creationTimestamp"], "2024-01-01T00:00:00Z");
    }
}
