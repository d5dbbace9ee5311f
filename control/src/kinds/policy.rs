//! policy/v1 PodDisruptionBudgets: generation follows the spec, a create
//! starts from a zero status (the disruption controller fills it in), the
//! spec stays mutable and the status is written through its subresource.

use serde_json::{Value, json};

use crate::api::resource::{Resource, Strategy, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

pub struct PodDisruptionBudgets;

pub static RESOURCE: Resource = Resource {
    short_names: &["pdb"],
    subresources: &[status("PodDisruptionBudget")],
    ..resource(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "PodDisruptionBudgetList",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
        &PodDisruptionBudgets,
    )
};

impl Strategy for PodDisruptionBudgets {
    fn tracks_generation(&self) -> bool {
        true
    }

    /// `PrepareForCreate`: the status is the zero `PodDisruptionBudgetStatus`.
    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({
            "currentHealthy": 0,
            "desiredHealthy": 0,
            "disruptionsAllowed": 0,
            "expectedPods": 0,
        });
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::policy::validate_pod_disruption_budget)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(
            new,
            old,
            validation::policy::validate_pod_disruption_budget_update,
        )
    }

    fn validate_subresource_update(
        &self,
        subresource: &str,
        new: &Value,
        old: &Value,
    ) -> Vec<Cause> {
        match subresource {
            "status" => check2(
                new,
                old,
                validation::policy::validate_pod_disruption_budget_status_update,
            ),
            _ => self.validate_update(new, old),
        }
    }

    fn printer(&self) -> &'static Printer {
        &printers::policy::POD_DISRUPTION_BUDGET
    }
}
