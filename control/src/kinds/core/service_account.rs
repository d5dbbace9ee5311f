//! core/v1 ServiceAccounts.

use serde_json::Value;

use crate::api::resource::{CREATE, Resource, Strategy, Subresource, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct ServiceAccounts;

pub static RESOURCE: Resource = Resource {
    short_names: &["sa"],
    subresources: &[Subresource {
        name: "token",
        kind: "TokenRequest",
        group: "authentication.k8s.io",
        version: "v1",
        verbs: CREATE,
    }],
    ..resource(
        "",
        "v1",
        "ServiceAccount",
        "ServiceAccountList",
        "serviceaccounts",
        "serviceaccount",
        true,
        &ServiceAccounts,
    )
};

impl Strategy for ServiceAccounts {
    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::config::validate_service_account)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(
            new,
            old,
            validation::config::validate_service_account_update,
        )
    }

    fn printer(&self) -> &'static Printer {
        &printers::storage::SERVICE_ACCOUNT
    }
}
