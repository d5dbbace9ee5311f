//! core/v1 Pods: `Pending` and their QoS class on create, the default
//! admission plugins (ServiceAccount, DefaultTolerationSeconds, Priority),
//! status and ephemeral-container writes validated apart, graceful
//! deletion, and the fields `kubectl` and the kubelet select by.

use serde_json::{Map, Value, json};

use crate::api::fields::SelectableField;
use crate::api::resource::{
    CREATE, Deletion, GET, GET_PATCH_UPDATE, PodSecurity, Resource, Strategy, Subresource,
    resource, status,
};
use crate::api::table::Printer;
use crate::kinds::printers;
use crate::validation::{self, AdmissionError, Cause, PriorityClassInfo, check, check2};

pub struct Pods;

pub static RESOURCE: Resource = Resource {
    short_names: &["po"],
    categories: &["all"],
    subresources: &[
        status("Pod"),
        Subresource {
            name: "binding",
            kind: "Binding",
            group: "",
            version: "",
            verbs: CREATE,
        },
        Subresource {
            name: "ephemeralcontainers",
            kind: "Pod",
            group: "",
            version: "",
            verbs: GET_PATCH_UPDATE,
        },
        Subresource {
            name: "eviction",
            kind: "Eviction",
            group: "policy",
            version: "v1",
            verbs: CREATE,
        },
        Subresource {
            name: "log",
            kind: "Pod",
            group: "",
            version: "",
            verbs: GET,
        },
        Subresource {
            name: "exec",
            kind: "PodExecOptions",
            group: "",
            version: "",
            verbs: &["create", "get"],
        },
        Subresource {
            name: "attach",
            kind: "PodAttachOptions",
            group: "",
            version: "",
            verbs: &["create", "get"],
        },
        Subresource {
            name: "portforward",
            kind: "PodPortForwardOptions",
            group: "",
            version: "",
            verbs: &["create", "get"],
        },
    ],
    ..resource("", "v1", "Pod", "PodList", "pods", "pod", true, &Pods)
};

/// Fields a field selector may name.
const FIELDS: &[SelectableField] = &[
    SelectableField::at("spec.nodeName", "/spec/nodeName"),
    SelectableField::at("spec.restartPolicy", "/spec/restartPolicy"),
    SelectableField::at("spec.schedulerName", "/spec/schedulerName"),
    SelectableField::at("spec.serviceAccountName", "/spec/serviceAccountName"),
    SelectableField::flag("spec.hostNetwork", "/spec/hostNetwork"),
    SelectableField::at("status.phase", "/status/phase"),
    SelectableField::at("status.podIP", "/status/podIP"),
    SelectableField::at("status.nominatedNodeName", "/status/nominatedNodeName"),
];

impl Strategy for Pods {
    fn pod_security(&self) -> PodSecurity {
        PodSecurity::Pod
    }

    fn default(&self, obj: &mut Map<String, Value>) {
        validation::pod_defaults::default_pod(obj);
    }

    fn prepare_create(&self, obj: &mut Value) {
        let qos = qos_class(obj);
        obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    }

    fn admit_create(
        &self,
        obj: &mut Value,
        priority_class: Option<&PriorityClassInfo>,
    ) -> Result<(), AdmissionError> {
        if let Some(o) = obj.as_object_mut() {
            validation::pod_status::prepare_pod_create(o);
        }
        validation::pod_defaults::admit_pod_create(obj, priority_class)
    }

    fn runs_pod_admission(&self) -> bool {
        true
    }

    fn validate_create(&self, obj: &Value) -> Vec<Cause> {
        check(obj, validation::pod::validate_pod_create)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        check2(new, old, |n, o| {
            validation::pod::validate_pod_update(n, o, new, old)
        })
    }

    fn validate_subresource_update(
        &self,
        subresource: &str,
        new: &Value,
        old: &Value,
    ) -> Vec<Cause> {
        match subresource {
            "status" => check2(new, old, validation::pod::validate_pod_status_update),
            "ephemeralcontainers" => check2(
                new,
                old,
                validation::pod::validate_pod_ephemeral_containers_update,
            ),
            _ => self.validate_update(new, old),
        }
    }

    fn deletion(&self) -> Deletion {
        Deletion::Graceful
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printers::workloads::POD
    }
}

/// Pod QoS class from its containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        let relevant = |m: Option<&serde_json::Map<String, Value>>| {
            m.map(|m| m.keys().any(|k| k == "cpu" || k == "memory"))
                .unwrap_or(false)
        };
        if relevant(req) || relevant(lim) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(res));
            let r = req.and_then(|m| m.get(res)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        let be = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(qos_class(&be), "BestEffort");
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }
}
