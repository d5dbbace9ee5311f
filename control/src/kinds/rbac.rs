//! rbac.authorization.k8s.io/v1 Roles, ClusterRoles and their bindings: a
//! PUT may create them (the bootstrap policy is reconciled that way).

use serde_json::{Map, Value};

use crate::api::resource::{Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct Roles;

pub static ROLES: Resource = resource(
    "rbac.authorization.k8s.io",
    "v1",
    "Role",
    "RoleList",
    "roles",
    "role",
    true,
    &Roles,
);

impl Strategy for Roles {
    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::rbac::validate_role)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::rbac::validate_role_update)
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::DEFAULT
    }
}

pub struct RoleBindings;

pub static ROLE_BINDINGS: Resource = resource(
    "rbac.authorization.k8s.io",
    "v1",
    "RoleBinding",
    "RoleBindingList",
    "rolebindings",
    "rolebinding",
    true,
    &RoleBindings,
);

impl Strategy for RoleBindings {
    fn default(&self, obj: &mut Map<String, Value>) {
        validation::rbac::default_binding(obj);
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::rbac::validate_role_binding)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::rbac::validate_role_binding_update)
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::ROLE_BINDING
    }
}

pub struct ClusterRoles;

pub static CLUSTER_ROLES: Resource = resource(
    "rbac.authorization.k8s.io",
    "v1",
    "ClusterRole",
    "ClusterRoleList",
    "clusterroles",
    "clusterrole",
    false,
    &ClusterRoles,
);

impl Strategy for ClusterRoles {
    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::rbac::validate_cluster_role)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::rbac::validate_cluster_role_update)
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::DEFAULT
    }
}

pub struct ClusterRoleBindings;

pub static CLUSTER_ROLE_BINDINGS: Resource = resource(
    "rbac.authorization.k8s.io",
    "v1",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "clusterrolebindings",
    "clusterrolebinding",
    false,
    &ClusterRoleBindings,
);

impl Strategy for ClusterRoleBindings {
    fn default(&self, obj: &mut Map<String, Value>) {
        validation::rbac::default_binding(obj);
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::rbac::validate_cluster_role_binding)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(
            new,
            old,
            validation::rbac::validate_cluster_role_binding_update,
        )
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::CLUSTER_ROLE_BINDING
    }
}
