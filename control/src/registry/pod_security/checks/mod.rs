//! The Pod Security Standards checks (k8s.io/pod-security-admission/policy)
//! over a pod's wire form: its metadata and its spec, or a template's. Each
//! check returns upstream's forbidden reason and detail word for word; the
//! checks run in upstream's order — baseline checks sorted by ID, then the
//! restricted ones sorted by ID, where a restricted check replaces the
//! baseline check it supersedes. A check has revisions by policy version:
//! a pinned version (`v1.24`) gets the revisions that version had, and a
//! check newer than it does not run.

mod baseline;
mod restricted;

use std::collections::BTreeSet;

use serde_json::Value;

use super::levels::{Level, LevelVersion, Version};

/// One failed check: upstream's `ForbiddenReason` and `ForbiddenDetail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

impl Violation {
    fn new(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
        Some(Violation {
            reason: reason.into(),
            detail: detail.into(),
        })
    }
}

/// A check of a pod's metadata and spec.
type CheckFn = fn(&Value, &Value) -> Option<Violation>;

struct Check {
    /// Upstream's check ID, by which the checks are ordered.
    id: &'static str,
    /// The check's revisions, oldest first, each with the first policy
    /// minor version (`v1.<minor>`) it applies to.
    revisions: &'static [(u64, CheckFn)],
    /// The restricted check that replaces this baseline check where both
    /// apply (upstream's `OverrideCheckIDs`).
    superseded_by: Option<&'static str>,
}

impl Check {
    /// The revision that applies at policy minor version `minor`.
    fn at(&self, minor: u64) -> Option<CheckFn> {
        self.revisions
            .iter()
            .rev()
            .find(|(since, _)| *since <= minor)
            .map(|(_, run)| *run)
    }
}

const fn check(id: &'static str, revisions: &'static [(u64, CheckFn)]) -> Check {
    Check {
        id,
        revisions,
        superseded_by: None,
    }
}

const fn superseded(
    id: &'static str,
    revisions: &'static [(u64, CheckFn)],
    by: &'static str,
) -> Check {
    Check {
        id,
        revisions,
        superseded_by: Some(by),
    }
}

const BASELINE: &[Check] = &[
    check("appArmorProfile", &[(0, baseline::app_armor_profile)]),
    superseded(
        "capabilities_baseline",
        &[(0, baseline::capabilities)],
        "capabilities_restricted",
    ),
    check("hostNamespaces", &[(0, baseline::host_namespaces)]),
    superseded(
        "hostPathVolumes",
        &[(0, baseline::host_path_volumes)],
        "restrictedVolumes",
    ),
    check("hostPorts", &[(0, baseline::host_ports)]),
    check("privileged", &[(0, baseline::privileged)]),
    check("procMount", &[(0, baseline::proc_mount)]),
    check(
        "seLinuxOptions",
        &[
            (0, baseline::se_linux_options_1_0),
            (31, baseline::se_linux_options),
        ],
    ),
    superseded(
        "seccompProfile_baseline",
        &[
            (0, baseline::seccomp_annotations),
            (19, baseline::seccomp_profile),
        ],
        "seccompProfile_restricted",
    ),
    check(
        "sysctls",
        &[
            (0, baseline::sysctls_1_0),
            (27, baseline::sysctls_1_27),
            (29, baseline::sysctls_1_29),
            (32, baseline::sysctls),
        ],
    ),
    check("windowsHostProcess", &[(0, baseline::windows_host_process)]),
];

const RESTRICTED: &[Check] = &[
    check(
        "allowPrivilegeEscalation",
        &[
            (8, restricted::allow_privilege_escalation_1_8),
            (25, restricted::allow_privilege_escalation),
        ],
    ),
    check(
        "capabilities_restricted",
        &[
            (22, restricted::capabilities_1_22),
            (25, restricted::capabilities),
        ],
    ),
    check("restrictedVolumes", &[(0, restricted::volumes)]),
    check("runAsNonRoot", &[(0, restricted::run_as_non_root)]),
    check("runAsUser", &[(23, restricted::run_as_user)]),
    check(
        "seccompProfile_restricted",
        &[
            (19, restricted::seccomp_profile_1_19),
            (25, restricted::seccomp_profile),
        ],
    ),
];

