//! authentication.k8s.io/v1 SelfSubjectReviews (`kubectl auth whoami`): answered, not stored.

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
