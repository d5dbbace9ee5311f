//! Cluster-scoped core kinds: Namespace (`SetDefaults_Namespace`,
//! `SetDefaults_NamespaceStatus`, the strategy's finalizer, and
//! `ValidateNamespace*`) and Node (`SetDefaults_NodeStatus`, podCIDR
//! mirroring, `ValidateNode`, `ValidateNodeUpdate`).

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Namespace, Node, Taint};
use serde_json::{Value, json};

use super::field::{self, BadValue, Cause, Path, go_quote, go_string_slice};
use super::formats::{NameRule, is_valid_label_value, parse_ip_sloppy, validate_cidr_legacy};
use super::json::{Obj, child, present, str_of};
use super::metadata::{validate_label_name, validate_object_meta, validate_object_meta_update};
use super::pod_defaults::canonicalize_resource_list;
use super::resources::{parse_quantity, validate_quantity_value, validate_resource_name};

/// Namespace defaults: the `kubernetes.io/metadata.name` label and phase
/// `Active`.
pub fn default_namespace(obj: &mut Obj) {
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty()
        && let Some(labels) = child(obj, "metadata").and_then(|m| child(m, "labels"))
    {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    if let Some(status) = child(obj, "status")
        && str_of(status, "phase").is_empty()
    {
        status.insert("phase".into(), json!("Active"));
    }
}

/// The namespace strategy's `PrepareForCreate`: phase `Active` and the
/// `kubernetes` finalizer (create only: the namespace controller removes it
/// later through `/finalize`).
pub fn prepare_namespace_create(obj: &mut Obj) {
    if let Some(spec) = child(obj, "spec") {
        let list = spec.entry("finalizers").or_insert_with(|| json!([]));
        if !list.is_array() {
            *list = json!([]);
        }
        if let Some(a) = list.as_array_mut()
            && !a.iter().any(|f| f == "kubernetes")
        {
            a.push(json!("kubernetes"));
        }
    }
    obj.insert("status".into(), json!({"phase": "Active"}));
}

fn validate_spec_finalizers(ns: &Namespace) -> Vec<Cause> {
    let p = Path::new("spec").child("finalizers");
    let mut errs = Vec::new();
    for f in ns.spec.iter().flat_map(|s| s.finalizers.iter().flatten()) {
        errs.extend(super::metadata::validate_finalizer_name(f, &p));
        errs.extend(super::metadata::validate_kube_finalizer_name(f, &p));
    }
    errs
}

/// `ValidateNamespace`.
pub fn validate_namespace(ns: &Namespace) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &ns.metadata,
        false,
        NameRule::Dns1123Label,
        &Path::new("metadata"),
    );
    errs.extend(validate_spec_finalizers(ns));
    errs
}

/// `ValidateNamespaceUpdate` (spec and status changes are dropped by the
/// strategy, so only metadata is checked).
pub fn validate_namespace_update(new: &Namespace, old: &Namespace) -> Vec<Cause> {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// `ValidateNamespaceStatusUpdate`.
pub fn validate_namespace_status_update(new: &Namespace, old: &Namespace) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let phase = new
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let p = Path::new("status").child("Phase");
    if new.metadata.deletion_timestamp.is_none() {
        if phase != "Active" {
            errs.push(field::invalid(
                &p,
                phase,
                "may only be 'Active' if `deletionTimestamp` is empty",
            ));
        }
    } else if phase != "Terminating" {
        errs.push(field::invalid(
            &p,
            phase,
            "may only be 'Terminating' if `deletionTimestamp` is not empty",
        ));
    }
    errs
}

/// `ValidateNamespaceFinalizeUpdate`.
pub fn validate_namespace_finalize_update(new: &Namespace, old: &Namespace) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_spec_finalizers(new));
    errs
}

/// Node defaults: allocatable from capacity, podCIDR ↔ podCIDRs, canonical
/// quantities.
pub fn default_node(obj: &mut Obj) {
    if let Some(spec) = present(obj, "spec") {
        let cidr = str_of(spec, "podCIDR").to_string();
        let first = spec
            .get("podCIDRs")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_string);
        match (cidr.is_empty(), first) {
            (false, None) => {
                spec.insert("podCIDRs".into(), json!([cidr]));
            }
            (_, Some(f)) => {
                spec.insert("podCIDR".into(), json!(f));
            }
            _ => {}
        }
    }
    if let Some(status) = present(obj, "status") {
        canonicalize_resource_list(status.get_mut("capacity"));
        canonicalize_resource_list(status.get_mut("allocatable"));
        if status.get("allocatable").is_none_or(Value::is_null)
            && let Some(cap) = status.get("capacity").cloned()
        {
            status.insert("allocatable".into(), cap);
        }
    }
}

