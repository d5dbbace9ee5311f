//! authorization.k8s.io/v1 reviews (`kubectl auth can-i`): questions to
//! the authorizer, answered in the response and never stored. The four
//! differ only in their names, scope and validation.

use serde_json::Value;

use crate::api::resource::{CREATE, Handler, Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check};

/// A review's rules: created only, answered by the authorizer, never
/// stored; `validate` is its kind's own validation.
pub struct Review {
    validate: fn(&Value) -> Vec<Cause>,
}

impl Strategy for Review {
    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        (self.validate)(obj)
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

/// A review's catalog entry.
const fn review(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    strategy: &'static Review,
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

pub static SELF_SUBJECT_ACCESS_REVIEWS: Resource = review(
    "SelfSubjectAccessReview",
    "selfsubjectaccessreviews",
    "selfsubjectaccessreview",
    false,
    &Review {
        validate: |obj| {
            check(
                obj,
                validation::authorization::validate_self_subject_access_review,
            )
        },
    },
);

pub static SELF_SUBJECT_RULES_REVIEWS: Resource = review(
    "SelfSubjectRulesReview",
    "selfsubjectrulesreviews",
    "selfsubjectrulesreview",
    false,
    &Review {
        validate: |_| Vec::new(),
    },
);

pub static SUBJECT_ACCESS_REVIEWS: Resource = review(
    "SubjectAccessReview",
    "subjectaccessreviews",
    "subjectaccessreview",
    false,
    &Review {
        validate: |obj| {
            check(
                obj,
                validation::authorization::validate_subject_access_review,
            )
        },
    },
);

pub static LOCAL_SUBJECT_ACCESS_REVIEWS: Resource = review(
    "LocalSubjectAccessReview",
    "localsubjectaccessreviews",
    "localsubjectaccessreview",
    true,
    &Review {
        validate: |obj| {
            check(
                obj,
                validation::authorization::validate_local_subject_access_review,
            )
        },
    },
);
