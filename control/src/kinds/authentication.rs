//! authentication.k8s.io/v1 SelfSubjectReviews (`kubectl auth whoami`)
//! and TokenReviews (a token checked for a kubelet or another component
//! that delegates authentication): answered, not stored.

use crate::api::resource::{CREATE, Handler, Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;

pub struct SelfSubjectReviews;

pub static RESOURCE: Resource = Resource {
    verbs: CREATE,
    ..resource(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "",
        "selfsubjectreviews",
        "selfsubjectreview",
        false,
        &SelfSubjectReviews,
    )
};

impl Strategy for SelfSubjectReviews {
    fn handler(&self) -> Handler {
        Handler::SelfSubjectReview
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::DEFAULT
    }
}

pub struct TokenReviews;

pub static TOKEN_REVIEWS: Resource = Resource {
    verbs: CREATE,
    ..resource(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "",
        "tokenreviews",
        "tokenreview",
        false,
        &TokenReviews,
    )
};

impl Strategy for TokenReviews {
    fn handler(&self) -> Handler {
        Handler::TokenReview
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::DEFAULT
    }
}
