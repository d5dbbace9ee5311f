//! `ValidatePodSpec` (core validation) and the spec-level validators it
//! calls: restart and DNS policy, DNS config, tolerations, host aliases,
//! scheduling gates, readiness gates, topology spread, affinity, pod
//! security context, host network ports, names of referenced objects.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{
    Affinity, NodeSelectorTerm, PodDNSConfig, PodSpec, Toleration, TopologySpreadConstraint,
};

use super::container::{
    validate_containers, validate_ephemeral_containers, validate_init_containers,
};
use super::field::{self, BadValue, Cause, Path};
use super::formats::{
    NameRule, inclusive_range_error, is_valid_label_value, validate_dns1123_label,
    validate_dns1123_subdomain, validate_ip_legacy, validate_qualified_name,
};
use super::metadata::{validate_label_name, validate_labels};
use super::selector::validate_label_selector;
use super::volume::validate_volumes;

/// `validateRestartPolicy`.
fn validate_restart_policy(policy: &str, path: &Path) -> Vec<Cause> {
    match policy {
        "Always" | "OnFailure" | "Never" => Vec::new(),
        "" => vec![field::required(path, "")],
        other => vec![field::not_supported(
            path,
            other,
            &["Always", "OnFailure", "Never"],
        )],
    }
}

/// `validateDNSPolicy`.
fn validate_dns_policy(policy: &str, path: &Path) -> Vec<Cause> {
    const VALID: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
    match policy {
        p if VALID.contains(&p) => Vec::new(),
        "" => vec![field::required(path, "")],
        other => vec![field::not_supported(path, other, VALID)],
    }
}

