//! apps/v1 DaemonSets: generation follows the spec, the status starts
//! empty, and the template generation (`deprecated.daemonset.template.generation`,
//! the annotation apps/v1 carries the internal `spec.templateGeneration`
//! in) starts at 1 and grows with every template change.

use serde_json::{Map, Value, json};

use crate::api::resource::{PodSecurity, Resource, Strategy, resource, status};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, Cause, check, check2};

/// The annotation holding the template generation.
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

pub struct DaemonSets;

pub static RESOURCE: Resource = Resource {
    short_names: &["ds"],
    categories: &["all"],
    subresources: &[status("DaemonSet")],
    ..resource(
        "apps",
        "v1",
        "DaemonSet",
        "DaemonSetList",
        "daemonsets",
        "daemonset",
        true,
        &DaemonSets,
    )
};

fn template_generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(TEMPLATE_GENERATION))
        .and_then(Value::as_str)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

fn set_template_generation(obj: &mut Value, generation: i64) {
    let meta = &mut obj["metadata"];
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][TEMPLATE_GENERATION] = json!(generation.to_string());
}

impl Strategy for DaemonSets {
    fn pod_security(&self) -> PodSecurity {
        PodSecurity::Template("/spec/template")
    }

    fn default(&self, obj: &mut Map<String, Value>) {
        validation::daemon_set::default_daemon_set(obj);
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
        set_template_generation(obj, 1);
    }

    /// `PrepareForUpdate`: the template generation is the server's; a
    /// template change adds one.
    fn prepare_update(&self, new: &mut Value, old: &Value) {
        let mut generation = template_generation(old);
        if new.pointer("/spec/template") != old.pointer("/spec/template") {
            generation += 1;
        }
        set_template_generation(new, generation);
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::daemon_set::validate_daemon_set)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, validation::daemon_set::validate_daemon_set_update)
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
                validation::daemon_set::validate_daemon_set_status_update,
            ),
            _ => self.validate_update(new, old),
        }
    }

    fn printer(&self) -> &'static Printer {
        &printers::daemon_sets::DAEMON_SET
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_generation_starts_at_one_and_follows_the_template() {
        let mut ds = json!({"metadata": {"name": "a"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}});
        DaemonSets.prepare_create(&mut ds);
        assert_eq!(ds["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        let mut same = ds.clone();
        same["metadata"]["annotations"][TEMPLATE_GENERATION] = json!("7");
        same["spec"]["minReadySeconds"] = json!(3);
        DaemonSets.prepare_update(&mut same, &ds);
        assert_eq!(same["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        let mut changed = ds.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
        DaemonSets.prepare_update(&mut changed, &ds);
        assert_eq!(changed["metadata"]["annotations"][TEMPLATE_GENERATION], "2");
    }
}
