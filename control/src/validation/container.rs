//! Container validation (pkg/apis/core/validation/validation.go:
//! `validateContainers`, `validateInitContainers`, `validateContainerCommon`,
//! `validateContainerPorts`, `ValidateEnv`, `ValidateEnvFrom`,
//! `ValidateVolumeMounts`, `validatePullPolicy`, probes, lifecycle handlers,
//! `ValidateSecurityContext`, host port conflicts, `validateEphemeralContainers`).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, EphemeralContainer, LifecycleHandler, Probe,
    SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::field::{self, Cause, Path};
use super::formats::{
    NameRule, is_config_map_key, is_env_var_name, is_http_header_name, is_valid_port_name,
    is_valid_port_num, validate_dns1123_label,
};
use super::metadata::validate_nonnegative;
use super::resources::validate_resource_requirements;

/// `supportedPortProtocols`, sorted as `sets.List` returns them.
pub const PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// The volumes of a pod, by name (the `vols` map of `ValidateVolumes`).
pub type VolumeNames = HashSet<String>;

/// `ValidatePortNumOrName`.
pub fn validate_port_num_or_name(port: &IntOrString, path: &Path) -> Vec<Cause> {
    match port {
        IntOrString::Int(n) => is_valid_port_num(i64::from(*n))
            .into_iter()
            .map(|m| field::invalid(path, *n, &m))
            .collect(),
        IntOrString::String(s) => is_valid_port_name(s)
            .into_iter()
            .map(|m| field::invalid(path, s, &m))
            .collect(),
    }
}

/// `validateContainerPorts`.
fn validate_ports(ports: &[ContainerPort], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                errs.extend(
                    msgs.iter()
                        .map(|m| field::invalid(&p.child("name"), name, m)),
                );
            } else if !names.insert(name.to_string()) {
                errs.push(field::duplicate(&p.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(field::required(&p.child("containerPort"), ""));
        } else {
            for m in is_valid_port_num(port.container_port.into()) {
                errs.push(field::invalid(
                    &p.child("containerPort"),
                    port.container_port,
                    &m,
                ));
            }
        }
        if let Some(hp) = port.host_port.filter(|h| *h != 0) {
            for m in is_valid_port_num(hp.into()) {
                errs.push(field::invalid(&p.child("hostPort"), hp, &m));
            }
        }
        match port.protocol.as_deref().unwrap_or("") {
            "" => errs.push(field::required(&p.child("protocol"), "")),
            proto if !PORT_PROTOCOLS.contains(&proto) => {
                errs.push(field::not_supported(
                    &p.child("protocol"),
                    proto,
                    PORT_PROTOCOLS,
                ));
            }
            _ => {}
        }
    }
    errs
}

