//! authorization.k8s.io/v1 reviews (pkg/apis/authorization/validation):
//! a question names either a resource or a non-resource request, a
//! `SubjectAccessReview` names whom it asks about, and a review carries no
//! metadata but a `LocalSubjectAccessReview`'s namespace.

use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview,
    SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::field::{self, BadValue, Cause, Path};
use super::selector::{validate_operator, validate_requirement};

/// `ValidateSelfSubjectAccessReview`.
pub fn validate_self_subject_access_review(review: &SelfSubjectAccessReview) -> Vec<Cause> {
    let spec = &review.spec;
    let mut errs = validate_one_question(
        spec.resource_attributes.as_ref(),
        spec.non_resource_attributes.as_ref(),
    );
    errs.extend(empty_metadata(&review.metadata, false));
    errs
}

/// `ValidateSubjectAccessReview`.
pub fn validate_subject_access_review(review: &SubjectAccessReview) -> Vec<Cause> {
    let mut errs = validate_spec(&review.spec);
    errs.extend(empty_metadata(&review.metadata, false));
    errs
}

/// `ValidateLocalSubjectAccessReview`: a question about the review's own
/// namespace, and only about resources.
pub fn validate_local_subject_access_review(review: &LocalSubjectAccessReview) -> Vec<Cause> {
    let spec = &review.spec;
    let mut errs = validate_spec(spec);
    errs.extend(empty_metadata(&review.metadata, true));
    let namespace = review.metadata.namespace.as_deref().unwrap_or_default();
    if let Some(attributes) = &spec.resource_attributes {
        let asked = attributes.namespace.as_deref().unwrap_or_default();
        if asked != namespace {
            errs.push(field::invalid(
                &Path::new("spec.resourceAttributes.namespace"),
                asked,
                "must match metadata.namespace",
            ));
        }
    }
    if let Some(attributes) = &spec.non_resource_attributes {
        errs.push(field::invalid(
            &Path::new("spec.nonResourceAttributes"),
            go_non_resource(Some(attributes)),
            "disallowed on this kind of request",
        ));
    }
    errs
}

/// `ValidateSubjectAccessReviewSpec`.
fn validate_spec(spec: &SubjectAccessReviewSpec) -> Vec<Cause> {
    let mut errs = validate_one_question(
        spec.resource_attributes.as_ref(),
        spec.non_resource_attributes.as_ref(),
    );
    let user = spec.user.as_deref().unwrap_or_default();
    if user.is_empty() && spec.groups.as_ref().is_none_or(Vec::is_empty) {
        errs.push(field::invalid(
            &Path::new("spec").child("user"),
            user,
            "at least one of user or group must be specified",
        ));
    }
    errs
}

