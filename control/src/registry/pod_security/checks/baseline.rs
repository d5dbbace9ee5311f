//! The baseline level's checks: known privilege escalations are refused.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    Violation, container_sc, containers, containers_phrase, get, join_quote, name, pluralize,
    pod_sc, sorted, str_of, strings,
};
use crate::validation::field::go_quote;

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// AppArmor: the profile type fields may be `RuntimeDefault` or
/// `Localhost`; the deprecated annotations `runtime/default`,
/// `localhost/*` or empty.
pub(super) fn app_armor_profile(meta: &Value, spec: &Value) -> Option<Violation> {
    let allowed_type = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let mut setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    if let Some(profile) = pod_sc(spec, "appArmorProfile") {
        let t = str_of(profile, "type");
        if !allowed_type(t) {
            setters.push("pod".to_string());
            bad_values.insert(t.to_string());
        }
    }
    let mut bad_containers = Vec::new();
    for c in containers(spec) {
        if let Some(profile) = container_sc(c, "appArmorProfile") {
            let t = str_of(profile, "type");
            if !allowed_type(t) {
                bad_containers.push(name(c));
                bad_values.insert(t.to_string());
            }
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    let mut annotations: Vec<String> = get(meta, "annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let v = v.as_str().unwrap_or_default();
            let allowed = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            (k.starts_with(APPARMOR_ANNOTATION_PREFIX) && !allowed)
                .then(|| format!("{k}={}", go_quote(v)))
        })
        .collect();
    let mut values: Vec<String> = bad_values.into_iter().collect();
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(pluralize("annotation", "annotations", annotations.len()).to_string());
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    Violation::new(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

/// The capabilities a container may add: Docker's default set.
const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Capabilities beyond the default set may not be added.
pub(super) fn capabilities(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad_containers = Vec::new();
    let mut added = BTreeSet::new();
    for c in containers(spec) {
        let Some(caps) = container_sc(c, "capabilities") else {
            continue;
        };
        let mut valid = true;
        for cap in strings(caps.get("add")) {
            if !DEFAULT_CAPABILITIES.contains(&cap) {
                valid = false;
                added.insert(cap.to_string());
            }
        }
        if !valid {
            bad_containers.push(name(c));
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    Violation::new(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad_containers),
            join_quote(&sorted(&added))
        ),
    )
}

/// The host's network, PID and IPC namespaces may not be shared.
pub(super) fn host_namespaces(_meta: &Value, spec: &Value) -> Option<Violation> {
    let shared: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| spec.get(*k).and_then(Value::as_bool) == Some(true))
        .map(|k| format!("{k}=true"))
        .collect();
    if shared.is_empty() {
        return None;
    }
    Violation::new("host namespaces", shared.join(", "))
}

/// hostPath volumes are forbidden.
pub(super) fn host_path_volumes(_meta: &Value, spec: &Value) -> Option<Violation> {
    let names: Vec<&str> = pod_volumes(spec)
        .filter(|v| get(v, "hostPath").is_some())
        .map(name)
        .collect();
    if names.is_empty() {
        return None;
    }
    Violation::new(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names)
        ),
    )
}

pub(super) fn pod_volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Host ports are forbidden.
pub(super) fn host_ports(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad_containers = Vec::new();
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let mut valid = true;
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let host_port = p.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
            if host_port != 0 {
                valid = false;
                // A set of strings: sorted as text, as upstream's.
                ports.insert(host_port.to_string());
            }
        }
        if !valid {
            bad_containers.push(name(c));
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    Violation::new(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad_containers),
            pluralize("uses", "use", bad_containers.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            sorted(&ports).join(", ")
        ),
    )
}

/// Privileged containers are forbidden.
pub(super) fn privileged(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<&str> = containers(spec)
        .filter(|c| container_sc(c, "privileged").and_then(Value::as_bool) == Some(true))
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    Violation::new(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    )
}

/// The default /proc masks are required.
pub(super) fn proc_mount(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad_containers = Vec::new();
    let mut types = BTreeSet::new();
    for c in containers(spec) {
        if let Some(t) = container_sc(c, "procMount") {
            let t = t.as_str().unwrap_or_default();
            if t != "Default" {
                bad_containers.push(name(c));
                types.insert(t.to_string());
            }
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    Violation::new(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad_containers),
            join_quote(&sorted(&types))
        ),
    )
}