/// `ValidateEnv` (with relaxed names, the 1.33 default).
fn validate_env(env: &[EnvVar], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, ev) in env.iter().enumerate() {
        let p = path.index(i);
        if ev.name.is_empty() {
            errs.push(field::required(&p.child("name"), ""));
        }
        for m in is_env_var_name(&ev.name) {
            errs.push(field::invalid(&p.child("name"), &ev.name, &m));
        }
        let Some(from) = &ev.value_from else { continue };
        let vp = p.child("valueFrom");
        let mut sources = 0;
        if let Some(f) = &from.field_ref {
            sources += 1;
            if f.field_path.is_empty() {
                errs.push(field::required(
                    &vp.child("fieldRef").child("fieldPath"),
                    "",
                ));
            }
        }
        if let Some(r) = &from.resource_field_ref {
            sources += 1;
            if r.resource.is_empty() {
                errs.push(field::required(
                    &vp.child("resourceFieldRef").child("resource"),
                    "",
                ));
            }
        }
        for (key, sel) in [
            (
                "configMapKeyRef",
                from.config_map_key_ref.as_ref().map(|s| (&s.name, &s.key)),
            ),
            (
                "secretKeyRef",
                from.secret_key_ref.as_ref().map(|s| (&s.name, &s.key)),
            ),
        ] {
            let Some((name, k)) = sel else { continue };
            sources += 1;
            let sp = vp.child(key);
            if name.is_empty() {
                errs.push(field::required(&sp.child("name"), ""));
            } else {
                for m in NameRule::Dns1123Subdomain.check(name, false) {
                    errs.push(field::invalid(&sp.child("name"), name, &m));
                }
            }
            if k.is_empty() {
                errs.push(field::required(&sp.child("key"), ""));
            } else {
                for m in is_config_map_key(k) {
                    errs.push(field::invalid(&sp.child("key"), k, &m));
                }
            }
        }
        if sources == 0 {
            errs.push(field::invalid(&vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
        } else if ev.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errs.push(field::invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(field::invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

/// `ValidateEnvFrom`.
fn validate_env_from(env_from: &[EnvFromSource], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, ev) in env_from.iter().enumerate() {
        let p = path.index(i);
        if let Some(prefix) = ev.prefix.as_deref().filter(|s| !s.is_empty()) {
            for m in is_env_var_name(prefix) {
                errs.push(field::invalid(&p.child("prefix"), prefix, &m));
            }
        }
        let mut sources = 0;
        for (key, name) in [
            ("configMapRef", ev.config_map_ref.as_ref().map(|r| &r.name)),
            ("secretRef", ev.secret_ref.as_ref().map(|r| &r.name)),
        ] {
            let Some(name) = name else { continue };
            sources += 1;
            if name.is_empty() {
                errs.push(field::required(&p.child(key).child("name"), ""));
            } else {
                for m in NameRule::Dns1123Subdomain.check(name, false) {
                    errs.push(field::invalid(&p.child(key).child("name"), name, &m));
                }
            }
        }
        if sources == 0 {
            errs.push(field::invalid(
                &p,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(field::invalid(
                &p,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

/// `validateLocalDescendingPath`.
pub fn validate_local_descending_path(target: &str, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if target.starts_with('/') {
        errs.push(field::invalid(path, target, "must be a relative path"));
    }
    errs.extend(validate_path_no_backsteps(target, path));
    errs
}

/// `validatePathNoBacksteps`.
pub fn validate_path_no_backsteps(target: &str, path: &Path) -> Vec<Cause> {
    if target.split('/').any(|p| p == "..") {
        vec![field::invalid(path, target, "must not contain '..'")]
    } else {
        Vec::new()
    }
}

/// `ValidateVolumeMounts`.
fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &VolumeNames,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut points = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(field::required(&p.child("name"), ""));
        }
        if !volumes.contains(&m.name) {
            errs.push(field::not_found(&p.child("name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(field::required(&p.child("mountPath"), ""));
        }
        if !points.insert(m.mount_path.clone()) {
            errs.push(field::invalid(
                &p.child("mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        let sub_path = m.sub_path.as_deref().unwrap_or("");
        if !sub_path.is_empty() {
            errs.extend(validate_local_descending_path(
                sub_path,
                &path.child("subPath"),
            ));
        }
        if let Some(expr) = m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
            if !sub_path.is_empty() {
                errs.push(field::invalid(
                    &p.child("subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(validate_local_descending_path(
                expr,
                &path.child("subPathExpr"),
            ));
        }
        if let Some(prop) = m.mount_propagation.as_deref() {
            const SUPPORTED: &[&str] = &["Bidirectional", "HostToContainer", "None"];
            if !SUPPORTED.contains(&prop) {
                errs.push(field::not_supported(
                    &path.child("mountPropagation"),
                    prop,
                    SUPPORTED,
                ));
            }
        }
    }
    errs
}

/// `validatePullPolicy`.
fn validate_pull_policy(policy: &str, path: &Path) -> Vec<Cause> {
    match policy {
        "Always" | "IfNotPresent" | "Never" => Vec::new(),
        "" => vec![field::required(path, "")],
        other => vec![field::not_supported(
            path,
            other,
            &["Always", "IfNotPresent", "Never"],
        )],
    }
}

/// `validateHandler` for probes and lifecycle hooks: exactly one action.
#[allow(clippy::too_many_arguments)]
fn validate_handler(
    exec: Option<&Vec<String>>,
    http_get: Option<&k8s_openapi::api::core::v1::HTTPGetAction>,
    tcp_port: Option<&IntOrString>,
    grpc_port: Option<i32>,
    sleep_seconds: Option<i64>,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut handlers = 0;
    let mut one = |name: &str, errs: &mut Vec<Cause>| {
        if handlers > 0 {
            errs.push(field::forbidden(
                &path.child(name),
                "may not specify more than 1 handler type",
            ));
            false
        } else {
            handlers += 1;
            true
        }
    };
    if let Some(cmd) = exec
        && one("exec", &mut errs)
        && cmd.is_empty()
    {
        errs.push(field::required(&path.child("exec").child("command"), ""));
    }
    if let Some(h) = http_get
        && one("httpGet", &mut errs)
    {
        let p = path.child("httpGet");
        if h.path.as_deref().unwrap_or("").is_empty() {
            errs.push(field::required(&p.child("path"), ""));
        }
        errs.extend(validate_port_num_or_name(&h.port, &p.child("port")));
        let scheme = h.scheme.as_deref().unwrap_or("");
        if scheme != "HTTP" && scheme != "HTTPS" {
            errs.push(field::not_supported(
                &p.child("scheme"),
                scheme,
                &["HTTP", "HTTPS"],
            ));
        }
        for header in h.http_headers.iter().flatten() {
            for m in is_http_header_name(&header.name) {
                errs.push(field::invalid(&p.child("httpHeaders"), &header.name, &m));
            }
        }
    }
    if let Some(port) = tcp_port
        && one("tcpSocket", &mut errs)
    {
        errs.extend(validate_port_num_or_name(
            port,
            &path.child("tcpSocket").child("port"),
        ));
    }
    if let Some(port) = grpc_port
        && one("grpc", &mut errs)
    {
        for m in is_valid_port_num(port.into()) {
            errs.push(field::invalid(&path.child("grpc").child("port"), port, &m));
        }
    }
    if let Some(secs) = sleep_seconds
        && one("sleep", &mut errs)
        && secs < 0
    {
        errs.push(field::invalid(
            &path.child("sleep").child("seconds"),
            secs,
            "must be non-negative integer",
        ));
    }
    if handlers == 0 {
        errs.push(field::required(path, "must specify a handler type"));
    }
    errs
}

/// `validateProbe`; `single_success` adds the liveness/startup rule.
fn validate_probe(probe: Option<&Probe>, single_success: bool, path: &Path) -> Vec<Cause> {
    let Some(p) = probe else { return Vec::new() };
    let mut errs = validate_handler(
        p.exec
            .as_ref()
            .map(|e| e.command.as_ref().unwrap_or(const { &Vec::new() })),
        p.http_get.as_ref(),
        p.tcp_socket.as_ref().map(|t| &t.port),
        p.grpc.as_ref().map(|g| g.port),
        None,
        path,
    );
    for (name, v) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        errs.extend(validate_nonnegative(
            v.unwrap_or(0).into(),
            &path.child(name),
        ));
    }
    if let Some(t) = p.termination_grace_period_seconds
        && t <= 0
    {
        errs.push(field::invalid(
            &path.child("terminationGracePeriodSeconds"),
            t,
            "must be greater than 0",
        ));
    }
    if single_success && p.success_threshold.unwrap_or(0) != 1 {
        errs.push(field::invalid(
            &path.child("successThreshold"),
            p.success_threshold.unwrap_or(0),
            "must be 1",
        ));
    }
    errs
}

fn validate_lifecycle_handler(h: &LifecycleHandler, path: &Path) -> Vec<Cause> {
    validate_handler(
        h.exec
            .as_ref()
            .map(|e| e.command.as_ref().unwrap_or(const { &Vec::new() })),
        h.http_get.as_ref(),
        h.tcp_socket.as_ref().map(|t| &t.port),
        None,
        h.sleep.as_ref().map(|s| s.seconds),
        path,
    )
}

/// `ValidateSecurityContext` (the checks a user can trip on a container).
fn validate_security_context(sc: Option<&SecurityContext>, path: &Path) -> Vec<Cause> {
    let Some(sc) = sc else { return Vec::new() };
    let mut errs = Vec::new();
    for (name, v) in [
        ("runAsUser", sc.run_as_user),
        ("runAsGroup", sc.run_as_group),
    ] {
        if let Some(id) = v
            && !(0..=i64::from(i32::MAX)).contains(&id)
        {
            errs.push(field::invalid(
                &path.child(name),
                id,
                "must be between 0 and 2147483647, inclusive",
            ));
        }
    }
    if sc.allow_privilege_escalation == Some(false) && sc.privileged == Some(true) {
        errs.push(field::invalid(
            path,
            field::BadValue::Go(
                "core.SecurityContext{Privileged:(*bool)(true), AllowPrivilegeEscalation:(*bool)(false)}"
                    .to_string(),
            ),
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
    if let Some(pm) = sc.proc_mount.as_deref()
        && pm != "Default"
        && pm != "Unmasked"
    {
        errs.push(field::not_supported(
            &path.child("procMount"),
            pm,
            &["Default", "Unmasked"],
        ));
    }
    errs
}

/// `validateContainerCommon`: what every kind of container must satisfy.
fn validate_container_common(c: &Container, volumes: &VolumeNames, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let name_path = path.child("name");
    if c.name.is_empty() {
        errs.push(field::required(&name_path, ""));
    } else {
        errs.extend(validate_dns1123_label(&c.name, &name_path));
    }
    if c.image.as_deref().unwrap_or("").is_empty() {
        errs.push(field::required(&path.child("image"), ""));
    }
    match c.termination_message_policy.as_deref().unwrap_or("") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(field::required(
            &path.child("terminationMessagePolicy"),
            "must be 'File' or 'FallbackToLogsOnError'",
        )),
        other => errs.push(field::not_supported(
            &path.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    errs.extend(validate_ports(
        c.ports.as_deref().unwrap_or_default(),
        &path.child("ports"),
    ));
    errs.extend(validate_env(
        c.env.as_deref().unwrap_or_default(),
        &path.child("env"),
    ));
    errs.extend(validate_env_from(
        c.env_from.as_deref().unwrap_or_default(),
        &path.child("envFrom"),
    ));
    errs.extend(validate_volume_mounts(
        c.volume_mounts.as_deref().unwrap_or_default(),
        volumes,
        &path.child("volumeMounts"),
    ));
    errs.extend(validate_pull_policy(
        c.image_pull_policy.as_deref().unwrap_or(""),
        &path.child("imagePullPolicy"),
    ));
    if let Some(r) = &c.resources {
        errs.extend(validate_resource_requirements(r, &path.child("resources")));
    }
    errs.extend(validate_security_context(
        c.security_context.as_ref(),
        &path.child("securityContext"),
    ));
    errs
}

fn validate_lifecycle_and_probes(c: &Container, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if let Some(lc) = &c.lifecycle {
        for (name, h) in [("postStart", &lc.post_start), ("preStop", &lc.pre_stop)] {
            if let Some(h) = h {
                errs.extend(validate_lifecycle_handler(
                    h,
                    &path.child("lifecycle").child(name),
                ));
            }
        }
    }
    errs.extend(validate_probe(
        c.liveness_probe.as_ref(),
        true,
        &path.child("livenessProbe"),
    ));
    errs.extend(validate_probe(
        c.readiness_probe.as_ref(),
        false,
        &path.child("readinessProbe"),
    ));
    errs.extend(validate_probe(
        c.startup_probe.as_ref(),
        true,
        &path.child("startupProbe"),
    ));
    errs
}

/// Host ports must be unique per protocol and host IP
/// (`AccumulateUniqueHostPorts`).
fn host_port_conflicts<'a>(
    containers: impl Iterator<Item = (Path, &'a Container)>,
    seen: &mut HashSet<String>,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (path, c) in containers {
        for (j, port) in c.ports.iter().flatten().enumerate() {
            let Some(hp) = port.host_port.filter(|h| *h != 0) else {
                continue;
            };
            let key = format!(
                "{}/{}/{}",
                port.host_ip.as_deref().unwrap_or(""),
                port.protocol.as_deref().unwrap_or(""),
                hp
            );
            if !seen.insert(key.clone()) {
                errs.push(field::duplicate(
                    &path.child("ports").index(j).child("hostPort"),
                    key,
                ));
            }
        }
    }
    errs
}

/// `validateContainers`: at least one, names unique, probes and lifecycle
/// allowed, no per-container restartPolicy.
pub fn validate_containers(
    containers: &[Container],
    volumes: &VolumeNames,
    path: &Path,
) -> Vec<Cause> {
    if containers.is_empty() {
        return vec![field::required(path, "")];
    }
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(c, volumes, &p));
        if !names.insert(c.name.clone()) {
            errs.push(field::duplicate(&p.child("name"), &c.name));
        }
        errs.extend(validate_lifecycle_and_probes(c, &p));
        if c.restart_policy.is_some() {
            errs.push(field::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs.extend(host_port_conflicts(
        containers
            .iter()
            .enumerate()
            .map(|(i, c)| (path.index(i), c)),
        &mut HashSet::new(),
    ));
    errs
}

/// `validateInitContainers`: names unique across all containers; only
/// restartable (sidecar) init containers may have probes and hooks.
pub fn validate_init_containers(
    init: &[Container],
    containers: &[Container],
    volumes: &VolumeNames,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut names: HashSet<String> = containers.iter().map(|c| c.name.clone()).collect();
    for (i, c) in init.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(c, volumes, &p));
        if !names.insert(c.name.clone()) {
            errs.push(field::duplicate(&p.child("name"), &c.name));
        }
        match c.restart_policy.as_deref() {
            Some("Always") => errs.extend(validate_lifecycle_and_probes(c, &p)),
            Some(other) => errs.push(field::not_supported(
                &p.child("restartPolicy"),
                other,
                &["Always"],
            )),
            None => {
                const MSG: &str = "may not be set for init containers without restartPolicy=Always";
                if c.lifecycle.is_some() {
                    errs.push(field::forbidden(&p.child("lifecycle"), MSG));
                }
                for (name, set) in [
                    ("livenessProbe", c.liveness_probe.is_some()),
                    ("readinessProbe", c.readiness_probe.is_some()),
                    ("startupProbe", c.startup_probe.is_some()),
                ] {
                    if set {
                        errs.push(field::forbidden(&p.child(name), MSG));
                    }
                }
            }
        }
    }
    errs
}

/// The fields of `EphemeralContainerCommon` an ephemeral container may not
/// set (`allowedEphemeralContainerFields` with `false`): it must not be
/// relied on for the pod's service.
const NOT_FOR_EPHEMERAL: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];

/// Whether a field holds more than Go's zero value (an absent field, an
/// empty object, list or string, `false` and 0 are all unset).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Object(m) => m.values().any(is_set),
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => !s.is_empty(),
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
    }
}

/// An ephemeral container as the `Container` its common fields make
/// (`(*core.Container)(&ec.EphemeralContainerCommon)`).
fn as_container(ec: &EphemeralContainer) -> Container {
    let mut v = serde_json::to_value(ec).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("targetContainerName");
    }
    serde_json::from_value(v).unwrap_or_default()
}

/// `validateEphemeralContainers`: the common container rules; names unique
/// across every kind of container; a target that names a container or init
/// container; none of ports, resources, probes, lifecycle; no subPath.
pub fn validate_ephemeral_containers(
    ephemeral: &[EphemeralContainer],
    containers: &[Container],
    init: &[Container],
    volumes: &VolumeNames,
    path: &Path,
) -> Vec<Cause> {
    const FORBIDDEN: &str = "cannot be set for an Ephemeral Container";
    let mut errs = Vec::new();
    let others: HashSet<&str> = containers
        .iter()
        .chain(init)
        .map(|c| c.name.as_str())
        .collect();
    let mut names = others.clone();
    for (i, ec) in ephemeral.iter().enumerate() {
        let p = path.index(i);
        let c = as_container(ec);
        errs.extend(validate_container_common(&c, volumes, &p));
        let image = c.image.as_deref().unwrap_or("");
        if image.trim() != image {
            errs.push(field::invalid(
                &p.child("image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
        if !names.insert(ec.name.as_str()) {
            errs.push(field::duplicate(&p.child("name"), &ec.name));
        }
        if let Some(target) = ec
            .target_container_name
            .as_deref()
            .filter(|t| !t.is_empty())
            && !others.contains(target)
        {
            errs.push(field::not_found(&p.child("targetContainerName"), target));
        }
        let fields = serde_json::to_value(ec).unwrap_or_default();
        for name in NOT_FOR_EPHEMERAL {
            if fields.get(*name).is_some_and(is_set) {
                errs.push(field::forbidden(&p.child(name), FORBIDDEN));
            }
        }
        for (j, m) in ec.volume_mounts.iter().flatten().enumerate() {
            let mp = p.child("volumeMounts").index(j);
            if m.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
                errs.push(field::forbidden(&mp.child("subPath"), FORBIDDEN));
            }
            if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
                errs.push(field::forbidden(&mp.child("subPathExpr"), FORBIDDEN));
            }
        }
    }
    errs
}

/// `validateContainersOnlyForPod`: no surrounding whitespace in images.
pub fn validate_images_for_pod(containers: &[Container], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let image = c.image.as_deref().unwrap_or("");
        if image.trim() != image {
            errs.push(field::invalid(
                &path.index(i).child("image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn containers(v: serde_json::Value) -> Vec<Container> {
        serde_json::from_value(v).unwrap()
    }

    fn check(v: serde_json::Value) -> Vec<String> {
        let vols: VolumeNames = ["data".to_string()].into_iter().collect();
        validate_containers(
            &containers(v),
            &vols,
            &Path::new("spec").child("containers"),
        )
        .iter()
        .map(Cause::error_string)
        .collect()
    }

    fn ok_container() -> serde_json::Value {
        serde_json::json!({"name": "c", "image": "nginx", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"})
    }

    // validateContainerCommon: image required, names unique (validateContainers).
    #[test]
    fn image_required_and_duplicate_names() {
        let mut a = ok_container();
        a["image"] = serde_json::json!("");
        a["name"] = serde_json::json!("a");
        assert_eq!(
            check(serde_json::json!([a, ok_container(), ok_container()])),
            vec![
                "spec.containers[0].image: Required value",
                "spec.containers[2].name: Duplicate value: \"c\"",
            ]
        );
        assert_eq!(
            check(serde_json::json!([])),
            vec!["spec.containers: Required value"]
        );
    }

    // validateContainerPorts.
    #[test]
    fn ports() {
        let mut c = ok_container();
        c["ports"] = serde_json::json!([
            {"containerPort": 70000, "protocol": "TCP"},
            {"containerPort": 80, "protocol": "HTTP", "name": "web"},
            {"containerPort": 81, "protocol": "TCP", "name": "web"}
        ]);
        assert_eq!(
            check(serde_json::json!([c])),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[2].name: Duplicate value: \"web\"",
            ]
        );
    }

    // ValidateEnv / ValidateVolumeMounts / validatePullPolicy.
    #[test]
    fn env_mounts_pull_policy() {
        let mut c = ok_container();
        c["env"] = serde_json::json!([{"name": ""}, {"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]);
        c["volumeMounts"] = serde_json::json!([{"name": "missing", "mountPath": "/a"}, {"name": "data", "mountPath": "/a"}]);
        c["imagePullPolicy"] = serde_json::json!("Sometimes");
        assert_eq!(
            check(serde_json::json!([c])),
            vec![
                "spec.containers[0].env[0].name: Required value",
                "spec.containers[0].env[0].name: Invalid value: \"\": environment variable name must be non-empty",
                "spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
                "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
                "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/a\": must be unique",
                "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            ]
        );
    }

    // validateProbe / validateHandler / liveness successThreshold.
    #[test]
    fn probes() {
        let mut c = ok_container();
        c["livenessProbe"] = serde_json::json!({"successThreshold": 2, "periodSeconds": -1, "timeoutSeconds": 1, "failureThreshold": 3});
        c["readinessProbe"] = serde_json::json!({"httpGet": {"path": "/", "port": "http-port-too-long", "scheme": "FTP"}, "exec": {"command": ["x"]}});
        assert_eq!(
            check(serde_json::json!([c])),
            vec![
                "spec.containers[0].livenessProbe: Required value: must specify a handler type",
                "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].readinessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
            ]
        );
    }

    // validateInitContainers: unique names across lists, sidecar rules.
    #[test]
    fn init_containers() {
        let mut i = ok_container();
        i["readinessProbe"] = serde_json::json!({"exec": {"command": ["true"]}});
        let errs: Vec<String> = validate_init_containers(
            &containers(serde_json::json!([i])),
            &containers(serde_json::json!([ok_container()])),
            &VolumeNames::new(),
            &Path::new("spec").child("initContainers"),
        )
        .iter()
        .map(Cause::error_string)
        .collect();
        assert_eq!(
            errs,
            vec![
                "spec.initContainers[0].name: Duplicate value: \"c\"",
                "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            ]
        );
    }

    // AccumulateUniqueHostPorts.
    #[test]
    fn host_ports_unique() {
        let mut a = ok_container();
        a["ports"] =
            serde_json::json!([{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]);
        let mut b = ok_container();
        b["name"] = serde_json::json!("d");
        b["ports"] =
            serde_json::json!([{"containerPort": 81, "hostPort": 8080, "protocol": "TCP"}]);
        assert_eq!(
            check(serde_json::json!([a, b])),
            vec!["spec.containers[1].ports[0].hostPort: Duplicate value: \"/TCP/8080\""]
        );
    }
}
