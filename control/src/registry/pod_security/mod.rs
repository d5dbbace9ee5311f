//! PodSecurity admission (k8s.io/pod-security-admission): the Pod Security
//! Standards a namespace's `pod-security.kubernetes.io/*` labels choose,
//! enforced on pods, warned about for pods and pod templates, and checked
//! against the existing pods when a namespace's enforce level tightens.
//! Everything here is pure over wire-form objects; the registry's admission
//! reads the namespace and its pods and calls in. The audit mode, and the
//! enforce policy a pod was checked against, are told to the audit log as
//! the request's [`audit_annotations`].

pub mod checks;
pub mod levels;

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use crate::validation::Cause;
pub use levels::{Level, LevelVersion, Policy, Version};

/// The pod subresources whose writes are not evaluated; any other (the
/// main resource, `ephemeralcontainers`) is.
const IGNORED_POD_SUBRESOURCES: &[&str] = &[
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// Most existing pods checked when a namespace's enforce level changes.
const MAX_PODS_TO_CHECK: usize = 3000;

/// Whether a write through `subresource` of a pod is evaluated.
pub fn evaluates_pod_subresource(subresource: Option<&str>) -> bool {
    subresource.is_none_or(|s| !IGNORED_POD_SUBRESOURCES.contains(&s))
}

/// Evaluates a pod (or a template's) `meta`data and `spec` against the
/// namespace `policy`. With `enforce`, a violation of the enforce level is
/// the refusal's reason (`Err`); otherwise the warnings for the client.
pub fn evaluate(
    policy: &Policy,
    meta: &Value,
    spec: &Value,
    enforce: bool,
) -> Result<Vec<String>, String> {
    if enforce {
        let violations = checks::evaluate(policy.enforce, meta, spec);
        if !violations.is_empty() {
            return Err(format!(
                "violates PodSecurity \"{}\": {}",
                policy.enforce,
                checks::forbidden_detail(&violations)
            ));
        }
    }
    let violations = checks::evaluate(policy.warn, meta, spec);
    if violations.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![format!(
        "would violate PodSecurity \"{}\": {}",
        policy.warn,
        checks::forbidden_detail(&violations)
    )])
}

/// The audit annotation naming the enforce policy a pod was checked
/// against (`restricted:latest`).
pub const ENFORCE_POLICY_ANNOTATION: &str = "pod-security.kubernetes.io/enforce-policy";
/// The audit annotation telling how a pod or template violates the
/// namespace's `audit` level.
pub const AUDIT_VIOLATIONS_ANNOTATION: &str = "pod-security.kubernetes.io/audit-violations";

/// What PodSecurity adds to the request's audit event for a pod (or a
/// template's) `meta`data and `spec` under `policy`, as upstream's
/// admission does: the enforce policy when `enforce`d, and the violations
/// of the audit level if any.
pub fn audit_annotations(
    policy: &Policy,
    meta: &Value,
    spec: &Value,
    enforce: bool,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if enforce {
        out.insert(
            ENFORCE_POLICY_ANNOTATION.to_owned(),
            policy.enforce.to_string(),
        );
    }
    let violations = checks::evaluate(policy.audit, meta, spec);
    if !violations.is_empty() {
        out.insert(
            AUDIT_VIOLATIONS_ANNOTATION.to_owned(),
            format!(
                "would violate PodSecurity \"{}\": {}",
                policy.audit,
                checks::forbidden_detail(&violations)
            ),
        );
    }
    out
}