/// The SELinux types containers may run as; `container_engine_t` since
/// v1.31.
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// SELinux: only the container types may be set, never a user or role.
pub(super) fn se_linux_options(_meta: &Value, spec: &Value) -> Option<Violation> {
    se_linux(spec, SELINUX_TYPES)
}

/// SELinux before v1.31.
pub(super) fn se_linux_options_1_0(_meta: &Value, spec: &Value) -> Option<Violation> {
    se_linux(spec, &SELINUX_TYPES[..4])
}

fn se_linux(spec: &Value, allowed_types: &[&str]) -> Option<Violation> {
    let mut bad_types = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |opts: &Value| {
        let mut ok = true;
        let t = str_of(opts, "type");
        if !allowed_types.contains(&t) {
            ok = false;
            bad_types.insert(t.to_string());
        }
        if !str_of(opts, "user").is_empty() {
            ok = false;
            set_user = true;
        }
        if !str_of(opts, "role").is_empty() {
            ok = false;
            set_role = true;
        }
        ok
    };
    let mut setters = Vec::new();
    if let Some(opts) = pod_sc(spec, "seLinuxOptions")
        && !valid(opts)
    {
        setters.push("pod".to_string());
    }
    let bad_containers: Vec<&str> = containers(spec)
        .filter(|c| container_sc(c, "seLinuxOptions").is_some_and(|o| !valid(o)))
        .map(name)
        .collect();
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        data.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&sorted(&bad_types))
        ));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    Violation::new(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    )
}

/// seccomp before v1.19, when profiles were annotations: a profile, where
/// set, must be `runtime/default`, `docker/default` or `localhost/*`.
pub(super) fn seccomp_annotations(meta: &Value, spec: &Value) -> Option<Violation> {
    const POD_KEY: &str = "seccomp.security.alpha.kubernetes.io/pod";
    const CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";
    let annotations = get(meta, "annotations");
    let mut forbidden = BTreeSet::new();
    let mut check = |key: &str| {
        if let Some(value) = annotations.and_then(|a| a.get(key)) {
            let value = value.as_str().unwrap_or_default();
            let valid = value == "runtime/default"
                || value == "docker/default"
                || value.starts_with("localhost/");
            if !valid {
                forbidden.insert(format!("{key}={}", go_quote(value)));
            }
        }
    };
    check(POD_KEY);
    for c in containers(spec) {
        check(&format!("{CONTAINER_PREFIX}{}", name(c)));
    }
    if forbidden.is_empty() {
        return None;
    }
    Violation::new(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", forbidden.len()),
            sorted(&forbidden).join(", ")
        ),
    )
}

pub(super) fn valid_seccomp(t: &str) -> bool {
    matches!(t, "RuntimeDefault" | "Localhost")
}

/// seccomp: a profile, where set, may not be `Unconfined`.
pub(super) fn seccomp_profile(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    if let Some(profile) = pod_sc(spec, "seccompProfile") {
        let t = str_of(profile, "type");
        if !valid_seccomp(t) {
            setters.push("pod".to_string());
            bad_values.insert(t.to_string());
        }
    }
    let mut bad_containers = Vec::new();
    for c in containers(spec) {
        if let Some(profile) = container_sc(c, "seccompProfile") {
            let t = str_of(profile, "type");
            if !valid_seccomp(t) {
                bad_containers.push(name(c));
                bad_values.insert(t.to_string());
            }
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    if setters.is_empty() {
        return None;
    }
    Violation::new(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&sorted(&bad_values))
        ),
    )
}

/// The sysctls that are namespaced and isolated from other pods: the first
/// five since v1.0, `ip_local_reserved_ports` since v1.27, the TCP
/// keepalive and FIN timeouts since v1.29, the TCP buffers since v1.32.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// Only the safe sysctls may be set.
pub(super) fn sysctls(_meta: &Value, spec: &Value) -> Option<Violation> {
    sysctls_within(spec, SAFE_SYSCTLS)
}

pub(super) fn sysctls_1_0(_meta: &Value, spec: &Value) -> Option<Violation> {
    sysctls_within(spec, &SAFE_SYSCTLS[..5])
}

