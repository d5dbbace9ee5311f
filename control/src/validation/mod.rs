//! kube-apiserver's defaulting, admission mutations and validation for every
//! served kind, as pure functions on the wire form (`serde_json::Value`).
//!
//! The API server's write paths call, in upstream's order:
//! - create: [`default_object`] → (name generation) → [`admit_create`] →
//!   (for a Pod, the ServiceAccount plugin's token mount,
//!   [`service_account`], with the account the registry looks up) →
//!   allocation of Service IPs and ports → [`validate_create`];
//! - update (PUT/PATCH): [`default_object`] → [`metadata::carry_over_for_update`]
//!   → [`validate_update`];
//! - status subresource: [`default_object`] → [`validate_status_update`].
//!
//! A non-empty list of [`Cause`]s is answered with [`invalid_status`] (422).

pub mod field;
pub mod metadata;
pub mod names;
pub mod selector;

mod apps;
mod authorization;
mod cluster;
mod config;
mod container;
mod coordination;
mod discovery;
mod event;
mod json;
mod pod;
mod pod_defaults;
mod pod_spec;
mod pod_status;
mod policy;
mod rbac;
mod resources;
mod scheduling;
mod service;
pub mod service_account;
mod service_validation;
mod storage;
mod volume;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use field::{BadValue, Cause, CauseType, Path, invalid_message, invalid_status};
pub use pod_defaults::{AdmissionError, PriorityClassInfo, system_priority_class};
pub use policy::validate_delete_options;
pub use service::normalize_cluster_ips;

/// Decodes the wire object into its typed form; a value of the wrong JSON
/// type is reported as a `FieldValueTypeInvalid` cause on the object.
fn decode<T: DeserializeOwned>(obj: &Value) -> Result<T, Vec<Cause>> {
    T::deserialize(obj).map_err(|e| {
        vec![field::type_invalid(
            &Path::new(""),
            BadValue::Omit,
            &e.to_string(),
        )]
    })
}

/// Runs `check` on the decoded object.
fn check<T: DeserializeOwned>(obj: &Value, check: impl FnOnce(&T) -> Vec<Cause>) -> Vec<Cause> {
    match decode::<T>(obj) {
        Ok(t) => check(&t),
        Err(e) => e,
    }
}

/// Runs `check` on the decoded new and old objects.
fn check2<T: DeserializeOwned>(
    new: &Value,
    old: &Value,
    check: impl FnOnce(&T, &T) -> Vec<Cause>,
) -> Vec<Cause> {
    match (decode::<T>(new), decode::<T>(old)) {
        (Ok(n), Ok(o)) => check(&n, &o),
        (Err(e), _) | (_, Err(e)) => e,
    }
}

/// Applies the defaults kube-apiserver sets on decode (pkg/apis/*/v1
/// defaults, mirrored v1 fields, canonical quantities). Idempotent; run it on
/// every object a client sends, before validation.
pub fn default_object(group: &str, version: &str, kind: &str, obj: &mut Value) {
    let _ = version;
    let Some(o) = obj.as_object_mut() else { return };
    match (group, kind) {
        ("", "Pod") => pod_defaults::default_pod(o),
        ("", "Service") => service::default_service(o),
        ("", "Endpoints") => discovery::default_endpoints(o),
        ("", "Namespace") => cluster::default_namespace(o),
        ("", "Node") => cluster::default_node(o),
        ("", "Secret") => config::default_secret(o),
        ("", "PersistentVolume") => storage::default_pv(o),
        ("", "PersistentVolumeClaim") => storage::default_pvc(o),
        ("apps", "Deployment") => apps::default_deployment(o),
        ("apps", "ReplicaSet") => apps::default_replica_set(o),
        ("discovery.k8s.io", "EndpointSlice") => discovery::default_endpoint_slice(o),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            rbac::default_binding(o)
        }
        ("scheduling.k8s.io", "PriorityClass") => scheduling::default_priority_class(o),
        _ => {}
    }
}

