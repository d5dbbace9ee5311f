//! Admission of written objects: the kind's defaulting, create-time
//! admission (ServiceAccount, DefaultTolerationSeconds, Priority) and
//! validation, asked of its strategy and turned into kube-apiserver's
//! Statuses (422 Invalid with field causes, 403 Forbidden for refused
//! admission); and the admission plugins that read other objects
//! (NamespaceLifecycle, Priority, ServiceAccount, PodSecurity).

use serde_json::Value;

use super::pod_security::{self, NamespaceChange, Policy};
use super::{Registry, audit_annotations, metadata};
use crate::api::resource::{PodSecurity, Resource};
use crate::api::status::ApiError;
use crate::kinds;
use crate::storage::keys;
use crate::validation::{self, Cause, PriorityClassInfo};

/// Applies the kind's defaults (kube-apiserver's defaulting functions).
pub fn default_object(r: &Resource, obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        r.strategy.default(o);
    }
}

/// Carries allocated Service fields over on update and makes clusterIP and
/// clusterIPs consistent, before allocation.
pub fn normalize_service(r: &Resource, obj: &mut Value, old: Option<&Value>) {
    if r.strategy.allocates_service_addresses() {
        validation::normalize_cluster_ips(obj, old);
    }
}

/// Create-time admission mutations; `priority_class` is the class a Pod
/// names (or the global default), looked up by the caller.
pub fn admit_create(
    r: &Resource,
    obj: &mut Value,
    priority_class: Option<&PriorityClassInfo>,
) -> Result<(), ApiError> {
    r.strategy.admit_create(obj, priority_class).map_err(|e| {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        ApiError::forbidden(r, name, &e.to_string())
    })
}

/// The 422 `Invalid` error for `obj`'s validation `causes`.
pub fn to_error(r: &Resource, obj: &Value, causes: &[Cause]) -> ApiError {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let status = validation::invalid_status(r.group, r.kind, name, causes);
    ApiError::new(
        422,
        "Invalid",
        validation::invalid_message(r.group, r.kind, name, causes),
    )
    .with_details(status.get("details").cloned().unwrap_or(Value::Null))
}

/// Validates a create (`old` None), an update, or a subresource update.
pub fn validate(
    r: &Resource,
    obj: &Value,
    old: Option<&Value>,
    subresource: Option<&str>,
) -> Result<(), ApiError> {
    let causes = match (old, subresource) {
        (None, _) => create_causes(r, obj),
        (Some(o), None) => r.strategy.validate_update(obj, o),
        (Some(o), Some(sub)) => r.strategy.validate_subresource_update(sub, obj, o),
    };
    if causes.is_empty() {
        Ok(())
    } else {
        Err(to_error(r, obj, &causes))
    }
}

/// Validation of a new object: the kind's own, then, for a stored kind, the
/// generic check that its name is a valid path segment.
pub fn create_causes(r: &Resource, obj: &Value) -> Vec<Cause> {
    let causes = r.strategy.validate_create(obj);
    if !causes.is_empty() || !r.strategy.is_stored() {
        return causes;
    }
    validation::path_segment_name_causes(obj)
}

