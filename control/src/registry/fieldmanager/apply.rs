//! Server-side apply: merge an applied configuration into the live object
//! by the schema's list/map semantics, detect conflicts with other field
//! managers (409 unless forced), drop fields the applier no longer applies
//! and nobody else owns, and record the applier's field set.

use serde_json::{Map, Value, json};

use super::fieldset::{
    FieldSet, Path, Step, display, item_key, list_strategy, of_object, value_at,
};
use super::{Entry, entries, has_status, schema_of, set_entries};
use crate::api::status::ApiError;
use crate::schema::{ApplyStrategy, Node, Shape};

fn child(node: Option<Node<'static>>, key: &str) -> Option<Node<'static>> {
    let n = node?;
    match n.shape() {
        Shape::Map => n.values(),
        Shape::Struct => n.field(key),
        _ => None,
    }
}

/// Merges `config` into `live` (config wins; lists by their strategy).
pub fn merge(node: Option<Node<'static>>, live: &mut Value, config: &Value) {
    match (live.as_object_mut(), config.as_object()) {
        (Some(l), Some(c)) => {
            for (k, cv) in c {
                let n = child(node, k);
                match l.get_mut(k) {
                    Some(lv)
                        if lv.is_object()
                            && cv.is_object()
                            && !matches!(n.map(|x| x.shape()), Some(Shape::Opaque)) =>
                    {
                        merge(n, lv, cv)
                    }
                    Some(lv) if lv.is_array() && cv.is_array() => merge_list(n, lv, cv),
                    _ => {
                        l.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        _ => *live = config.clone(),
    }
}

fn merge_list(node: Option<Node<'static>>, live: &mut Value, config: &Value) {
    let (Some(l), Some(c)) = (live.as_array_mut(), config.as_array()) else {
        return;
    };
    match list_strategy(node, c) {
        ApplyStrategy::Map(keys) => {
            let item_node = node.and_then(|n| n.items());
            for ci in c {
                let k = item_key(ci, &keys);
                match l.iter_mut().find(|li| item_key(li, &keys) == k) {
                    Some(li) => merge(item_node, li, ci),
                    None => l.push(ci.clone()),
                }
            }
        }
        ApplyStrategy::Set => {
            for ci in c {
                if !l.contains(ci) {
                    l.push(ci.clone());
                }
            }
        }
        _ => *l = c.clone(),
    }
}

/// Removes the value at `path`.
fn remove_at(v: &mut Value, path: &[Step]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for step in parent {
        let next = match step {
            Step::Field(f) => cur.get_mut(f),
            Step::Key(k) => {
                let want: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                cur.as_array_mut().and_then(|a| {
                    a.iter_mut()
                        .find(|i| want.iter().all(|(kk, vv)| i.get(kk) == Some(vv)))
                })
            }
            Step::Value(_) | Step::Index(_) => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Step::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Step::Key(k) => {
            let want: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            if let Some(a) = cur.as_array_mut() {
                a.retain(|i| !want.iter().all(|(kk, vv)| i.get(kk) == Some(vv)));
            }
        }
        Step::Value(j) => {
            let want: Value = serde_json::from_str(j).unwrap_or(Value::Null);
            if let Some(a) = cur.as_array_mut() {
                a.retain(|i| *i != want);
            }
        }
        Step::Index(_) => {}
    }
}

fn is_leaf(set: &FieldSet, p: &Path) -> bool {
    !set.iter().any(|q| q.len() > p.len() && q.starts_with(p))
}

/// The 409 of an apply that conflicts with other managers.
fn conflict_error(conflicts: &[(String, String, Path)]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, v, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {v}"), "field": display(p)}))
        .collect();
    // structured-merge-diff's wording: one line per manager, the fields
    // listed under it when there are several.
    let mut by_manager: Vec<(String, String, Vec<String>)> = Vec::new();
    for (m, v, p) in conflicts {
        match by_manager.iter_mut().find(|(bm, bv, _)| bm == m && bv == v) {
            Some((_, _, ps)) => ps.push(display(p)),
            None => by_manager.push((m.clone(), v.clone(), vec![display(p)])),
        }
    }
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(m, v, ps)| {
            if ps.len() == 1 {
                format!("conflict with \"{m}\" using {v}: {}", ps[0])
            } else {
                let lines: Vec<String> = ps.iter().map(|p| format!("- {p}")).collect();
                format!("conflicts with \"{m}\" using {v}:\n{}", lines.join("\n"))
            }
        })
        .collect();
    let n = conflicts.len();
    let message = format!(
        "Apply failed with {n} conflict{}: {}",
        if n == 1 { "" } else { "s" },
        parts.join("\n")
    );
    ApiError::new(409, "Conflict", message).with_details(json!({"causes": causes}))
}

/// The manager kubectl applies with server-side; it may take over what
/// its client-side apply recorded (kube-apiserver's `lastAppliedManager`).
const KUBECTL: &str = "kubectl";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The fields of the live object's last client-side applied configuration.
fn last_applied_fields(
    live: &Value,
    node: Option<Node<'static>>,
    subresource: Option<&str>,
) -> Option<FieldSet> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    Some(of_object(node, &last, subresource, has_status(&last)))
}

/// Applies `config` for `manager` onto `live` (None: the object is new).
/// `defaults` defaults an object as it will be stored: conflicts are judged
/// on the result, as structured-merge-diff does, so applying a value equal
/// to the live one (after defaulting) never conflicts.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    subresource: Option<&str>,
    defaults: &dyn Fn(&mut Value),
) -> Result<Value, ApiError> {
    let node = schema_of(config);
    let status = has_status(config);
    let cfg_set = of_object(node, config, subresource, status);
    let mut list: Vec<Entry> = live.map(entries).unwrap_or_default();
    let sub = subresource.unwrap_or("");
    let mine = |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource == sub;
    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    let mut cfg = config.clone();
    if let Some(m) = cfg.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    merge(node, &mut merged, &cfg);
    let mut conflicts = Vec::new();
    if let Some(l) = live {
        let mut result = merged.clone();
        defaults(&mut result);
        for e in list.iter().filter(|e| !mine(e)) {
            for p in e.fields.intersection(&cfg_set) {
                if is_leaf(&cfg_set, p) && value_at(l, p) != value_at(&result, p) {
                    conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
                }
            }
        }
        // kubectl's server-side apply takes over the fields its client-side
        // apply recorded in the last-applied annotation.
        if !force
            && manager == KUBECTL
            && let Some(allowed) = last_applied_fields(l, node, subresource)
            && conflicts.iter().all(|(_, _, p)| allowed.contains(p))
        {
            for e in list.iter_mut().filter(|e| !mine(e)) {
                e.fields
                    .retain(|p| !conflicts.iter().any(|(_, _, c)| c == p));
            }
            conflicts.clear();
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(&conflicts));
        }
        for e in list.iter_mut().filter(|e| !mine(e)) {
            e.fields
                .retain(|p| !conflicts.iter().any(|(_, _, c)| c == p));
        }
    }
    // Fields this manager applied before, no longer applies, and nobody
    // else owns are removed.
    let previous: FieldSet = list
        .iter()
        .filter(|e| mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let others: FieldSet = list
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut gone: Vec<&Path> = previous
        .iter()
        .filter(|p| {
            !cfg_set.contains(*p)
                && !others.contains(*p)
                && !others.iter().any(|o| o.starts_with(p))
        })
        .collect();
    gone.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in gone {
        remove_at(&mut merged, p);
    }
    list.retain(|e| !mine(e));
    list.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        subresource: sub.to_string(),
        time: crate::registry::metadata::now(),
        fields: cfg_set,
    });
    if merged.get("metadata").is_none() {
        merged["metadata"] = json!({});
    }
    set_entries(&mut merged, &list);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::fieldmanager::{Operation, record};

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": image}]}}}})
    }

    #[test]
    fn apply_conflicts_with_other_managers_unless_forced() {
        let first = apply(
            None,
            &deploy(3, "nginx:1"),
            "alice",
            false,
            "apps/v1",
            None,
            &|_| {},
        )
        .unwrap();
        let mut scaled = first.clone();
        scaled["spec"]["replicas"] = json!(5);
        record(
            &mut scaled,
            Some(&first),
            "kubectl-scale",
            Operation::Update,
            None,
            "apps/v1",
        );
        let err = apply(
            Some(&scaled),
            &deploy(3, "nginx:2"),
            "alice",
            false,
            "apps/v1",
            None,
            &|_| {},
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("conflict with \"kubectl-scale\""),
            "{}",
            err.message
        );
        assert!(err.message.ends_with(".spec.replicas"));
        let forced = apply(
            Some(&scaled),
            &deploy(3, "nginx:2"),
            "alice",
            true,
            "apps/v1",
            None,
            &|_| {},
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        assert_eq!(
            forced["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2"
        );
    }

    #[test]
    fn a_port_applied_without_protocol_is_the_stored_tcp_port() {
        let mut cfg = deploy(3, "nginx:1");
        cfg["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"name": "http", "containerPort": 8080}]);
        // As stored after a client-side apply: defaulted, with protocol.
        let mut live = apply(
            None,
            &cfg,
            "kubectl-client-side-apply",
            false,
            "apps/v1",
            None,
            &|_| {},
        )
        .unwrap();
        live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
        let merged = apply(Some(&live), &cfg, "kubectl", true, "apps/v1", None, &|_| {}).unwrap();
        let ports = &merged["spec"]["template"]["spec"]["containers"][0]["ports"];
        assert_eq!(
            ports,
            &json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
        );
        let fields = serde_json::to_string(&merged["metadata"]["managedFields"]).unwrap();
        assert!(
            fields.contains(r#"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}"#),
            "{fields}"
        );
    }

    /// Defaults a container port's protocol, as the Pod defaults do.
    fn tcp(obj: &mut Value) {
        if let Some(cs) = obj
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
        {
            for port in cs
                .iter_mut()
                .filter_map(|c| c.get_mut("ports").and_then(Value::as_array_mut))
                .flatten()
            {
                if port.get("protocol").is_none() {
                    port["protocol"] = json!("TCP");
                }
            }
        }
    }

    fn with_port(mut cfg: Value) -> Value {
        cfg["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        cfg
    }

    /// The object as a client-side apply stores it: defaulted, owned by
    /// `kubectl-client-side-apply`, with the last-applied annotation.
    fn client_side_applied(cfg: &Value) -> Value {
        let mut stored = cfg.clone();
        tcp(&mut stored);
        stored["metadata"]["annotations"] =
            json!({LAST_APPLIED: serde_json::to_string(cfg).unwrap()});
        record(
            &mut stored,
            None,
            "kubectl-client-side-apply",
            Operation::Update,
            None,
            "apps/v1",
        );
        stored
    }

    #[test]
    fn an_equal_value_after_defaulting_is_no_conflict() {
        let cfg = with_port(deploy(3, "nginx:1"));
        let live = client_side_applied(&cfg);
        // Another manager applying the same manifest shares the fields.
        let shared = apply(Some(&live), &cfg, "other", false, "apps/v1", None, &tcp).unwrap();
        let managers = serde_json::to_string(&shared["metadata"]["managedFields"]).unwrap();
        assert!(managers.contains("kubectl-client-side-apply") && managers.contains("other"));
        // A changed value still conflicts.
        let err = apply(
            Some(&live),
            &with_port(deploy(4, "nginx:1")),
            "other",
            false,
            "apps/v1",
            None,
            &tcp,
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err.message.ends_with(".spec.replicas"), "{}", err.message);
    }

    #[test]
    fn kubectl_takes_over_what_its_client_side_apply_recorded() {
        let cfg = with_port(deploy(3, "nginx:1"));
        let live = client_side_applied(&cfg);
        let edited = with_port(deploy(4, "nginx:2"));
        let taken = apply(Some(&live), &edited, KUBECTL, false, "apps/v1", None, &tcp).unwrap();
        assert_eq!(taken["spec"]["replicas"], 4);
        let entries = entries(&taken);
        let csa = entries
            .iter()
            .find(|e| e.manager == "kubectl-client-side-apply")
            .unwrap();
        assert!(
            !csa.fields.iter().any(|p| display(p) == ".spec.replicas"),
            "the client-side manager no longer owns what kubectl took"
        );
        // Another manager gets the conflicts; so does kubectl for a field
        // the annotation does not name.
        assert!(apply(Some(&live), &edited, "other", false, "apps/v1", None, &tcp).is_err());
        let mut scaled = live.clone();
        scaled["spec"]["minReadySeconds"] = json!(5);
        record(
            &mut scaled,
            Some(&live),
            "kubectl-edit",
            Operation::Update,
            None,
            "apps/v1",
        );
        let mut more = edited.clone();
        more["spec"]["minReadySeconds"] = json!(7);
        let err = apply(Some(&scaled), &more, KUBECTL, false, "apps/v1", None, &tcp).unwrap_err();
        assert!(err.message.contains("kubectl-edit"), "{}", err.message);
    }

    #[test]
    fn fields_no_longer_applied_are_removed() {
        let mut cfg = deploy(3, "nginx:1");
        cfg["metadata"]["labels"] = json!({"team": "a"});
        let first = apply(None, &cfg, "alice", false, "apps/v1", None, &|_| {}).unwrap();
        assert_eq!(first["metadata"]["labels"]["team"], "a");
        let second = apply(
            Some(&first),
            &deploy(3, "nginx:1"),
            "alice",
            false,
            "apps/v1",
            None,
            &|_| {},
        )
        .unwrap();
        assert!(
            second["metadata"]
                .get("labels")
                .is_none_or(|l| l.get("team").is_none()),
            "{second}"
        );
    }
}
