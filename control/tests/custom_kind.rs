//! A kind defined only here, with its own strategy, goes through the generic
//! registry on a real etcd, the table codec and field selection exactly as a
//! built-in kind does: the generic code asks the strategy and names no kind.

mod common;

use std::time::Duration;

use baton_control::api::fields::SelectableField;
use baton_control::api::resource::Strategy;
use baton_control::api::resource::{Resource, resource, status};
use baton_control::api::table::{Doc, NAME, Printer, col};
use baton_control::apiserver::codec::table::{TableOptions, to_table};
use baton_control::apiserver::selectors::FieldSelector;
use baton_control::registry::allocator::ServiceNetwork;
use baton_control::registry::{Registry, WriteContext};
use baton_control::storage::object::from_value;
use baton_control::storage::{StorageConfig, Store};
use baton_control::validation::{Cause, Path, field};
use serde_json::{Map, Value, json};

use common::Etcd;

/// Widgets: generation follows the spec, `spec.size` defaults to 1 and must
/// be positive, a create starts with an empty status, and `spec.color` is
/// selectable.
struct Widgets;

const FIELDS: &[SelectableField] = &[SelectableField::at("spec.color", "/spec/color")];

const PRINTER: Printer = Printer {
    columns: &[
        NAME,
        col("Color", "string", Doc::Text("The widget's color.")),
    ],
    print: |obj, _now| {
        vec![
            obj.pointer("/metadata/name").cloned().unwrap_or_default(),
            obj.pointer("/spec/color").cloned().unwrap_or_default(),
        ]
        .into()
    },
};

impl Strategy for Widgets {
    fn default(&self, obj: &mut Map<String, Value>) {
        let spec = obj.entry("spec").or_insert_with(|| json!({}));
        if spec.get("size").is_none() {
            spec["size"] = json!(1);
        }
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        let size = obj
            .pointer("/spec/size")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if size > 0 {
            Vec::new()
        } else {
            vec![field::invalid(
                &Path::new("spec").child("size"),
                size,
                "must be greater than 0",
            )]
        }
    }

    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<Cause> {
        self.validate_create(new)
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &PRINTER
    }
}

static WIDGETS: Resource = Resource {
    subresources: &[status("Widget")],
    ..resource(
        "example.baton.dev",
        "v1",
        "Widget",
        "WidgetList",
        "widgets",
        "widget",
        false,
        &Widgets,
    )
};

async fn registry(etcd: &Etcd) -> Registry {
    let store = Store::start(&StorageConfig {
        endpoints: vec![etcd.url()],
        request_timeout: Duration::from_secs(5),
        compaction_interval: Duration::ZERO,
        tls: Some(etcd.storage_tls()),
        ..StorageConfig::default()
    })
    .await
    .expect("storage starts");
    Registry {
        store,
        network: ServiceNetwork::parse("10.96.0.0/12", "30000-32767").expect("service network"),
        service_account_admission: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_defined_outside_the_catalog_uses_the_generic_registry() {
    let etcd = Etcd::start();
    let registry = registry(&etcd).await;
    let write = WriteContext::update("test", None, false);

    // Create: defaults, status reset, generation 1, stored in etcd.
    let created = registry
        .create(
            &WIDGETS,
            "",
            json!({"metadata": {"name": "w1"}, "spec": {"color": "red"}, "status": {"ready": true}}),
            &write,
        )
        .await
        .expect("widget created");
    assert_eq!(created["spec"]["size"], 1);
    assert_eq!(created["status"], json!({}));
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["kind"], "Widget");
    assert_eq!(created["apiVersion"], "example.baton.dev/v1");
    assert!(
        etcd.read("/registry/example.baton.dev/widgets/w1")
            .await
            .is_some(),
        "stored under the kind's key"
    );

    // Validation: the strategy's causes come back as a 422 Invalid.
    let err = registry
        .create(
            &WIDGETS,
            "",
            json!({"metadata": {"name": "w2"}, "spec": {"size": -3}}),
            &write,
        )
        .await
        .expect_err("a negative size is refused");
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "Widget.example.baton.dev \"w2\" is invalid: spec.size: Invalid value: -3: must be greater than 0"
    );

    // A main-resource update changes the spec, bumps the generation and
    // keeps the status.
    let (updated, _) = registry
        .update(&WIDGETS, "", "w1", &write, |cur| {
            let mut next = cur.expect("exists").clone();
            next["spec"]["color"] = json!("blue");
            next["status"] = json!({"ready": true});
            Ok(next)
        })
        .await
        .expect("spec update");
    assert_eq!(updated["spec"]["color"], "blue");
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(updated["status"], json!({}));

    // A status write changes the status only.
    let status_write = WriteContext::update("test", Some("status"), false);
    let (after_status, _) = registry
        .update(&WIDGETS, "", "w1", &status_write, |cur| {
            let mut next = cur.expect("exists").clone();
            next["spec"]["color"] = json!("green");
            next["status"] = json!({"ready": true});
            Ok(next)
        })
        .await
        .expect("status update");
    assert_eq!(after_status["status"]["ready"], true);
    assert_eq!(after_status["spec"]["color"], "blue");
    assert_eq!(after_status["metadata"]["generation"], 2);
    let read = registry.get(&WIDGETS, "", "w1").await.expect("get");
    assert_eq!(read["status"]["ready"], true);

    // The table prints the kind's own columns.
    let table = to_table(
        &WIDGETS,
        &[&read],
        &TableOptions::new(jiff::Timestamp::now()),
    );
    assert_eq!(table["columnDefinitions"][1]["name"], "Color");
    assert_eq!(table["rows"][0]["cells"], json!(["w1", "blue"]));

    // Field selectors accept the kind's selectable fields, and only those.
    let cached = from_value("/registry/example.baton.dev/widgets/w1", read, 1, FIELDS);
    let allowed: Vec<&str> = WIDGETS
        .strategy
        .selectable_fields()
        .iter()
        .map(|f| f.name)
        .collect();
    let blue = FieldSelector::parse("spec.color=blue", &allowed).expect("selectable");
    let red = FieldSelector::parse("spec.color=red", &allowed).expect("selectable");
    assert!(blue.matches(&cached) && !red.matches(&cached));
    assert!(FieldSelector::parse("spec.size=1", &allowed).is_err());
}
