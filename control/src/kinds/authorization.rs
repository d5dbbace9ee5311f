//! authorization.k8s.io/v1 reviews (`kubectl auth can-i`): questions to
//! the authorizer, answered in the response and never stored.

use serde_json::Value;

use crate::api::resource::{CREATE, Handler, Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check};

/// A review: created only, answered and never stored or listed.
const fn review(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    strategy: &'static dyn Strategy,
) -> Resource {
    Resource {
        verbs: CREATE,
        ..resource(
            "authorization.k8s.io",
            "v1",
            kind,
            "",
            plural,
            singular,
            namespaced,
            strategy,
        )
    }
}

pub struct SelfSubjectAccessReviews;

pub static SELF_SUBJECT_ACCESS_REVIEWS: Resource = review(
    "SelfSubjectAccessReview",
    "selfsubjectaccessreviews",
    "selfsubjectaccessreview",
    false,
    &SelfSubjectAccessReviews,
);

impl Strategy for SelfSubjectAccessReviews {
    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(
            obj,
            validation::authorization::validate_self_subject_access_review,
        )
    }

    fn is_stored(&self) -> bool {
        false
    }

    fn handler(&self) -> Handler {
        Handler::AccessReview
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::DEFAULT
    }
}

pub struct SelfSubjectRulesReviews;

pub static SELF_SUBJECT_RULES_REVIEWS: Resource = review(
    "SelfSubjectRulesReview",
    "selfsubjectrulesreviews",
    "selfsubjectrulesreview",
    false,
    &SelfSubjectRulesReviews,
);

impl Strategy for SelfSubjectRulesReviews {
    fn is_stored(&self) -> bool {
        false
    }

    fn handler(&self) -> Handler {
        Handler::AccessReview
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::DEFAULT
    }
}

pub struct SubjectAccessReviews;

pub static SUBJECT_ACCESS_REVIEWS: Resource = review(
    "SubjectAccessReview",
    "subjectaccessreviews",
    "subjectaccessreview",
    false,
    &SubjectAccessReviews,
);

impl Strategy for SubjectAccessReviews {
    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(
            obj,
            validation::authorization::validate_subject_access_review,
        )
    }

    fn is_stored(&self) -> bool {
        false
    }

    fn handler(&self) -> Handler {
        Handler::AccessReview
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::DEFAULT
    }
}

pub struct LocalSubjectAccessReviews;

pub static LOCAL_SUBJECT_ACCESS_REVIEWS: Resource = review(
    "LocalSubjectAccessReview",
    "localsubjectaccessreviews",
    "localsubjectaccessreview",
    true,
    &LocalSubjectAccessReviews,
);

impl Strategy for LocalSubjectAccessReviews {
    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(
            obj,
            validation::authorization::validate_local_subject_access_review,
        )
    }

    fn is_stored(&self) -> bool {
        false
    }

    fn handler(&self) -> Handler {
        Handler::AccessReview
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::DEFAULT
    }
}
