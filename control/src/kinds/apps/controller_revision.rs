//! apps/v1 ControllerRevisions: immutable snapshots of a controller's
//! template (DaemonSet and StatefulSet history), validated as upstream's
//! strategy does; `data` never changes after create.

use crate::api::resource::{Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct ControllerRevisions;

pub static RESOURCE: Resource = Resource {
    ..resource(
        "apps",
        "v1",
        "ControllerRevision",
        "ControllerRevisionList",
        "controllerrevisions",
        "controllerrevision",
        true,
        &ControllerRevisions,
    )
};

impl Strategy for ControllerRevisions {
    fn validate_create(&self, obj: &serde_json::Value) -> Vec<Cause> {
        check(obj, validation::daemon_set::validate_controller_revision)
    }

    fn validate_update(&self, new: &serde_json::Value, old: &serde_json::Value) -> Vec<Cause> {
        check2(
            new,
            old,
            validation::daemon_set::validate_controller_revision_update,
        )
    }

    fn printer(&self) -> &'static Printer {
        &printers::daemon_sets::CONTROLLER_REVISION
    }
}