/// Go's `%#v` of a `core.Taint`.
fn go_taint(t: &Taint) -> String {
    format!(
        "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:<nil>}}",
        go_quote(&t.key),
        go_quote(t.value.as_deref().unwrap_or("")),
        go_quote(&t.effect)
    )
}

/// `validateNodeTaints`.
fn validate_taints(taints: &[Taint], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut unique: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (i, t) in taints.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_label_name(&t.key, &p.child("key")));
        let value = t.value.as_deref().unwrap_or("");
        let msgs = is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(field::invalid(&p.child("value"), value, &msgs.join(";")));
        }
        const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
        if t.effect.is_empty() {
            errs.push(field::required(&p.child("effect"), ""));
        } else if !EFFECTS.contains(&t.effect.as_str()) {
            errs.push(field::not_supported(
                &p.child("effect"),
                t.effect.as_str(),
                EFFECTS,
            ));
        }
        if !unique
            .entry(t.effect.as_str())
            .or_default()
            .insert(t.key.as_str())
        {
            let mut d = field::duplicate(&p, BadValue::Go(go_taint(t)));
            d.message
                .push_str(": taints must be unique by key and effect pair");
            errs.push(d);
        }
    }
    errs
}

/// `ValidateNodeResources`: capacity and allocatable names and values.
fn validate_node_resources(node: &Node) -> Vec<Cause> {
    let mut errs = Vec::new();
    let status = node.status.clone().unwrap_or_default();
    for (name, list) in [
        ("capacity", status.capacity),
        ("allocatable", status.allocatable),
    ] {
        let p = Path::new("status").child(name);
        for (k, q) in list.iter().flatten() {
            let kp = p.key(k);
            errs.extend(validate_resource_name(k, &kp));
            match parse_quantity(q, &kp) {
                Ok(q) => errs.extend(validate_quantity_value(k, &q, &kp)),
                Err(e) => errs.push(e),
            }
        }
    }
    errs
}

fn validate_pod_cidrs(node: &Node) -> Vec<Cause> {
    let cidrs = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidrs.clone())
        .unwrap_or_default();
    let p = Path::new("spec").child("podCIDRs");
    let mut errs = Vec::new();
    for (i, c) in cidrs.iter().enumerate() {
        errs.extend(validate_cidr_legacy(c, &p.index(i)));
    }
    if errs.is_empty() && cidrs.len() > 1 {
        let v6: Vec<bool> = cidrs
            .iter()
            .map(|c| {
                c.split('/')
                    .next()
                    .and_then(parse_ip_sloppy)
                    .is_some_and(|ip| ip.is_ipv6())
            })
            .collect();
        if cidrs.len() > 2 || v6[0] == v6[1] {
            errs.push(field::invalid(
                &p,
                BadValue::Go(go_string_slice(Some(&cidrs))),
                "may specify no more than one CIDR for each IP family",
            ));
        }
    }
    errs
}

/// `ValidateNode`.
pub fn validate_node(node: &Node) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let mut errs = validate_object_meta(&node.metadata, false, NameRule::Dns1123Subdomain, &mp);
    // Upstream reports taint errors under metadata.taints.
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    errs.extend(validate_taints(&taints, &mp.child("taints")));
    errs.extend(validate_node_resources(node));
    errs.extend(validate_pod_cidrs(node));
    errs
}

