//! DaemonSets and ControllerRevisions (`printDaemonSet`,
//! `printControllerRevision` in kube-apiserver's printers.go).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::format::{age, container_cells, format_label_selector, format_labels, int_at, str_at};
use crate::api::table::{AGE, Doc, NAME, Printed, Printer, col, wide};

const STATUS: &str = "io.k8s.api.apps.v1.DaemonSetStatus";

pub const DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Desired",
            "integer",
            Doc::Field(STATUS, "desiredNumberScheduled"),
        ),
        col(
            "Current",
            "integer",
            Doc::Field(STATUS, "currentNumberScheduled"),
        ),
        col("Ready", "integer", Doc::Field(STATUS, "numberReady")),
        col(
            "Up-to-date",
            "integer",
            Doc::Field(STATUS, "updatedNumberScheduled"),
        ),
        col(
            "Available",
            "integer",
            Doc::Field(STATUS, "numberAvailable"),
        ),
        col(
            "Node Selector",
            "string",
            Doc::Field("io.k8s.api.core.v1.PodSpec", "nodeSelector"),
        ),
        AGE,
        wide(
            "Containers",
            "string",
            Doc::Text("Names of each container in the template."),
        ),
        wide(
            "Images",
            "string",
            Doc::Text("Images referenced by each container in the template."),
        ),
        wide(
            "Selector",
            "string",
            Doc::Field("io.k8s.api.apps.v1.DaemonSetSpec", "selector"),
        ),
    ],
    print: print_daemon_set,
};

fn print_daemon_set(ds: &Value, now: Timestamp) -> Printed {
    let count = |field: &str| int_at(ds, &format!("/status/{field}")).unwrap_or(0);
    let (names, images) =
        container_cells(ds.pointer("/spec/template/spec").unwrap_or(&Value::Null));
    vec![
        json!(str_at(ds, "/metadata/name")),
        json!(count("desiredNumberScheduled")),
        json!(count("currentNumberScheduled")),
        json!(count("numberReady")),
        json!(count("updatedNumberScheduled")),
        json!(count("numberAvailable")),
        json!(format_labels(
            ds.pointer("/spec/template/spec/nodeSelector")
        )),
        json!(age(now, ds)),
        json!(names),
        json!(images),
        json!(format_label_selector(ds.pointer("/spec/selector"))),
    ]
    .into()
}

pub const CONTROLLER_REVISION: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Controller",
            "string",
            Doc::Text("Controller of the object"),
        ),
        col(
            "Revision",
            "string",
            Doc::Field("io.k8s.api.apps.v1.ControllerRevision", "revision"),
        ),
        AGE,
    ],
    print: print_controller_revision,
};

/// The controller as `formatResourceName` writes it with its kind:
/// `daemonset.apps/name`; `<none>` without one.
fn controller_cell(obj: &Value) -> String {
    let owner = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|o| o.get("controller") == Some(&Value::Bool(true)));
    let Some(o) = owner else {
        return "<none>".into();
    };
    let api_version = str_at(o, "/apiVersion");
    let group = api_version
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    let kind = str_at(o, "/kind");
    let group_kind = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    if group_kind.is_empty() {
        return str_at(o, "/name").to_string();
    }
    format!("{}/{}", group_kind.to_lowercase(), str_at(o, "/name"))
}

fn print_controller_revision(cr: &Value, now: Timestamp) -> Printed {
    vec![
        json!(str_at(cr, "/metadata/name")),
        json!(controller_cell(cr)),
        json!(int_at(cr, "/revision").unwrap_or(0)),
        json!(age(now, cr)),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_set_cells() {
        let ds = json!({
            "metadata": {"name": "agent", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "a", "image": "agent:1"}]}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}
        });
        let now: Timestamp = "2024-01-01T00:05:00Z".parse().unwrap();
        let cells = print_daemon_set(&ds, now).cells;
        assert_eq!(
            cells,
            vec![
                json!("agent"),
                json!(2),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("disk=ssd"),
                json!("5m"),
                json!("a"),
                json!("agent:1"),
                json!("app=agent"),
            ]
        );
    }

    #[test]
    fn controller_revision_cells() {
        let cr = json!({
            "metadata": {"name": "agent-5d8f", "creationTimestamp": "2024-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u", "controller": true}]},
            "revision": 3
        });
        let now: Timestamp = "2024-01-01T00:00:30Z".parse().unwrap();
        let cells = print_controller_revision(&cr, now).cells;
        assert_eq!(
            cells,
            vec![
                json!("agent-5d8f"),
                json!("daemonset.apps/agent"),
                json!(3),
                json!("30s")
            ]
        );
        assert_eq!(controller_cell(&json!({"metadata": {}})), "<none>");
    }
}