/// kube-apiserver's admission plugins that read other objects: each names
/// the resource it reads, as upstream's plugins do.
impl Registry {
    /// The namespace an object is written into must exist and not be
    /// terminating (kube-apiserver's NamespaceLifecycle admission).
    pub async fn check_namespace(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if !r.namespaced {
            return Ok(());
        }
        match self.namespace(ns).await? {
            None => Err(ApiError::namespace_not_found(ns)),
            Some(o)
                if o.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") =>
            {
                Err(ApiError::forbidden(
                    r,
                    name,
                    &format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// A namespace as the watch cache holds it, or from etcd.
    async fn namespace(&self, ns: &str) -> Result<Option<Value>, ApiError> {
        let nsr = &kinds::core::namespace::RESOURCE;
        let key = keys::object_key(nsr, "", ns);
        let cached = self.store.cache(nsr).and_then(|c| c.get(&key)).flatten();
        Ok(match cached {
            Some(o) => Some(o.value()),
            None => self.get_raw(nsr, "", ns).await?.map(|(v, _)| v),
        })
    }

    /// The PodSecurity admission plugin on a create (`old` None) or an
    /// update, after validation: a pod violating its namespace's enforce
    /// level is refused; pods and pod templates violating the warn level,
    /// and namespaces whose tightened enforce level existing pods violate,
    /// get warnings, which it returns; pods and templates checked add the
    /// enforce policy and their audit-level violations to the request's
    /// audit event; namespace policy labels that do not parse are refused
    /// as Invalid.
    pub(super) async fn admit_pod_security(
        &self,
        r: &Resource,
        ns: &str,
        obj: &Value,
        old: Option<&Value>,
        subresource: Option<&str>,
    ) -> Result<Vec<String>, ApiError> {
        let name = metadata::meta_str(obj, "name");
        let null = Value::Null;
        match r.strategy.pod_security() {
            PodSecurity::None => Ok(Vec::new()),
            PodSecurity::Pod => {
                if !pod_security::evaluates_pod_subresource(subresource) {
                    return Ok(Vec::new());
                }
                if old.is_some_and(|o| !pod_security::is_significant_update(obj, o)) {
                    return Ok(Vec::new());
                }
                let (policy, valid) = self.namespace_policy(ns).await?;
                if valid && policy.fully_privileged() {
                    return Ok(Vec::new());
                }
                let (meta, spec) = (
                    obj.get("metadata").unwrap_or(&null),
                    obj.get("spec").unwrap_or(&null),
                );
                audit_annotations::add(pod_security::audit_annotations(&policy, meta, spec, true));
                pod_security::evaluate(&policy, meta, spec, true)
                    .map_err(|why| ApiError::forbidden(r, name, &why))
            }
            PodSecurity::Template(pointer) => {
                if subresource.is_some() {
                    return Ok(Vec::new());
                }
                // Templates are warned about and audited, never enforced.
                let (policy, valid) = self.namespace_policy(ns).await?;
                if valid
                    && policy.warn.level == pod_security::Level::Privileged
                    && policy.audit.level == pod_security::Level::Privileged
                {
                    return Ok(Vec::new());
                }
                let template = obj.pointer(pointer).unwrap_or(&null);
                let (meta, spec) = (
                    template.get("metadata").unwrap_or(&null),
                    template.get("spec").unwrap_or(&null),
                );
                audit_annotations::add(pod_security::audit_annotations(&policy, meta, spec, false));
                Ok(pod_security::evaluate(&policy, meta, spec, false).unwrap_or_default())
            }
            PodSecurity::NamespacePolicy => {
                if subresource.is_some() {
                    return Ok(Vec::new());
                }
                match pod_security::namespace_change(obj, old) {
                    NamespaceChange::Invalid(causes) => Err(to_error(r, obj, &causes)),
                    NamespaceChange::Allowed => Ok(Vec::new()),
                    NamespaceChange::CheckPods(enforce) => {
                        let pods = self.pods_in(name).await?;
                        Ok(pod_security::existing_pod_warnings(name, enforce, &pods))
                    }
                }
            }
        }
    }

    /// The PodSecurity policy of namespace `ns`, and whether its labels
    /// all parse.
    async fn namespace_policy(&self, ns: &str) -> Result<(Policy, bool), ApiError> {
        let Some(namespace) = self.namespace(ns).await? else {
            return Err(ApiError::new(
                500,
                "InternalError",
                format!("failed to lookup namespace {ns}"),
            ));
        };
        let labels = namespace
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let (policy, causes) = Policy::from_labels(labels);
        Ok((policy, causes.is_empty()))
    }

    /// The pods of namespace `ns`, from the watch cache or etcd.
    async fn pods_in(&self, ns: &str) -> Result<Vec<Value>, ApiError> {
        let pr = &kinds::core::pod::RESOURCE;
        let prefix = keys::list_prefix(pr, Some(ns));
        if let Some((_, objects)) = self.store.cache(pr).and_then(|c| c.snapshot(&prefix)) {
            return Ok(objects.into_iter().map(|o| o.value()).collect());
        }
        let page = self
            .store
            .etcd
            .range(&prefix, &keys::prefix_end(&prefix), 0, 0, false)
            .await?;
        page.kvs
            .iter()
            .map(|kv| super::parse_stored(&kv.key, &kv.value, kv.mod_revision))
            .collect()
    }

    /// The PriorityClass a Pod names (or the cluster's global default), for
    /// the Priority admission plugin.
    pub(super) async fn priority_class(
        &self,
        pod: &Value,
    ) -> Result<Option<crate::validation::PriorityClassInfo>, ApiError> {
        let pcr = &kinds::scheduling::RESOURCE;
        let info = |v: &Value| crate::validation::PriorityClassInfo {
            name: metadata::meta_str(v, "name").to_string(),
            value: v.get("value").and_then(Value::as_i64).unwrap_or(0) as i32,
            preemption_policy: v
                .get("preemptionPolicy")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        match pod
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(name) => {
                if let Some(sys) = crate::validation::system_priority_class(name) {
                    return Ok(Some(sys));
                }
                match self.get_raw(pcr, "", name).await? {
                    Some((v, _)) => Ok(Some(info(&v))),
                    None => Ok(None),
                }
            }
            None => {
                let Some(cache) = self.store.cache(pcr) else {
                    return Ok(None);
                };
                let default = cache
                    .snapshot(&keys::resource_prefix(pcr))
                    .map(|(_, objs)| objs)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| o.value())
                    .find(|v| v.get("globalDefault").and_then(Value::as_bool) == Some(true));
                Ok(default.as_ref().map(info))
            }
        }
    }

    /// The ServiceAccount admission plugin's token mount: the pod's
    /// ServiceAccount must exist (the `default` one is waited for about a
    /// second, as its controller creates it with the namespace), and the
    /// pod gets its token volume unless it or the account opts out.
    pub(super) async fn mount_service_account_token(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        pod: &mut Value,
    ) -> Result<(), ApiError> {
        use crate::validation::service_account;
        let sar = &kinds::core::service_account::RESOURCE;
        let account = pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        let mut found = self.get_recent(sar, ns, &account).await?;
        let attempts = if account == "default" { 10 } else { 1 };
        for attempt in 0..attempts {
            if found.is_some() {
                break;
            }
            if attempt > 0 {
                let wait = rand::Rng::random_range(&mut rand::rng(), 100..200);
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            }
            found = self.get_raw(sar, ns, &account).await?.map(|(sa, _)| sa);
        }
        let Some(sa) = found else {
            return Err(ApiError::forbidden(
                r,
                name,
                &format!(
                    "error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found"
                ),
            ));
        };
        if service_account::automounts(pod, &sa) {
            let volume = metadata::generate_name(service_account::VOLUME_PREFIX);
            service_account::mount_token(pod, &volume);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kinds::find_kind;
    use crate::validation::{CauseType, invalid_message, invalid_status, normalize_cluster_ips};

    fn kind(group: &str, kind: &str) -> &'static Resource {
        find_kind(group, "v1", kind).expect("kind is served")
    }

    fn validate_create(r: &Resource, obj: &Value) -> Vec<Cause> {
        create_causes(r, obj)
    }

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
        default_object(kind("apps", "Deployment"), &mut d);
        assert!(validate_create(kind("apps", "Deployment"), &d).is_empty());

        let mut s = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
            "spec": {"type": "NodePort", "selector": {"app": "nginx"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]}
        });
        default_object(kind("", "Service"), &mut s);
        normalize_cluster_ips(&mut s, None);
        // What the allocator fills in before validation.
        s["spec"]["clusterIP"] = json!("10.96.0.20");
        s["spec"]["clusterIPs"] = json!(["10.96.0.20"]);
        s["spec"]["ports"][0]["nodePort"] = json!(30080);
        assert!(
            validate_create(kind("", "Service"), &s).is_empty(),
            "{:?}",
            validate_create(kind("", "Service"), &s)
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
        default_object(kind("", "Pod"), &mut pod);
        kind("", "Pod")
            .strategy
            .admit_create(&mut pod, None)
            .unwrap();
        assert!(
            validate_create(kind("", "Pod"), &pod).is_empty(),
            "{:?}",
            validate_create(kind("", "Pod"), &pod)
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
            default_object(kind(g, k), &mut obj);
            let once = obj.clone();
            default_object(kind(g, k), &mut obj);
            assert_eq!(once, obj, "{k}");
        }
    }

    // The messages the bad-input tests look for.
    #[test]
    fn bad_input_messages() {
        let mut d = seeds_deployment();
        d["metadata"]["name"] = json!("Nginx_Deployment");
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
        default_object(kind("apps", "Deployment"), &mut d);
        let causes = validate_create(kind("apps", "Deployment"), &d);
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
        let causes = validate_create(kind("", "ConfigMap"), &json!({"metadata": {"name": 5}}));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].reason, CauseType::TypeInvalid);
    }

    // The generic registry's path-segment check on names of kinds whose own
    // rule is looser (core/v1 Events).
    #[test]
    fn generic_name_check() {
        let e = json!({"metadata": {"name": "a/b", "namespace": "default"}, "involvedObject": {"namespace": "default"}});
        let causes = validate_create(kind("", "Event"), &e);
        assert_eq!(
            causes[0].error_string(),
            "metadata.name: Invalid value: \"a/b\": may not contain '/'"
        );
    }
}
