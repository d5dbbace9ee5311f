//! policy/v1 PodDisruptionBudgets (`printPodDisruptionBudget` in
//! kube-apiserver's printers.go).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::format::{age, int_at, str_at};
use crate::api::table::{AGE, Doc, NAME, Printed, Printer, col};

pub const POD_DISRUPTION_BUDGET: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Min Available",
            "string",
            Doc::Text("The minimum number of pods that must be available."),
        ),
        col(
            "Max Unavailable",
            "string",
            Doc::Text("The maximum number of pods that may be unavailable."),
        ),
        col(
            "Allowed Disruptions",
            "integer",
            Doc::Text("Calculated number of pods that may be disrupted at this time."),
        ),
        AGE,
    ],
    print: print_pod_disruption_budget,
};

/// An `intstr.IntOrString`'s `String()`, `N/A` when unset.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    }
}

fn print_pod_disruption_budget(pdb: &Value, now: Timestamp) -> Printed {
    vec![
        json!(str_at(pdb, "/metadata/name")),
        json!(int_or_string(pdb.pointer("/spec/minAvailable"))),
        json!(int_or_string(pdb.pointer("/spec/maxUnavailable"))),
        json!(int_at(pdb, "/status/disruptionsAllowed").unwrap_or(0)),
        json!(age(now, pdb)),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let pdb = json!({"metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            print_pod_disruption_budget(&pdb, now).cells,
            vec![
                json!("web"),
                json!("2"),
                json!("N/A"),
                json!(1),
                json!("10m")
            ]
        );
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"maxUnavailable": "25%"}});
        let cells = print_pod_disruption_budget(&pdb, now).cells;
        assert_eq!(cells[1..4], [json!("N/A"), json!("25%"), json!(0)]);
    }
}