/// `ValidateNodeUpdate`: only labels, taints, unschedulable, status and a
/// first podCIDR/providerID may change.
pub fn validate_node_update(
    new: &Node,
    old: &Node,
    new_value: &Value,
    old_value: &Value,
) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &mp);
    errs.extend(validate_node_resources(new));
    let mut seen = HashSet::new();
    let addresses = new
        .status
        .as_ref()
        .and_then(|s| s.addresses.clone())
        .unwrap_or_default();
    for (i, a) in addresses.iter().enumerate() {
        if !seen.insert((a.type_.clone(), a.address.clone())) {
            errs.push(field::duplicate(
                &Path::new("status").child("addresses").index(i),
                BadValue::Go(format!(
                    "core.NodeAddress{{Type:{}, Address:{}}}",
                    go_quote(&a.type_),
                    go_quote(&a.address)
                )),
            ));
        }
    }
    let (ns, os) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    let old_cidrs = os.pod_cidrs.clone().unwrap_or_default();
    let new_cidrs = ns.pod_cidrs.clone().unwrap_or_default();
    const CIDR_MSG: &str = "node updates may not change podCIDR except from \"\" to valid";
    if !old_cidrs.is_empty() {
        if old_cidrs.len() != new_cidrs.len() {
            errs.push(field::forbidden(
                &Path::new("spec").child("podCIDRs"),
                CIDR_MSG,
            ));
        } else {
            for (i, c) in old_cidrs.iter().enumerate() {
                if *c != new_cidrs[i] {
                    errs.push(field::forbidden(
                        &Path::new("spec").child("podCIDRs").index(i),
                        CIDR_MSG,
                    ));
                }
            }
        }
    }
    let old_provider = os.provider_id.clone().unwrap_or_default();
    if !old_provider.is_empty() && Some(old_provider) != ns.provider_id {
        errs.push(field::forbidden(
            &Path::new("spec").child("providerID"),
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    errs.extend(validate_taints(
        ns.taints.as_deref().unwrap_or_default(),
        &mp.child("taints"),
    ));
    // Whatever else differs in the spec is a protected field.
    let strip = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(json!({}));
        if let Some(o) = spec.as_object_mut() {
            for k in [
                "taints",
                "unschedulable",
                "podCIDR",
                "podCIDRs",
                "providerID",
                "configSource",
            ] {
                o.remove(k);
            }
            o.retain(|_, v| !v.is_null());
        }
        spec
    };
    if strip(new_value) != strip(old_value) {
        errs.push(field::forbidden(
            &Path::new(""),
            "node updates may only change labels, taints, or capacity (or configSource, if the DynamicKubeletConfig feature gate is enabled)",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(errs: &[Cause]) -> Vec<String> {
        errs.iter().map(Cause::error_string).collect()
    }

    // Namespace defaults and ValidateNamespace.
    #[test]
    fn namespace() {
        let mut ns = json!({"metadata": {"name": "team-a"}});
        default_namespace(ns.as_object_mut().unwrap());
        prepare_namespace_create(ns.as_object_mut().unwrap());
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert!(validate_namespace(&serde_json::from_value(ns).unwrap()).is_empty());
        let bad: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "team.a"}})).unwrap();
        assert_eq!(
            msgs(&validate_namespace(&bad)),
            vec!["metadata.name: Invalid value: \"team.a\": must not contain dots"]
        );
    }

    // ValidateNamespaceStatusUpdate.
    #[test]
    fn namespace_status() {
        let old: Namespace = serde_json::from_value(json!({"metadata": {"name": "a", "resourceVersion": "1"}, "status": {"phase": "Active"}})).unwrap();
        let new: Namespace = serde_json::from_value(json!({"metadata": {"name": "a", "resourceVersion": "1"}, "status": {"phase": "Terminating"}})).unwrap();
        assert_eq!(
            msgs(&validate_namespace_status_update(&new, &old)),
            vec![
                "status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty"
            ]
        );
    }

    // ValidateNode / validateNodeTaints / ValidateNodeUpdate.
    #[test]
    fn node() {
        let mut n = json!({"metadata": {"name": "node-1"}, "spec": {"podCIDR": "10.244.1.0/24", "taints": [
            {"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "Sometimes"}
        ]}, "status": {"capacity": {"cpu": "2", "memory": "4096Mi"}}});
        default_node(n.as_object_mut().unwrap());
        assert_eq!(n["spec"]["podCIDRs"], json!(["10.244.1.0/24"]));
        assert_eq!(
            n["status"]["allocatable"],
            json!({"cpu": "2", "memory": "4Gi"})
        );
        let node: Node = serde_json::from_value(n.clone()).unwrap();
        assert_eq!(
            msgs(&validate_node(&node)),
            vec![
                "metadata.taints[1]: Duplicate value: core.Taint{Key:\"a\", Value:\"\", Effect:\"NoSchedule\", TimeAdded:<nil>}: taints must be unique by key and effect pair",
                "metadata.taints[2].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
            ]
        );
        let mut old = json!({"metadata": {"name": "node-1", "resourceVersion": "1"}, "spec": {"podCIDRs": ["10.244.1.0/24"], "podCIDR": "10.244.1.0/24"}});
        let mut new = old.clone();
        new["spec"]["podCIDRs"] = json!(["10.244.2.0/24"]);
        new["spec"]["podCIDR"] = json!("10.244.2.0/24");
        new["spec"]["unschedulable"] = json!(true);
        let errs = validate_node_update(
            &serde_json::from_value(new.clone()).unwrap(),
            &serde_json::from_value(old.clone()).unwrap(),
            &new,
            &old,
        );
        assert_eq!(
            msgs(&errs),
            vec![
                "spec.podCIDRs[0]: Forbidden: node updates may not change podCIDR except from \"\" to valid"
            ]
        );
        old["spec"]["externalID"] = json!("x");
        let errs = validate_node_update(
            &serde_json::from_value(new.clone()).unwrap(),
            &serde_json::from_value(old.clone()).unwrap(),
            &new,
            &old,
        );
        assert_eq!(
            errs.last().unwrap().error_string(),
            "[]: Forbidden: node updates may only change labels, taints, or capacity (or configSource, if the DynamicKubeletConfig feature gate is enabled)"
        );
    }
}