/// `validatePodDNSConfig`.
fn validate_dns_config(config: Option<&PodDNSConfig>, policy: &str, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if policy == "None" && config.is_none() {
        errs.push(field::required(
            path,
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    let Some(c) = config else { return errs };
    let servers = c.nameservers.as_deref().unwrap_or_default();
    if policy == "None" && servers.is_empty() {
        errs.push(field::required(
            &path.child("nameservers"),
            "must provide at least one DNS nameserver when `dnsPolicy` is None",
        ));
    }
    if servers.len() > 3 {
        errs.push(field::invalid(
            &path.child("nameservers"),
            BadValue::Go(field::go_string_slice(Some(servers))),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in servers.iter().enumerate() {
        errs.extend(validate_ip_legacy(ns, &path.child("nameservers").index(i)));
    }
    let searches = c.searches.as_deref().unwrap_or_default();
    if searches.len() > 32 {
        errs.push(field::invalid(
            &path.child("searches"),
            BadValue::Go(field::go_string_slice(Some(searches))),
            "must not have more than 32 search paths",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        let s = if s != "." { s.trim_end_matches('.') } else { s };
        if s != "." {
            errs.extend(validate_dns1123_subdomain(
                s,
                &path.child("searches").index(i),
            ));
        }
    }
    for (i, o) in c.options.iter().flatten().enumerate() {
        if o.name.as_deref().unwrap_or("").is_empty() {
            errs.push(field::required(
                &path.child("options").index(i),
                "Option.Name must not be empty",
            ));
        }
    }
    errs
}

/// `validateTaintEffect` with empty allowed.
fn validate_taint_effect(effect: &str, allow_empty: bool, path: &Path) -> Vec<Cause> {
    const VALID: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if effect.is_empty() && !allow_empty {
        return vec![field::required(path, "")];
    }
    if !VALID.contains(&effect) {
        return vec![field::not_supported(path, effect, VALID)];
    }
    Vec::new()
}

/// `ValidateTolerations`.
pub fn validate_tolerations(tolerations: &[Toleration], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let key = t.key.as_deref().unwrap_or("");
        let op = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        if !key.is_empty() {
            errs.extend(validate_label_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(field::invalid(
                &p.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(field::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(field::invalid(&p.child("operator"), value, &msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(field::invalid(
                        &p.child("operator"),
                        BadValue::Go(go_toleration(t)),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(field::not_supported(
                &p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            errs.extend(validate_taint_effect(effect, true, &p.child("effect")));
        }
    }
    errs
}

/// Go's `%#v` of a `core.Toleration`.
pub fn go_toleration(t: &Toleration) -> String {
    let q = |s: &Option<String>| field::go_quote(s.as_deref().unwrap_or(""));
    let secs = match t.toleration_seconds {
        None => "(*int64)(nil)".to_string(),
        Some(s) => format!("(*int64)({s})"),
    };
    format!(
        "core.Toleration{{Key:{}, Operator:{}, Value:{}, Effect:{}, TolerationSeconds:{}}}",
        q(&t.key),
        q(&t.operator),
        q(&t.value),
        q(&t.effect),
        secs
    )
}

/// `validateTopologySpreadConstraints` (the checks users hit).
fn validate_topology_spread(constraints: &[TopologySpreadConstraint], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut seen = HashSet::new();
    for (i, c) in constraints.iter().enumerate() {
        let p = path.index(i);
        if c.max_skew <= 0 {
            errs.push(field::invalid(
                &p.child("maxSkew"),
                c.max_skew,
                "must be greater than zero",
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(field::required(&p.child("topologyKey"), "can not be empty"));
        } else {
            errs.extend(validate_label_name(
                &c.topology_key,
                &p.child("topologyKey"),
            ));
        }
        const WHEN: &[&str] = &["DoNotSchedule", "ScheduleAnyway"];
        if !WHEN.contains(&c.when_unsatisfiable.as_str()) {
            errs.push(field::not_supported(
                &p.child("whenUnsatisfiable"),
                c.when_unsatisfiable.as_str(),
                WHEN,
            ));
        }
        if !seen.insert((c.topology_key.clone(), c.when_unsatisfiable.clone())) {
            errs.push(field::duplicate(
                &p,
                BadValue::Go(format!("{{{}, {}}}", c.topology_key, c.when_unsatisfiable)),
            ));
        }
        if let Some(min) = c.min_domains {
            if min <= 0 {
                errs.push(field::invalid(
                    &p.child("minDomains"),
                    min,
                    "must be greater than 0",
                ));
            } else if c.when_unsatisfiable != "DoNotSchedule" {
                errs.push(field::invalid(
                    &p.child("minDomains"),
                    min,
                    &format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {}",
                        c.when_unsatisfiable
                    ),
                ));
            }
        }
        if let Some(sel) = &c.label_selector {
            errs.extend(validate_label_selector(sel, &p.child("labelSelector")));
        }
    }
    errs
}

fn validate_node_selector_term(term: &NodeSelectorTerm, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (j, req) in term.match_expressions.iter().flatten().enumerate() {
        let rp = path.child("matchExpressions").index(j);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.push(field::required(
                &rp.child("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(field::forbidden(
                &rp.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "Gt" | "Lt" if values.len() != 1 => errs.push(field::required(
                &rp.child("values"),
                "must be specified single value when `operator` is 'Lt' or 'Gt'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
            other => errs.push(field::invalid(
                &rp.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        errs.extend(validate_label_name(&req.key, &rp.child("key")));
    }
    errs
}

/// `validateAffinity`: node affinity terms and pod (anti-)affinity terms.
fn validate_affinity(affinity: Option<&Affinity>, path: &Path) -> Vec<Cause> {
    let Some(a) = affinity else { return Vec::new() };
    let mut errs = Vec::new();
    if let Some(na) = &a.node_affinity {
        let np = path.child("nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            let rp = np.child("requiredDuringSchedulingIgnoredDuringExecution");
            if req.node_selector_terms.is_empty() {
                errs.push(field::required(
                    &rp.child("nodeSelectorTerms"),
                    "must have at least one node selector term",
                ));
            }
            for (i, term) in req.node_selector_terms.iter().enumerate() {
                errs.extend(validate_node_selector_term(
                    term,
                    &rp.child("nodeSelectorTerms").index(i),
                ));
            }
        }
        for (i, pref) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            let pp = np
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            if !(1..=100).contains(&pref.weight) {
                errs.push(field::invalid(
                    &pp.child("weight"),
                    pref.weight,
                    "must be in the range 1-100",
                ));
            }
            errs.extend(validate_node_selector_term(
                &pref.preference,
                &pp.child("preference"),
            ));
        }
    }
    for (name, terms) in [
        (
            "podAffinity",
            a.pod_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
        (
            "podAntiAffinity",
            a.pod_anti_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
    ] {
        let Some((required, preferred)) = terms else {
            continue;
        };
        let ap = path.child(name);
        let check_term =
            |t: &k8s_openapi::api::core::v1::PodAffinityTerm, tp: &Path, errs: &mut Vec<Cause>| {
                if t.topology_key.is_empty() {
                    errs.push(field::required(
                        &tp.child("topologyKey"),
                        "can not be empty",
                    ));
                } else {
                    errs.extend(validate_label_name(
                        &t.topology_key,
                        &tp.child("topologyKey"),
                    ));
                }
                if let Some(sel) = &t.label_selector {
                    errs.extend(validate_label_selector(sel, &tp.child("labelSelector")));
                }
            };
        for (i, t) in required.iter().flatten().enumerate() {
            check_term(
                t,
                &ap.child("requiredDuringSchedulingIgnoredDuringExecution")
                    .index(i),
                &mut errs,
            );
        }
        for (i, w) in preferred.iter().flatten().enumerate() {
            let wp = ap
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            if !(1..=100).contains(&w.weight) {
                errs.push(field::invalid(
                    &wp.child("weight"),
                    w.weight,
                    "must be in the range 1-100",
                ));
            }
            check_term(
                &w.pod_affinity_term,
                &wp.child("podAffinityTerm"),
                &mut errs,
            );
        }
    }
    errs
}

/// `validatePodHostNetworkDeps`: with host networking, host ports equal
/// container ports.
fn validate_host_network(spec: &PodSpec, path: &Path) -> Vec<Cause> {
    if spec.host_network != Some(true) {
        return Vec::new();
    }
    let mut errs = Vec::new();
    for (list, cs) in [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ] {
        for (i, c) in cs.into_iter().flatten().enumerate() {
            for (j, port) in c.ports.iter().flatten().enumerate() {
                if let Some(hp) = port.host_port
                    && hp != port.container_port
                {
                    errs.push(field::invalid(
                        &path
                            .child(list)
                            .index(i)
                            .child("ports")
                            .index(j)
                            .child("containerPort"),
                        port.container_port,
                        "must match `hostPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    errs
}

/// `ValidatePreemptionPolicy`.
pub fn validate_preemption_policy(policy: &str, path: &Path) -> Vec<Cause> {
    match policy {
        "PreemptLowerPriority" | "Never" => Vec::new(),
        "" => vec![field::required(path, "")],
        other => vec![field::not_supported(
            path,
            other,
            &["PreemptLowerPriority", "Never"],
        )],
    }
}

fn check_name(rule: NameRule, value: &str, path: &Path, errs: &mut Vec<Cause>) {
    for m in rule.check(value, false) {
        errs.push(field::invalid(path, value, &m));
    }
}

/// `ValidatePodSpec`.
pub fn validate_pod_spec(spec: &PodSpec, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if spec.termination_grace_period_seconds.is_none() {
        errs.push(field::required(
            &path.child("terminationGracePeriodSeconds"),
            "",
        ));
    }
    let (volumes, vol_errs) = validate_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &path.child("volumes"),
    );
    errs.extend(vol_errs);
    errs.extend(validate_containers(
        &spec.containers,
        &volumes,
        &path.child("containers"),
    ));
    errs.extend(validate_init_containers(
        spec.init_containers.as_deref().unwrap_or_default(),
        &spec.containers,
        &volumes,
        &path.child("initContainers"),
    ));
    errs.extend(validate_ephemeral_containers(
        spec.ephemeral_containers.as_deref().unwrap_or_default(),
        &spec.containers,
        spec.init_containers.as_deref().unwrap_or_default(),
        &volumes,
        &path.child("ephemeralContainers"),
    ));
    errs.extend(validate_host_network(spec, path));
    errs.extend(validate_restart_policy(
        spec.restart_policy.as_deref().unwrap_or(""),
        &path.child("restartPolicy"),
    ));
    let dns_policy = spec.dns_policy.as_deref().unwrap_or("");
    errs.extend(validate_dns_policy(dns_policy, &path.child("dnsPolicy")));
    errs.extend(validate_labels(
        spec.node_selector.as_ref(),
        &path.child("nodeSelector"),
    ));
    if let Some(sc) = &spec.security_context {
        let sp = path.child("securityContext");
        for (name, v) in [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
            ("fsGroup", sc.fs_group),
        ] {
            if let Some(id) = v
                && !(0..=i64::from(i32::MAX)).contains(&id)
            {
                errs.push(field::invalid(
                    &sp.child(name),
                    id,
                    &inclusive_range_error(0, i32::MAX.into()),
                ));
            }
        }
    }
    for (i, s) in spec.image_pull_secrets.iter().flatten().enumerate() {
        if s.name.is_empty() {
            errs.push(field::required(
                &path.child("imagePullSecrets").index(i).child("name"),
                "",
            ));
        }
    }
    errs.extend(validate_affinity(
        spec.affinity.as_ref(),
        &path.child("affinity"),
    ));
    errs.extend(validate_dns_config(
        spec.dns_config.as_ref(),
        dns_policy,
        &path.child("dnsConfig"),
    ));
    for (i, g) in spec.readiness_gates.iter().flatten().enumerate() {
        errs.extend(validate_qualified_name(
            &g.condition_type,
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    let mut gates = HashSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let gp = path.child("schedulingGates").index(i);
        errs.extend(validate_qualified_name(&g.name, &gp.child("name")));
        if !gates.insert(g.name.clone()) {
            errs.push(field::duplicate(&gp, &g.name));
        }
    }
    errs.extend(validate_topology_spread(
        spec.topology_spread_constraints
            .as_deref()
            .unwrap_or_default(),
        &path.child("topologySpreadConstraints"),
    ));
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        check_name(
            NameRule::Dns1123Subdomain,
            sa,
            &path.child("serviceAccountName"),
            &mut errs,
        );
    }
    if let Some(node) = spec.node_name.as_deref().filter(|s| !s.is_empty()) {
        check_name(
            NameRule::Dns1123Subdomain,
            node,
            &path.child("nodeName"),
            &mut errs,
        );
    }
    if let Some(ads) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(field::invalid(
            &path.child("activeDeadlineSeconds"),
            ads,
            &inclusive_range_error(1, i32::MAX.into()),
        ));
    }
    if let Some(h) = spec.hostname.as_deref().filter(|s| !s.is_empty()) {
        errs.extend(validate_dns1123_label(h, &path.child("hostname")));
    }
    if let Some(s) = spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        errs.extend(validate_dns1123_label(s, &path.child("subdomain")));
    }
    if let Some(t) = spec.tolerations.as_deref().filter(|t| !t.is_empty()) {
        errs.extend(validate_tolerations(t, &path.child("tolerations")));
    }
    for (i, ha) in spec.host_aliases.iter().flatten().enumerate() {
        let hp = path.child("hostAliases").index(i);
        errs.extend(validate_ip_legacy(&ha.ip, &hp.child("ip")));
        for (j, h) in ha.hostnames.iter().flatten().enumerate() {
            errs.extend(validate_dns1123_subdomain(
                h,
                &hp.child("hostnames").index(j),
            ));
        }
    }
    if let Some(pc) = spec
        .priority_class_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        check_name(
            NameRule::Dns1123Subdomain,
            pc,
            &path.child("priorityClassName"),
            &mut errs,
        );
    }
    if let Some(rc) = spec.runtime_class_name.as_deref() {
        check_name(
            NameRule::Dns1123Subdomain,
            rc,
            &path.child("runtimeClassName"),
            &mut errs,
        );
    }
    if let Some(pp) = spec.preemption_policy.as_deref() {
        errs.extend(validate_preemption_policy(
            pp,
            &path.child("preemptionPolicy"),
        ));
    }
    if let Some(os) = &spec.os
        && os.name != "linux"
        && os.name != "windows"
    {
        errs.push(field::not_supported(
            &path.child("os").child("name"),
            os.name.as_str(),
            &["linux", "windows"],
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut base = serde_json::json!({
            "containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30
        });
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn check(v: serde_json::Value) -> Vec<String> {
        validate_pod_spec(&spec(v), &Path::new("spec"))
            .iter()
            .map(Cause::error_string)
            .collect()
    }

    #[test]
    fn valid_spec_passes() {
        assert!(check(serde_json::json!({})).is_empty());
    }

    // validateRestartPolicy / validateDNSPolicy.
    #[test]
    fn policies() {
        assert_eq!(
            check(serde_json::json!({"restartPolicy": "Sometimes", "dnsPolicy": "Google"})),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
            ]
        );
        assert_eq!(
            check(serde_json::json!({"dnsPolicy": "None"})),
            vec![
                "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
            ]
        );
    }

    // ValidateTolerations.
    #[test]
    fn tolerations() {
        assert_eq!(
            check(serde_json::json!({"tolerations": [
                {"operator": "Equal", "value": "x"},
                {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5},
                {"key": "k", "operator": "Is"}
            ]})),
            vec![
                "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                "spec.tolerations[1].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
                "spec.tolerations[2].operator: Unsupported value: \"Is\": supported values: \"Equal\", \"Exists\"",
            ]
        );
    }

    // ValidatePodSpec: names of referenced objects, activeDeadlineSeconds.
    #[test]
    fn references_and_deadlines() {
        assert_eq!(
            check(
                serde_json::json!({"serviceAccountName": "Bad", "activeDeadlineSeconds": 0, "nodeSelector": {"disk": "s s"}})
            ),
            vec![
                "spec.nodeSelector: Invalid value: \"s s\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                "spec.serviceAccountName: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            ]
        );
    }

    // validateTopologySpreadConstraints / validateAffinity.
    #[test]
    fn scheduling_constraints() {
        assert_eq!(
            check(serde_json::json!({
                "topologySpreadConstraints": [{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}
            })),
            vec![
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one node selector term",
                "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero",
                "spec.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value: \"Maybe\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\"",
            ]
        );
    }
}
