//! coordination.k8s.io/v1 Leases: a PUT may create them (leader election
//! and node heartbeats write them whether or not they exist).

use serde_json::Value;

use crate::api::resource::{Resource, Strategy, resource};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct Leases;

pub static RESOURCE: Resource = resource(
    "coordination.k8s.io",
    "v1",
    "Lease",
    "LeaseList",
    "leases",
    "lease",
    true,
    &Leases,
);

impl Strategy for Leases {
    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::coordination::validate_lease)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::coordination::validate_lease_update)
    }

    fn printer(&self) -> &'static Printer {
        &printers::cluster::LEASE
    }
}