/// Create-only mutations: the strategies' `PrepareForCreate` (a Pod's fresh
/// status with phase `Pending` and its QoS class, a Namespace's `kubernetes`
/// finalizer) and kube-apiserver's default admission plugins
/// (ServiceAccount, DefaultTolerationSeconds, Priority on Pods).
/// `priority_class` is the PriorityClass named by a Pod's
/// `spec.priorityClassName` (or the global default class), looked up by the
/// caller; an error is answered 403 Forbidden.
pub fn admit_create(
    group: &str,
    kind: &str,
    obj: &mut Value,
    priority_class: Option<&PriorityClassInfo>,
) -> Result<(), AdmissionError> {
    match (group, kind) {
        ("", "Pod") => {
            if let Some(o) = obj.as_object_mut() {
                pod_status::prepare_pod_create(o);
            }
            pod_defaults::admit_pod_create(obj, priority_class)
        }
        ("", "Namespace") => {
            if let Some(o) = obj.as_object_mut() {
                cluster::prepare_namespace_create(o);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Validation of a new object (`strategy.Validate`), including the generic
/// name check every object gets.
pub fn validate_create(group: &str, version: &str, kind: &str, obj: &Value) -> Vec<Cause> {
    let _ = version;
    let errs = match (group, kind) {
        ("", "Pod") => check(obj, pod::validate_pod_create),
        ("", "Binding") => check(obj, pod::validate_binding),
        ("", "Service") => check(obj, service_validation::validate_service),
        ("", "Endpoints") => check(obj, discovery::validate_endpoints),
        ("", "Namespace") => check(obj, cluster::validate_namespace),
        ("", "Node") => check(obj, cluster::validate_node),
        ("", "ConfigMap") => check(obj, config::validate_config_map),
        ("", "Secret") => check(obj, config::validate_secret),
        ("", "ServiceAccount") => check(obj, config::validate_service_account),
        ("", "Event") => check(obj, event::validate_core_event),
        ("", "PersistentVolume") => check(obj, storage::validate_pv),
        ("", "PersistentVolumeClaim") => check(obj, storage::validate_pvc),
        ("apps", "Deployment") => check(obj, apps::validate_deployment),
        ("apps", "ReplicaSet") => check(obj, apps::validate_replica_set),
        ("autoscaling", "Scale") => check(obj, apps::validate_scale),
        ("discovery.k8s.io", "EndpointSlice") => check(obj, discovery::validate_endpoint_slice),
        ("coordination.k8s.io", "Lease") => check(obj, coordination::validate_lease),
        ("events.k8s.io", "Event") => check(obj, event::validate_events_event),
        ("rbac.authorization.k8s.io", "Role") => check(obj, rbac::validate_role),
        ("rbac.authorization.k8s.io", "ClusterRole") => check(obj, rbac::validate_cluster_role),
        ("rbac.authorization.k8s.io", "RoleBinding") => check(obj, rbac::validate_role_binding),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            check(obj, rbac::validate_cluster_role_binding)
        }
        ("scheduling.k8s.io", "PriorityClass") => check(obj, scheduling::validate_priority_class),
        ("policy", "Eviction") => check(obj, policy::validate_eviction),
        ("authorization.k8s.io", "SelfSubjectAccessReview") => {
            check(obj, authorization::validate_self_subject_access_review)
        }
        ("authorization.k8s.io", "SubjectAccessReview") => {
            check(obj, authorization::validate_subject_access_review)
        }
        ("authorization.k8s.io", "LocalSubjectAccessReview") => {
            check(obj, authorization::validate_local_subject_access_review)
        }
        _ => Vec::new(),
    };
    with_generic_name_check(obj, kind, errs)
}

/// The generic registry's final check (`BeforeCreate`): once the kind's
/// own validation passed, every name must be a valid path segment.
fn with_generic_name_check(obj: &Value, kind: &str, errs: Vec<Cause>) -> Vec<Cause> {
    if !errs.is_empty()
        || matches!(
            kind,
            "Binding"
                | "Eviction"
                | "Scale"
                | "SelfSubjectAccessReview"
                | "SelfSubjectRulesReview"
                | "SubjectAccessReview"
                | "LocalSubjectAccessReview"
        )
    {
        return errs;
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    names::is_valid_path_segment_name(name)
        .into_iter()
        .map(|m| field::invalid(&Path::new("metadata").child("name"), name, &m))
        .collect()
}

/// Validation of an update of the main resource (`strategy.ValidateUpdate`).
pub fn validate_update(
    group: &str,
    version: &str,
    kind: &str,
    new: &Value,
    old: &Value,
) -> Vec<Cause> {
    let _ = version;
    match (group, kind) {
        ("", "Pod") => check2(new, old, |n, o| pod::validate_pod_update(n, o, new, old)),
        ("", "Service") => check2(new, old, service_validation::validate_service_update),
        ("", "Endpoints") => check2(new, old, discovery::validate_endpoints_update),
        ("", "Namespace") => check2(new, old, cluster::validate_namespace_update),
        ("", "Node") => check2(new, old, |n, o| {
            cluster::validate_node_update(n, o, new, old)
        }),
        ("", "ConfigMap") => check2(new, old, config::validate_config_map_update),
        ("", "Secret") => check2(new, old, config::validate_secret_update),
        ("", "ServiceAccount") => check2(new, old, config::validate_service_account_update),
        ("", "Event") => check2(new, old, event::validate_core_event_update),
        ("", "PersistentVolume") => {
            check2(new, old, |n, o| storage::validate_pv_update(n, o, new, old))
        }
        ("", "PersistentVolumeClaim") => check2(new, old, |n, o| {
            storage::validate_pvc_update(n, o, new, old)
        }),
        ("apps", "Deployment") => check2(new, old, apps::validate_deployment_update),
        ("apps", "ReplicaSet") => check2(new, old, apps::validate_replica_set_update),
        ("autoscaling", "Scale") => check(new, apps::validate_scale),
        ("discovery.k8s.io", "EndpointSlice") => {
            check2(new, old, discovery::validate_endpoint_slice_update)
        }
        ("coordination.k8s.io", "Lease") => check2(new, old, coordination::validate_lease_update),
        ("events.k8s.io", "Event") => check2(new, old, event::validate_events_event_update),
        ("rbac.authorization.k8s.io", "Role") => check2(new, old, rbac::validate_role_update),
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            check2(new, old, rbac::validate_cluster_role_update)
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            check2(new, old, rbac::validate_role_binding_update)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            check2(new, old, rbac::validate_cluster_role_binding_update)
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            check2(new, old, scheduling::validate_priority_class_update)
        }
        _ => Vec::new(),
    }
}

/// Validation of a write to the `/status` subresource
/// (`statusStrategy.ValidateUpdate`).
pub fn validate_status_update(
    group: &str,
    version: &str,
    kind: &str,
    new: &Value,
    old: &Value,
) -> Vec<Cause> {
    let _ = version;
    match (group, kind) {
        ("", "Pod") => check2(new, old, pod::validate_pod_status_update),
        ("", "Service") => check2(new, old, service_validation::validate_service_status_update),
        ("", "Namespace") => check2(new, old, cluster::validate_namespace_status_update),
        ("", "Node") => check2(new, old, |n, o| {
            cluster::validate_node_update(n, o, new, old)
        }),
        ("", "PersistentVolume") => check2(new, old, storage::validate_pv_status_update),
        ("", "PersistentVolumeClaim") => check2(new, old, storage::validate_pvc_status_update),
        ("apps", "Deployment") => check2(new, old, apps::validate_deployment_status_update),
        ("apps", "ReplicaSet") => check2(new, old, apps::validate_replica_set_status_update),
        _ => validate_update(group, version, kind, new, old),
    }
}

/// Validation of a write to a Pod's `/ephemeralcontainers` subresource
/// (`podEphemeralContainersStrategy.ValidateUpdate`).
pub fn validate_ephemeral_containers_update(new: &Value, old: &Value) -> Vec<Cause> {
    check2(new, old, pod::validate_pod_ephemeral_containers_update)
}

/// Validation of a write to a Namespace's `/finalize` subresource
/// (`ValidateNamespaceFinalizeUpdate`).
pub fn validate_namespace_finalize(new: &Value, old: &Value) -> Vec<Cause> {
    check2(new, old, cluster::validate_namespace_finalize_update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seeds_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx-deployment", "namespace": "default", "labels": {"app": "nginx"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    }

    // The seeds' Deployment and Service pass, as with kube-apiserver.
    #[test]
    fn seeds_manifests_are_accepted() {
        let mut d = seeds_deployment();
        default_object("apps", "v1", "Deployment", &mut d);
        assert!(validate_create("apps", "v1", "Deployment", &d).is_empty());

        let mut s = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
            "spec": {"type": "NodePort", "selector": {"app": "nginx"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]}
        });
        default_object("", "v1", "Service", &mut s);
        normalize_cluster_ips(&mut s, None);
        // What the allocator fills in before validation.
        s["spec"]["clusterIP"] = json!("10.96.0.20");
        s["spec"]["clusterIPs"] = json!(["10.96.0.20"]);
        s["spec"]["ports"][0]["nodePort"] = json!(30080);
        assert!(
            validate_create("", "v1", "Service", &s).is_empty(),
            "{:?}",
            validate_create("", "v1", "Service", &s)
        );
    }

    // A Pod made from the template, as the ReplicaSet controller posts it.
    #[test]
    fn pod_from_template_is_admitted() {
        let d = seeds_deployment();
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "nginx-deployment-abc-xyz", "namespace": "default", "labels": {"app": "nginx"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "nginx-deployment-abc", "uid": "u", "controller": true, "blockOwnerDeletion": true}]},
            "spec": d["spec"]["template"]["spec"].clone()
        });
        default_object("", "v1", "Pod", &mut pod);
        admit_create("", "Pod", &mut pod, None).unwrap();
        assert!(
            validate_create("", "v1", "Pod", &pod).is_empty(),
            "{:?}",
            validate_create("", "v1", "Pod", &pod)
        );
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
    }

    // Defaulting twice changes nothing (it runs on every write).
    #[test]
    fn defaulting_is_idempotent() {
        for (g, k, mut obj) in [
            ("apps", "Deployment", seeds_deployment()),
            (
                "",
                "Service",
                json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "sessionAffinity": "ClientIP"}}),
            ),
            ("", "Secret", json!({"stringData": {"a": "b"}})),
            ("", "Namespace", json!({"metadata": {"name": "x"}})),
        ] {
            default_object(g, "v1", k, &mut obj);
            let once = obj.clone();
            default_object(g, "v1", k, &mut obj);
            assert_eq!(once, obj, "{k}");
        }
    }

    // The messages the bad-input tests look for.
    #[test]
    fn bad_input_messages() {
        let mut d = seeds_deployment();
        d["metadata"]["name"] = json!("Nginx_Deployment");
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
        default_object("apps", "v1", "Deployment", &mut d);
        let causes = validate_create("apps", "v1", "Deployment", &d);
        assert_eq!(
            invalid_message("apps", "Deployment", "Nginx_Deployment", &causes),
            "Deployment.apps \"Nginx_Deployment\" is invalid: [metadata.name: Invalid value: \"Nginx_Deployment\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), spec.template.spec.containers[0].image: Required value]"
        );
        let status = invalid_status("apps", "Deployment", "Nginx_Deployment", &causes);
        assert_eq!(
            status["details"]["causes"][1]["reason"],
            "FieldValueRequired"
        );
        assert_eq!(
            status["details"]["causes"][1]["field"],
            "spec.template.spec.containers[0].image"
        );
    }

    // A value of the wrong JSON type is reported, not panicked on.
    #[test]
    fn wrong_types_are_causes() {
        let causes = validate_create("", "v1", "ConfigMap", &json!({"metadata": {"name": 5}}));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].reason, CauseType::TypeInvalid);
    }

    // The generic registry's path-segment check on names of kinds whose own
    // rule is looser (core/v1 Events).
    #[test]
    fn generic_name_check() {
        let e = json!({"metadata": {"name": "a/b", "namespace": "default"}, "involvedObject": {"namespace": "default"}});
        let causes = validate_create("", "v1", "Event", &e);
        assert_eq!(
            causes[0].error_string(),
            "metadata.name: Invalid value: \"a/b\": may not contain '/'"
        );
    }
}