/// Exactly one of resource and non-resource attributes, and the resource
/// attributes' selectors.
fn validate_one_question(
    resource: Option<&ResourceAttributes>,
    non_resource: Option<&NonResourceAttributes>,
) -> Vec<Cause> {
    let spec = Path::new("spec");
    let mut errs = Vec::new();
    match (resource, non_resource) {
        (Some(_), Some(_)) => errs.push(field::invalid(
            &spec.child("nonResourceAttributes"),
            go_non_resource(non_resource),
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => errs.push(field::invalid(
            &spec.child("resourceAttributes"),
            BadValue::Null,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        _ => {}
    }
    if let Some(attributes) = resource {
        let path = Path::new("spec.resourceAttributes");
        if let Some(selector) = &attributes.field_selector {
            errs.extend(validate_selector(
                selector.raw_selector.as_deref(),
                selector.requirements.as_deref(),
                &path.child("fieldSelector"),
                |r, at| {
                    validate_operator(
                        &r.operator,
                        r.values.as_deref().unwrap_or_default(),
                        at,
                        true,
                    )
                },
            ));
        }
        if let Some(selector) = &attributes.label_selector {
            errs.extend(validate_selector(
                selector.raw_selector.as_deref(),
                selector.requirements.as_deref(),
                &path.child("labelSelector"),
                |r, at| validate_requirement(r, at, true),
            ));
        }
    }
    errs
}

/// `validateFieldSelectorAttributes` and `validateLabelSelectorAttributes`:
/// raw or requirements, each requirement checked by `check` (which lets
/// unknown operators through, so that newer clients can ask).
fn validate_selector<R>(
    raw: Option<&str>,
    requirements: Option<&[R]>,
    path: &Path,
    check: impl Fn(&R, &Path) -> Vec<Cause>,
) -> Vec<Cause> {
    let requirements = requirements.unwrap_or_default();
    let mut errs = raw_or_requirements(raw, !requirements.is_empty(), path);
    for (i, requirement) in requirements.iter().enumerate() {
        errs.extend(check(requirement, &path.child("requirements").index(i)));
    }
    errs
}

/// A selector is given either raw or as requirements, not both.
fn raw_or_requirements(raw: Option<&str>, requirements: bool, path: &Path) -> Vec<Cause> {
    let raw = raw.unwrap_or_default();
    match (raw.is_empty(), requirements) {
        (false, true) => vec![field::invalid(
            &path.child("rawSelector"),
            raw,
            "may not specified at the same time as requirements",
        )],
        (true, false) => vec![field::required(
            &path.child("requirements"),
            &format!("when {path} is specified, requirements or rawSelector is required"),
        )],
        _ => Vec::new(),
    }
}

/// A review's metadata must be empty (managed fields aside), except a
/// local review's namespace. Empty as Go sees it: a field set to its zero
/// value (`generation: 0`, which a protobuf body carries) is no field.
fn empty_metadata(metadata: &ObjectMeta, namespace_allowed: bool) -> Vec<Cause> {
    let value = serde_json::to_value(metadata).unwrap_or_default();
    let fields = value.as_object().into_iter().flatten();
    let set: serde_json::Map<String, serde_json::Value> = fields
        .filter(|(name, value)| {
            name.as_str() != "managedFields"
                && !(namespace_allowed && name.as_str() == "namespace")
                && !go_zero(value)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if set.is_empty() {
        return Vec::new();
    }
    let detail = if namespace_allowed {
        "must be empty except for namespace"
    } else {
        "must be empty"
    };
    vec![field::invalid(
        &Path::new("metadata"),
        BadValue::Go(serde_json::Value::Object(set).to_string()),
        detail,
    )]
}

/// Whether a JSON value is Go's zero value of its field.
fn go_zero(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
    }
}

/// Go's rendering of a `*NonResourceAttributes` in an error (its
/// generated `String()`, or `null`).
fn go_non_resource(attributes: Option<&NonResourceAttributes>) -> BadValue {
    match attributes {
        None => BadValue::Null,
        Some(a) => BadValue::Go(format!(
            "&NonResourceAttributes{{Path:{},Verb:{},}}",
            a.path.as_deref().unwrap_or_default(),
            a.verb.as_deref().unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authorization::v1::{
        FieldSelectorAttributes, LabelSelectorAttributes, SelfSubjectAccessReviewSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldSelectorRequirement;

    use super::*;

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::error_string).collect()
    }

    fn pods_in(namespace: &str) -> ResourceAttributes {
        ResourceAttributes {
            namespace: Some(namespace.into()),
            verb: Some("list".into()),
            resource: Some("pods".into()),
            ..Default::default()
        }
    }

    fn self_review(
        resource: Option<ResourceAttributes>,
        non_resource: Option<NonResourceAttributes>,
    ) -> SelfSubjectAccessReview {
        SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: resource,
                non_resource_attributes: non_resource,
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_review_asks_exactly_one_question() {
        assert!(
            validate_self_subject_access_review(&self_review(Some(pods_in("default")), None))
                .is_empty()
        );
        assert_eq!(
            messages(&validate_self_subject_access_review(&self_review(
                None, None
            ))),
            [
                "spec.resourceAttributes: Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified"
            ]
        );
        let healthz = NonResourceAttributes {
            path: Some("/healthz".into()),
            verb: Some("get".into()),
        };
        assert_eq!(
            messages(&validate_self_subject_access_review(&self_review(
                Some(pods_in("default")),
                Some(healthz)
            ))),
            [
                "spec.nonResourceAttributes: Invalid value: &NonResourceAttributes{Path:/healthz,Verb:get,}: cannot be specified in combination with resourceAttributes"
            ]
        );
    }

    #[test]
    fn a_subject_access_review_names_a_user_or_a_group_and_carries_no_metadata() {
        let mut review = SubjectAccessReview {
            metadata: ObjectMeta {
                name: Some("ask".into()),
                ..Default::default()
            },
            spec: SubjectAccessReviewSpec {
                resource_attributes: Some(pods_in("default")),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_subject_access_review(&review)),
            [
                "spec.user: Invalid value: \"\": at least one of user or group must be specified",
                "metadata: Invalid value: {\"name\":\"ask\"}: must be empty"
            ]
        );
        // Go's zero values are no fields (a protobuf body has them).
        review.metadata = ObjectMeta {
            generation: Some(0),
            name: Some(String::new()),
            ..Default::default()
        };
        review.spec.groups = Some(vec!["system:authenticated".into()]);
        assert!(validate_subject_access_review(&review).is_empty());
    }

    #[test]
    fn a_local_review_asks_about_its_own_namespace_and_resources_only() {
        let review = |asked: &str| LocalSubjectAccessReview {
            metadata: ObjectMeta {
                namespace: Some("team".into()),
                ..Default::default()
            },
            spec: SubjectAccessReviewSpec {
                resource_attributes: Some(pods_in(asked)),
                user: Some("jane".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(validate_local_subject_access_review(&review("team")).is_empty());
        assert_eq!(
            messages(&validate_local_subject_access_review(&review("other"))),
            [
                "spec.resourceAttributes.namespace: Invalid value: \"other\": must match metadata.namespace"
            ]
        );
        let mut asks_a_path = review("team");
        asks_a_path.spec.resource_attributes = None;
        asks_a_path.spec.non_resource_attributes = Some(NonResourceAttributes::default());
        assert_eq!(
            messages(&validate_local_subject_access_review(&asks_a_path)),
            [
                "spec.nonResourceAttributes: Invalid value: &NonResourceAttributes{Path:,Verb:,}: disallowed on this kind of request"
            ]
        );
    }

    #[test]
    fn selectors_come_raw_or_as_requirements_and_unknown_operators_pass() {
        let mut attributes = pods_in("default");
        attributes.field_selector = Some(FieldSelectorAttributes::default());
        attributes.label_selector = Some(LabelSelectorAttributes {
            raw_selector: Some("app=web".into()),
            requirements: Some(vec![Default::default()]),
        });
        assert_eq!(
            messages(&validate_self_subject_access_review(&self_review(
                Some(attributes.clone()),
                None
            ))),
            [
                "spec.resourceAttributes.fieldSelector.requirements: Required value: when spec.resourceAttributes.fieldSelector is specified, requirements or rawSelector is required",
                "spec.resourceAttributes.labelSelector.rawSelector: Invalid value: \"app=web\": may not specified at the same time as requirements",
                "spec.resourceAttributes.labelSelector.requirements[0].key: Invalid value: \"\": name part must be non-empty",
                "spec.resourceAttributes.labelSelector.requirements[0].key: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        attributes.label_selector = None;
        attributes.field_selector = Some(FieldSelectorAttributes {
            raw_selector: None,
            requirements: Some(vec![
                FieldSelectorRequirement {
                    key: "spec.nodeName".into(),
                    operator: "In".into(),
                    values: None,
                },
                FieldSelectorRequirement {
                    key: "spec.nodeName".into(),
                    operator: "Matches".into(),
                    values: Some(vec!["node-*".into()]),
                },
            ]),
        });
        assert_eq!(
            messages(&validate_self_subject_access_review(&self_review(
                Some(attributes),
                None
            ))),
            [
                "spec.resourceAttributes.fieldSelector.requirements[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
            ]
        );
    }
}