/// The violations of `policy`'s level by a pod's `meta`data and `spec`,
/// with the checks of its version, in upstream's order.
pub fn evaluate(policy: LevelVersion, meta: &Value, spec: &Value) -> Vec<Violation> {
    let minor = match policy.version {
        Version::Latest => u64::MAX,
        Version::V1(minor) => minor,
    };
    let applies = |id: &str| {
        RESTRICTED
            .iter()
            .any(|c| c.id == id && c.at(minor).is_some())
    };
    let checks: Vec<CheckFn> = match policy.level {
        Level::Privileged => Vec::new(),
        Level::Baseline => BASELINE.iter().filter_map(|c| c.at(minor)).collect(),
        Level::Restricted => BASELINE
            .iter()
            .filter(|c| !c.superseded_by.is_some_and(applies))
            .chain(RESTRICTED)
            .filter_map(|c| c.at(minor))
            .collect(),
    };
    checks.iter().filter_map(|run| run(meta, spec)).collect()
}

/// `ForbiddenDetail()`: each reason with its detail in parentheses,
/// joined with ", ".
pub fn forbidden_detail(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ForbiddenReason()`: the reasons alone, joined with ", ".
pub fn forbidden_reason(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| v.reason.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A non-null field.
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// A string field, empty when unset (a Go string's zero value).
fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn strings(v: Option<&Value>) -> impl Iterator<Item = &str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Every container of a spec: init containers, containers, then ephemeral
/// containers (upstream's `visitContainers`).
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|k| spec.get(k).and_then(Value::as_array).into_iter().flatten())
}

fn name(container: &Value) -> &str {
    str_of(container, "name")
}

/// A container's securityContext field.
fn container_sc<'a>(container: &'a Value, key: &str) -> Option<&'a Value> {
    get(container, "securityContext").and_then(|sc| get(sc, key))
}

/// The pod's securityContext field.
fn pod_sc<'a>(spec: &'a Value, key: &str) -> Option<&'a Value> {
    get(spec, "securityContext").and_then(|sc| get(sc, key))
}

/// `joinQuote`: `"a", "b"`.
fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let inner: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("\"{}\"", inner.join("\", \""))
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 { singular } else { plural }
}

/// `container "a"` or `containers "a", "b"`.
fn containers_phrase<S: AsRef<str>>(names: &[S]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

fn sorted(set: &BTreeSet<String>) -> Vec<&str> {
    set.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    pub(super) fn pod(spec: Value) -> (Value, Value) {
        (json!({}), spec)
    }

    pub(super) fn latest(level: Level) -> LevelVersion {
        LevelVersion {
            level,
            version: Version::Latest,
        }
    }

    /// Runs one check and returns `reason (detail)`, or None when it passes.
    pub(super) fn run(check: CheckFn, meta: &Value, spec: &Value) -> Option<String> {
        check(meta, spec).map(|v| forbidden_detail(&[v]))
    }

    // Baseline and restricted checks are each listed in ID order (Go's
    // byte order), as upstream's registry sorts them.
    #[test]
    fn checks_are_in_id_order() {
        for list in [BASELINE, RESTRICTED] {
            let ids: Vec<&str> = list.iter().map(|c| c.id).collect();
            let mut want = ids.clone();
            want.sort_unstable();
            assert_eq!(ids, want);
        }
    }

    // A pod breaking many rules: baseline reasons first, then restricted
    // ones; the superseded baseline checks (capabilities, hostPath,
    // seccomp) appear only at baseline.
    #[test]
    fn combined_violations_in_upstream_order() {
        let (meta, spec) = pod(json!({
            "hostNetwork": true,
            "securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
            "containers": [{
                "name": "c", "image": "x",
                "ports": [{"containerPort": 80, "hostPort": 80}],
                "securityContext": {"privileged": true, "runAsUser": 0,
                                    "capabilities": {"add": ["NET_ADMIN"]}},
            }],
        }));
        assert_eq!(
            forbidden_detail(&evaluate(latest(Level::Baseline), &meta, &spec)),
            "non-default capabilities (container \"c\" must not include \"NET_ADMIN\" in securityContext.capabilities.add), \
             host namespaces (hostNetwork=true), \
             hostPath volumes (volume \"host\"), \
             hostPort (container \"c\" uses hostPort 80), \
             privileged (container \"c\" must not set securityContext.privileged=true), \
             seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
        let restricted = evaluate(latest(Level::Restricted), &meta, &spec);
        assert_eq!(
            forbidden_detail(&restricted),
            "host namespaces (hostNetwork=true), \
             hostPort (container \"c\" uses hostPort 80), \
             privileged (container \"c\" must not set securityContext.privileged=true), \
             allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]; container \"c\" must not include \"NET_ADMIN\" in securityContext.capabilities.add), \
             restricted volume types (volume \"host\" uses restricted volume type \"hostPath\"), \
             runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
             runAsUser=0 (container \"c\" must not set runAsUser=0), \
             seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
        assert_eq!(
            forbidden_reason(&restricted),
            "host namespaces, hostPort, privileged, allowPrivilegeEscalation != false, \
             unrestricted capabilities, restricted volume types, runAsNonRoot != true, \
             runAsUser=0, seccompProfile"
        );
        assert!(evaluate(latest(Level::Privileged), &meta, &spec).is_empty());
    }

    // The restricted profile's own example pod passes every check.
    #[test]
    fn restricted_pod_passes() {
        let (meta, spec) = pod(json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "t", "projected": {"sources": []}}, {"name": "e", "emptyDir": {}}],
            "containers": [{
                "name": "c", "image": "x",
                "securityContext": {"allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
            }],
        }));
        assert_eq!(evaluate(latest(Level::Restricted), &meta, &spec), []);
    }

    // A pinned version runs the checks that version had: before v1.19 no
    // seccompProfile requirement, before v1.22 the baseline capabilities
    // check, before v1.23 no runAsUser.
    #[test]
    fn pinned_versions_run_their_checks() {
        let (meta, spec) = pod(json!({
            "securityContext": {"runAsNonRoot": true},
            "containers": [{
                "name": "c", "image": "x",
                "securityContext": {"allowPrivilegeEscalation": false, "runAsUser": 0,
                                    "capabilities": {"add": ["NET_ADMIN"]}},
            }],
        }));
        let at = |minor| LevelVersion {
            level: Level::Restricted,
            version: Version::V1(minor),
        };
        assert_eq!(
            forbidden_reason(&evaluate(at(18), &meta, &spec)),
            "non-default capabilities"
        );
        assert_eq!(
            forbidden_reason(&evaluate(at(22), &meta, &spec)),
            "unrestricted capabilities, seccompProfile"
        );
        assert_eq!(
            forbidden_reason(&evaluate(at(23), &meta, &spec)),
            "unrestricted capabilities, runAsUser=0, seccompProfile"
        );
        // Versions past the newest check use the newest checks.
        assert_eq!(
            evaluate(at(99), &meta, &spec),
            evaluate(latest(Level::Restricted), &meta, &spec)
        );
    }

    // Windows pods are exempt from the Linux-only restricted checks since
    // v1.25.
    #[test]
    fn windows_pods_skip_linux_only_checks() {
        let (meta, spec) = pod(json!({
            "os": {"name": "windows"},
            "securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c", "image": "x"}],
        }));
        assert_eq!(evaluate(latest(Level::Restricted), &meta, &spec), []);
        let v1_24 = LevelVersion {
            level: Level::Restricted,
            version: Version::V1(24),
        };
        assert_eq!(
            forbidden_reason(&evaluate(v1_24, &meta, &spec)),
            "allowPrivilegeEscalation != false, unrestricted capabilities, seccompProfile"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(join_quote::<&str>(&[]), "");
        assert_eq!(join_quote(&["a", "b"]), "\"a\", \"b\"");
        assert_eq!(containers_phrase(&["a"]), "container \"a\"");
        assert_eq!(containers_phrase(&["a", "b"]), "containers \"a\", \"b\"");
        let spec = json!({"containers": [{"name": "c"}], "initContainers": [{"name": "i"}],
                          "ephemeralContainers": [{"name": "e"}]});
        let names: Vec<&str> = containers(&spec).map(name).collect();
        assert_eq!(names, ["i", "c", "e"]);
    }
}