/// Whether a pod update changes what the checks read and so is evaluated:
/// its containers, their images, ephemeral containers added or changed,
/// or the seccomp annotations (upstream's `isSignificantPodUpdate`).
pub fn is_significant_update(pod: &Value, old: &Value) -> bool {
    const SECCOMP_POD: &str = "seccomp.security.alpha.kubernetes.io/pod";
    const SECCOMP_CONTAINER: &str = "container.seccomp.security.alpha.kubernetes.io/";
    let annotation = |p: &Value, key: &str| -> String {
        p.pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let list = |p: &Value, key: &str| -> Vec<Value> {
        p.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let text = |c: &Value, key: &str| {
        c.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let container_changed = |c: &Value, o: &Value| {
        let key = format!("{SECCOMP_CONTAINER}{}", text(c, "name"));
        text(c, "image") != text(o, "image") || annotation(pod, &key) != annotation(old, &key)
    };
    if annotation(pod, SECCOMP_POD) != annotation(old, SECCOMP_POD) {
        return true;
    }
    for key in ["containers", "initContainers"] {
        let (new, before) = (list(pod, key), list(old, key));
        if new.len() != before.len()
            || new
                .iter()
                .zip(&before)
                .any(|(c, o)| container_changed(c, o))
        {
            return true;
        }
    }
    let before = list(old, "ephemeralContainers");
    list(pod, "ephemeralContainers").iter().any(|c| {
        match before.iter().find(|o| text(o, "name") == text(c, "name")) {
            None => true,
            Some(o) => container_changed(c, o),
        }
    })
}

/// What admission does with a namespace write.
#[derive(Debug, PartialEq)]
pub enum NamespaceChange {
    /// Its policy labels do not parse: refused as Invalid.
    Invalid(Vec<Cause>),
    /// Nothing to check.
    Allowed,
    /// The enforce level tightened: the existing pods are checked against
    /// it and the client warned of those that violate it.
    CheckPods(LevelVersion),
}

/// Upstream's `ValidateNamespace`: labels must parse on create, and on an
/// update unless the same errors were there before; an update that
/// tightens the enforce level (a stricter level, or another version of a
/// level other than privileged) checks the existing pods.
pub fn namespace_change(new: &Value, old: Option<&Value>) -> NamespaceChange {
    let labels = |ns: &Value| {
        ns.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
    };
    let (policy, causes) = Policy::from_labels(labels(new).as_ref());
    let Some(old) = old else {
        return if causes.is_empty() {
            NamespaceChange::Allowed
        } else {
            NamespaceChange::Invalid(causes)
        };
    };
    let (old_policy, old_causes) = Policy::from_labels(labels(old).as_ref());
    if !causes.is_empty() && (old_causes.is_empty() || causes != old_causes) {
        return NamespaceChange::Invalid(causes);
    }
    let (new_enforce, old_enforce) = (policy.enforce, old_policy.enforce);
    if new_enforce == old_enforce
        || new_enforce.level == Level::Privileged
        || (new_enforce.version == old_enforce.version && new_enforce.level <= old_enforce.level)
    {
        return NamespaceChange::Allowed;
    }
    NamespaceChange::CheckPods(new_enforce)
}

/// Upstream's `EvaluatePodsInNamespace`: a warning that existing pods
/// violate the new `enforce` level, then, sorted, one warning per distinct
/// set of reasons naming the lexically first pod and how many others share
/// it. At most 3000 pods are checked, one per controller first.
pub fn existing_pod_warnings(
    namespace: &str,
    enforce: LevelVersion,
    pods: &[Value],
) -> Vec<String> {
    let pod_name = |p: &Value| {
        p.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let ordered = prioritise(pods);
    let mut counts: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for pod in ordered.iter().take(MAX_PODS_TO_CHECK) {
        let violations = checks::evaluate(
            enforce,
            pod.get("metadata").unwrap_or(&Value::Null),
            pod.get("spec").unwrap_or(&Value::Null),
        );
        if violations.is_empty() {
            continue;
        }
        let name = pod_name(pod);
        let entry = counts
            .entry(checks::forbidden_reason(&violations))
            .or_insert_with(|| (name.clone(), 0));
        if name < entry.0 {
            entry.0 = name;
        }
        entry.1 += 1;
    }
    let mut warnings = Vec::new();
    if pods.len() > MAX_PODS_TO_CHECK {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {MAX_PODS_TO_CHECK} of {} existing pods",
            pods.len()
        ));
    }
    if !counts.is_empty() {
        warnings.push(format!(
            "existing pods in namespace \"{namespace}\" violate the new PodSecurity enforce level \"{enforce}\""
        ));
    }
    let mut per_pod: Vec<String> = counts
        .into_iter()
        .map(|(reasons, (name, count))| match count {
            1 => format!("{name}: {reasons}"),
            2 => format!("{name} (and 1 other pod): {reasons}"),
            n => format!("{name} (and {} other pods): {reasons}", n - 1),
        })
        .collect();
    per_pod.sort();
    warnings.extend(per_pod);
    warnings
}

/// Pods without a controller and the first pod of each controller, then
/// the other pods of controllers already seen.
fn prioritise(pods: &[Value]) -> Vec<&Value> {
    let controller_uid = |p: &Value| {
        p.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .and_then(|r| r.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut seen = HashSet::new();
    let (mut first, mut replicas) = (Vec::new(), Vec::new());
    for pod in pods {
        let repeated = controller_uid(pod).is_some_and(|uid| !seen.insert(uid));
        if repeated {
            replicas.push(pod);
        } else {
            first.push(pod);
        }
    }
    first.extend(replicas);
    first
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(labels: Value) -> Policy {
        let (p, causes) = Policy::from_labels(labels.as_object());
        assert!(causes.is_empty());
        p
    }

    fn privileged_pod(name: &str) -> Value {
        json!({"metadata": {"name": name},
               "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true}}]}})
    }

    // Enforce refuses with upstream's reason; the warning is not added to
    // a refused request.
    #[test]
    fn enforce_refuses() {
        let p = policy(json!({"pod-security.kubernetes.io/enforce": "restricted",
                              "pod-security.kubernetes.io/warn": "baseline"}));
        let pod = privileged_pod("p");
        let why = evaluate(&p, &pod["metadata"], &pod["spec"], true).unwrap_err();
        assert_eq!(
            why,
            "violates PodSecurity \"restricted:latest\": privileged (container \"c\" must not set securityContext.privileged=true), \
             allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
    }

    // The audit event names the enforce policy of a checked pod and how it
    // violates the audit level.
    #[test]
    fn audit_annotations_name_the_enforce_policy_and_audit_violations() {
        let p = policy(json!({"pod-security.kubernetes.io/enforce": "baseline",
                              "pod-security.kubernetes.io/audit": "restricted",
                              "pod-security.kubernetes.io/audit-version": "v1.30"}));
        let spec = json!({"hostNetwork": true, "containers": [{"name": "c", "image": "x"}]});
        let pod = audit_annotations(&p, &json!({}), &spec, true);
        assert_eq!(pod[ENFORCE_POLICY_ANNOTATION], "baseline:latest");
        let violations = &pod[AUDIT_VIOLATIONS_ANNOTATION];
        assert!(
            violations.starts_with(
                "would violate PodSecurity \"restricted:v1.30\": host namespaces (hostNetwork=true), "
            ),
            "{violations}"
        );
        // A template is not enforced: only its audit violations.
        let template = audit_annotations(&p, &json!({}), &spec, false);
        assert_eq!(template.len(), 1);
        assert_eq!(&template[AUDIT_VIOLATIONS_ANNOTATION], violations);
        // Within the audit level: the enforce policy alone.
        let fine = policy(json!({"pod-security.kubernetes.io/enforce": "restricted"}));
        let pod = audit_annotations(&fine, &json!({}), &spec, true);
        assert_eq!(pod.len(), 1);
        assert_eq!(pod[ENFORCE_POLICY_ANNOTATION], "restricted:latest");
        assert!(audit_annotations(&fine, &json!({}), &spec, false).is_empty());
    }

    // Warn names the warn level and version; templates are never enforced.
    #[test]
    fn warn_and_templates() {
        let p = policy(json!({"pod-security.kubernetes.io/enforce": "baseline",
                              "pod-security.kubernetes.io/warn": "baseline",
                              "pod-security.kubernetes.io/warn-version": "v1.30"}));
        let spec = json!({"hostNetwork": true, "containers": [{"name": "c", "image": "x"}]});
        assert_eq!(
            evaluate(&p, &json!({}), &spec, false).unwrap(),
            ["would violate PodSecurity \"baseline:v1.30\": host namespaces (hostNetwork=true)"]
        );
        assert!(evaluate(&p, &json!({}), &spec, true).is_err());
        let fine = json!({"containers": [{"name": "c", "image": "x"}]});
        assert_eq!(evaluate(&p, &json!({}), &fine, true), Ok(vec![]));
    }

    #[test]
    fn subresources() {
        assert!(evaluates_pod_subresource(None));
        assert!(evaluates_pod_subresource(Some("ephemeralcontainers")));
        assert!(!evaluates_pod_subresource(Some("status")));
        assert!(!evaluates_pod_subresource(Some("binding")));
    }

    #[test]
    fn significant_updates() {
        let old = json!({"metadata": {"annotations": {}},
            "spec": {"containers": [{"name": "c", "image": "a"}], "ephemeralContainers": [{"name": "d", "image": "x"}]}});
        let mut labels = old.clone();
        labels["metadata"]["labels"] = json!({"a": "b"});
        assert!(!is_significant_update(&labels, &old));
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("b");
        assert!(is_significant_update(&image, &old));
        let mut debug = old.clone();
        debug["spec"]["ephemeralContainers"] =
            json!([{"name": "d", "image": "x"}, {"name": "e", "image": "x"}]);
        assert!(is_significant_update(&debug, &old));
        let mut seccomp = old.clone();
        seccomp["metadata"]["annotations"] =
            json!({"container.seccomp.security.alpha.kubernetes.io/c": "unconfined"});
        assert!(is_significant_update(&seccomp, &old));
    }

    #[test]
    fn namespace_labels() {
        let ns = |labels: Value| json!({"metadata": {"name": "x", "labels": labels}});
        let bad = ns(json!({"pod-security.kubernetes.io/enforce": "strict"}));
        let NamespaceChange::Invalid(causes) = namespace_change(&bad, None) else {
            panic!("invalid labels are refused on create");
        };
        assert_eq!(
            causes[0].error_string(),
            "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"
        );
        // The same invalid labels as before do not block other updates.
        assert_eq!(namespace_change(&bad, Some(&bad)), NamespaceChange::Allowed);
        let none = ns(json!({}));
        assert!(matches!(
            namespace_change(&bad, Some(&none)),
            NamespaceChange::Invalid(_)
        ));

        let restricted = ns(json!({"pod-security.kubernetes.io/enforce": "restricted"}));
        let baseline = ns(json!({"pod-security.kubernetes.io/enforce": "baseline"}));
        let expected = LevelVersion {
            level: Level::Restricted,
            version: Version::Latest,
        };
        assert_eq!(
            namespace_change(&restricted, Some(&none)),
            NamespaceChange::CheckPods(expected)
        );
        assert_eq!(
            namespace_change(&restricted, Some(&baseline)),
            NamespaceChange::CheckPods(expected)
        );
        // Relaxed, unchanged or privileged: nothing to check.
        assert_eq!(
            namespace_change(&baseline, Some(&restricted)),
            NamespaceChange::Allowed
        );
        assert_eq!(
            namespace_change(&restricted, Some(&restricted)),
            NamespaceChange::Allowed
        );
        assert_eq!(
            namespace_change(&none, Some(&restricted)),
            NamespaceChange::Allowed
        );
        // Another version of the same level is checked.
        let pinned = ns(json!({"pod-security.kubernetes.io/enforce": "restricted",
                               "pod-security.kubernetes.io/enforce-version": "v1.30"}));
        assert!(matches!(
            namespace_change(&pinned, Some(&restricted)),
            NamespaceChange::CheckPods(_)
        ));
    }

    // Pods sharing reasons are counted under the lexically first name.
    #[test]
    fn existing_pods() {
        let enforce = LevelVersion {
            level: Level::Baseline,
            version: Version::Latest,
        };
        let host = json!({"metadata": {"name": "h"}, "spec": {"hostPID": true, "containers": [{"name": "c"}]}});
        let fine = json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c"}]}});
        let pods = [
            privileged_pod("z"),
            privileged_pod("b"),
            privileged_pod("m"),
            host,
            fine,
        ];
        assert_eq!(
            existing_pod_warnings("ns", enforce, &pods),
            [
                "existing pods in namespace \"ns\" violate the new PodSecurity enforce level \"baseline:latest\"",
                "b (and 2 other pods): privileged",
                "h: host namespaces",
            ]
        );
        assert!(existing_pod_warnings("ns", enforce, &pods[4..]).is_empty());
        let two = [privileged_pod("y"), privileged_pod("x")];
        assert_eq!(
            existing_pod_warnings("ns", enforce, &two)[1],
            "x (and 1 other pod): privileged"
        );
    }

    #[test]
    fn prioritised_by_controller() {
        let owned = |name: &str, uid: &str| {
            json!({"metadata": {"name": name,
            "ownerReferences": [{"uid": uid, "controller": true}]}})
        };
        let pods = [
            owned("a1", "a"),
            owned("a2", "a"),
            json!({"metadata": {"name": "n"}}),
            owned("b1", "b"),
        ];
        let names: Vec<&str> = prioritise(&pods)
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a1", "n", "b1", "a2"]);
    }
}