pub(super) fn sysctls_1_27(_meta: &Value, spec: &Value) -> Option<Violation> {
    sysctls_within(spec, &SAFE_SYSCTLS[..6])
}

pub(super) fn sysctls_1_29(_meta: &Value, spec: &Value) -> Option<Violation> {
    sysctls_within(spec, &SAFE_SYSCTLS[..10])
}

fn sysctls_within(spec: &Value, safe: &[&str]) -> Option<Violation> {
    let forbidden: Vec<&str> = pod_sc(spec, "sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| str_of(s, "name"))
        .filter(|n| !safe.contains(n))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    Violation::new("forbidden sysctls", forbidden.join(", "))
}

/// Windows host processes are forbidden.
pub(super) fn windows_host_process(_meta: &Value, spec: &Value) -> Option<Violation> {
    let host_process = |opts: Option<&Value>| {
        opts.and_then(|o| o.get("hostProcess"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let bad_containers: Vec<&str> = containers(spec)
        .filter(|c| host_process(container_sc(c, "windowsOptions")))
        .map(name)
        .collect();
    let mut setters = Vec::new();
    if host_process(pod_sc(spec, "windowsOptions")) {
        setters.push("pod".to_string());
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    if setters.is_empty() {
        return None;
    }
    Violation::new(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::run;
    use super::*;

    fn spec_of(containers: Value) -> Value {
        json!({ "containers": containers })
    }

    #[test]
    fn app_armor() {
        let ok_meta = json!({"annotations": {
            "container.apparmor.security.beta.kubernetes.io/a": "runtime/default",
            "container.apparmor.security.beta.kubernetes.io/b": "localhost/p",
            "container.apparmor.security.beta.kubernetes.io/c": "",
            "other": "unconfined"}});
        let ok_spec = json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a", "securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}}]});
        assert_eq!(run(app_armor_profile, &ok_meta, &ok_spec), None);

        let spec = json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}});
        assert_eq!(
            run(app_armor_profile, &json!({}), &spec).unwrap(),
            "forbidden AppArmor profile (pod must not set AppArmor profile type to \"Unconfined\")"
        );
        let spec = spec_of(json!([
            {"name": "foo", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}
        ]));
        assert_eq!(
            run(app_armor_profile, &json!({}), &spec).unwrap(),
            "forbidden AppArmor profile (container \"foo\" must not set AppArmor profile type to \"Unconfined\")"
        );
        let meta = json!({"annotations": {
            "container.apparmor.security.beta.kubernetes.io/": "bogus",
            "container.apparmor.security.beta.kubernetes.io/a": "",
            "container.apparmor.security.beta.kubernetes.io/b": "runtime/default",
            "container.apparmor.security.beta.kubernetes.io/e": "unconfined",
            "container.apparmor.security.beta.kubernetes.io/f": "unknown"}});
        assert_eq!(
            run(app_armor_profile, &meta, &json!({})).unwrap(),
            "forbidden AppArmor profiles (annotations must not set AppArmor profile type to \
             \"container.apparmor.security.beta.kubernetes.io/=\"bogus\"\", \
             \"container.apparmor.security.beta.kubernetes.io/e=\"unconfined\"\", \
             \"container.apparmor.security.beta.kubernetes.io/f=\"unknown\"\")"
        );
    }

    #[test]
    fn non_default_capabilities() {
        let ok = spec_of(json!([
            {"name": "a", "securityContext": {"capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"], "drop": ["ALL"]}}}
        ]));
        assert_eq!(run(capabilities, &json!({}), &ok), None);
        let bad = json!({
            "initContainers": [{"name": "i", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
            "containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_RAW", "CHOWN", "NET_ADMIN"]}}}],
        });
        assert_eq!(
            run(capabilities, &json!({}), &bad).unwrap(),
            "non-default capabilities (containers \"i\", \"a\" must not include \"NET_ADMIN\", \"NET_RAW\", \"SYS_ADMIN\" in securityContext.capabilities.add)"
        );
    }

    #[test]
    fn host_namespace_sharing() {
        let ok = json!({"hostNetwork": false, "containers": []});
        assert_eq!(run(host_namespaces, &json!({}), &ok), None);
        let bad = json!({"hostPID": true, "hostNetwork": true, "hostIPC": true});
        assert_eq!(
            run(host_namespaces, &json!({}), &bad).unwrap(),
            "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"
        );
        assert_eq!(
            run(host_namespaces, &json!({}), &json!({"hostNetwork": true})).unwrap(),
            "host namespaces (hostNetwork=true)"
        );
    }

    #[test]
    fn host_path() {
        let ok = json!({"volumes": [{"name": "e", "emptyDir": {}}]});
        assert_eq!(run(host_path_volumes, &json!({}), &ok), None);
        let bad = json!({"volumes": [
            {"name": "b", "hostPath": {"path": "/b"}},
            {"name": "e", "emptyDir": {}},
            {"name": "a", "hostPath": {"path": "/a"}},
        ]});
        assert_eq!(
            run(host_path_volumes, &json!({}), &bad).unwrap(),
            "hostPath volumes (volumes \"b\", \"a\")"
        );
    }

    #[test]
    fn host_port() {
        let ok = spec_of(json!([{"name": "a", "ports": [{"containerPort": 80, "hostPort": 0}]}]));
        assert_eq!(run(host_ports, &json!({}), &ok), None);
        let one =
            spec_of(json!([{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}]));
        assert_eq!(
            run(host_ports, &json!({}), &one).unwrap(),
            "hostPort (container \"a\" uses hostPort 8080)"
        );
        let many = json!({
            "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 10000}]}],
            "ephemeralContainers": [{"name": "d", "ports": [{"containerPort": 80, "hostPort": 80}]}],
        });
        assert_eq!(
            run(host_ports, &json!({}), &many).unwrap(),
            "hostPort (containers \"a\", \"d\" use hostPorts 10000, 80, 8080)"
        );
    }

    #[test]
    fn privileged_containers() {
        let ok = spec_of(
            json!([{"name": "a", "securityContext": {"privileged": false}}, {"name": "b"}]),
        );
        assert_eq!(run(privileged, &json!({}), &ok), None);
        let bad = spec_of(json!([{"name": "c", "securityContext": {"privileged": true}}]));
        assert_eq!(
            run(privileged, &json!({}), &bad).unwrap(),
            "privileged (container \"c\" must not set securityContext.privileged=true)"
        );
    }

    #[test]
    fn proc_mounts() {
        let ok = spec_of(json!([{"name": "a", "securityContext": {"procMount": "Default"}}]));
        assert_eq!(run(proc_mount, &json!({}), &ok), None);
        let bad = spec_of(json!([
            {"name": "a", "securityContext": {"procMount": "Unmasked"}},
            {"name": "b", "securityContext": {"procMount": "Default"}},
            {"name": "c", "securityContext": {"procMount": "Other"}},
        ]));
        assert_eq!(
            run(proc_mount, &json!({}), &bad).unwrap(),
            "procMount (containers \"a\", \"c\" must not set securityContext.procMount to \"Other\", \"Unmasked\")"
        );
    }

    #[test]
    fn selinux() {
        let ok = json!({"securityContext": {"seLinuxOptions": {"level": "s0:c1"}},
            "containers": [{"name": "a", "securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}]});
        assert_eq!(run(se_linux_options, &json!({}), &ok), None);
        let bad = json!({
            "securityContext": {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}},
            "containers": [
                {"name": "a", "securityContext": {"seLinuxOptions": {"type": "container_t"}}},
                {"name": "e", "securityContext": {"seLinuxOptions": {"type": "bar"}}},
                {"name": "f", "securityContext": {"seLinuxOptions": {"user": "bar"}}},
                {"name": "g", "securityContext": {"seLinuxOptions": {"role": "baz"}}},
            ],
        });
        assert_eq!(
            run(se_linux_options, &json!({}), &bad).unwrap(),
            "seLinuxOptions (pod and containers \"e\", \"f\", \"g\" set forbidden securityContext.seLinuxOptions: types \"bar\", \"foo\"; user may not be set; role may not be set)"
        );
        let user = json!({"securityContext": {"seLinuxOptions": {"user": "bad"}}});
        assert_eq!(
            run(se_linux_options, &json!({}), &user).unwrap(),
            "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: user may not be set)"
        );
    }

    #[test]
    fn seccomp_baseline() {
        let ok = json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}}, {"name": "b"}]});
        assert_eq!(run(seccomp_profile, &json!({}), &ok), None);
        let bad = json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "a", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]});
        assert_eq!(
            run(seccomp_profile, &json!({}), &bad).unwrap(),
            "seccompProfile (pod and container \"a\" must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
    }

    #[test]
    fn selinux_before_1_31() {
        let engine = spec_of(
            json!([{"name": "a", "securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}]),
        );
        assert_eq!(run(se_linux_options, &json!({}), &engine), None);
        assert_eq!(
            run(se_linux_options_1_0, &json!({}), &engine).unwrap(),
            "seLinuxOptions (container \"a\" set forbidden securityContext.seLinuxOptions: type \"container_engine_t\")"
        );
    }

    #[test]
    fn seccomp_before_1_19() {
        let ok = json!({"annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "runtime/default",
            "container.seccomp.security.alpha.kubernetes.io/a": "localhost/p",
            "container.seccomp.security.alpha.kubernetes.io/b": "docker/default"}});
        let spec = spec_of(json!([{"name": "a"}, {"name": "b"}]));
        assert_eq!(run(seccomp_annotations, &ok, &spec), None);
        let bad = json!({"annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/a": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/other": "unconfined"}});
        assert_eq!(
            run(seccomp_annotations, &bad, &spec).unwrap(),
            "seccompProfile (forbidden annotations container.seccomp.security.alpha.kubernetes.io/a=\"unconfined\", \
             seccomp.security.alpha.kubernetes.io/pod=\"unconfined\")"
        );
    }

    #[test]
    fn sysctls_by_version() {
        let spec =
            |name: &str| json!({"securityContext": {"sysctls": [{"name": name, "value": "1"}]}});
        let reserved = spec("net.ipv4.ip_local_reserved_ports");
        assert!(run(sysctls_1_0, &json!({}), &reserved).is_some());
        assert_eq!(run(sysctls_1_27, &json!({}), &reserved), None);
        let keepalive = spec("net.ipv4.tcp_keepalive_probes");
        assert!(run(sysctls_1_27, &json!({}), &keepalive).is_some());
        assert_eq!(run(sysctls_1_29, &json!({}), &keepalive), None);
        let wmem = spec("net.ipv4.tcp_wmem");
        assert_eq!(
            run(sysctls_1_29, &json!({}), &wmem).unwrap(),
            "forbidden sysctls (net.ipv4.tcp_wmem)"
        );
        assert_eq!(run(sysctls, &json!({}), &wmem), None);
    }

    #[test]
    fn forbidden_sysctls() {
        let ok = json!({"securityContext": {"sysctls": [
            {"name": "net.ipv4.tcp_keepalive_time", "value": "60"},
            {"name": "net.ipv4.tcp_rmem", "value": "4096 87380 16777216"},
        ]}});
        assert_eq!(run(sysctls, &json!({}), &ok), None);
        let bad = json!({"securityContext": {"sysctls": [
            {"name": "kernel.msgmax", "value": "1"},
            {"name": "net.ipv4.ping_group_range", "value": "0 0"},
            {"name": "a.b", "value": "1"},
        ]}});
        assert_eq!(
            run(sysctls, &json!({}), &bad).unwrap(),
            "forbidden sysctls (kernel.msgmax, a.b)"
        );
    }

    #[test]
    fn host_process() {
        let ok = json!({"securityContext": {"windowsOptions": {"hostProcess": false}},
            "containers": [{"name": "a", "securityContext": {"windowsOptions": {"runAsUserName": "x"}}}]});
        assert_eq!(run(windows_host_process, &json!({}), &ok), None);
        let bad = json!({"securityContext": {"windowsOptions": {"hostProcess": true}},
            "containers": [{"name": "a", "securityContext": {"windowsOptions": {"hostProcess": true}}},
                           {"name": "b", "securityContext": {"windowsOptions": {"hostProcess": true}}}]});
        assert_eq!(
            run(windows_host_process, &json!({}), &bad).unwrap(),
            "hostProcess (pod and containers \"a\", \"b\" must not set securityContext.windowsOptions.hostProcess=true)"
        );
    }
}
