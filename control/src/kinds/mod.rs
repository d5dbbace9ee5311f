//! The kinds the API server serves, one module each (grouped by API group),
//! each declaring its catalog entry ([`Resource`]) and its [`Strategy`]:
//! defaults, validation, what create and update reset, selectable fields,
//! table printer. [`RESOURCES`] lists them; adding a built-in kind is one
//! new module and one line there (docs/adding-a-kind.md).
//!
//! [`Strategy`]: crate::api::resource::Strategy

pub mod apps;
pub mod authentication;
pub mod authorization;
pub mod batch;
pub mod certificates;
pub mod coordination;
pub mod core;
pub mod discovery;
pub mod events;
pub mod policy;
pub mod printers;
pub mod rbac;
pub mod scheduling;

use crate::api::resource::Resource;

/// Every resource served, in discovery order per group-version.
pub static RESOURCES: &[&Resource] = &[
    &core::namespace::RESOURCE,
    &core::pod::RESOURCE,
    &core::binding::RESOURCE,
    &core::service::RESOURCE,
    &core::endpoints::RESOURCE,
    &core::node::RESOURCE,
    &core::config_map::RESOURCE,
    &core::secret::RESOURCE,
    &core::service_account::RESOURCE,
    &core::event::RESOURCE,
    &core::persistent_volume::RESOURCE,
    &core::persistent_volume_claim::RESOURCE,
    &apps::deployment::RESOURCE,
    &apps::replica_set::RESOURCE,
    &batch::job::RESOURCE,
    &batch::cron_job::RESOURCE,
    &apps::daemon_set::RESOURCE,
    &apps::controller_revision::RESOURCE,
    &discovery::RESOURCE,
    &coordination::RESOURCE,
    &events::RESOURCE,
    &authentication::RESOURCE,
    &authentication::TOKEN_REVIEWS,
    &authorization::SELF_SUBJECT_ACCESS_REVIEWS,
    &authorization::SELF_SUBJECT_RULES_REVIEWS,
    &authorization::SUBJECT_ACCESS_REVIEWS,
    &authorization::LOCAL_SUBJECT_ACCESS_REVIEWS,
    &certificates::RESOURCE,
    &policy::RESOURCE,
    &rbac::ROLES,
    &rbac::ROLE_BINDINGS,
    &rbac::CLUSTER_ROLES,
    &rbac::CLUSTER_ROLE_BINDINGS,
    &scheduling::RESOURCE,
];

/// Looks a resource up by group, version and plural as they appear in a URL.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by group, version and kind.
pub fn find_kind(group: &str, version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Group-versions served, in discovery order (core `v1` first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests;
