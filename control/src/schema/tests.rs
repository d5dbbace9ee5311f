//! Expected values come from the upstream markers in `k8s.io/api` `types.go`
//! and kube-apiserver's v1.33 OpenAPI documents
//! (`api/openapi-spec/v3/*.json`).

use serde_json::json;

use super::*;
use crate::kinds::RESOURCES;

fn strategy(group: &str, kind: &str, path: &str) -> FieldStrategy<'static> {
    let path: Vec<&str> = path.split('.').collect();
    merge_strategy(group, "v1", kind, &path)
        .unwrap_or_else(|| panic!("{kind} has no field {}", path.join(".")))
}

fn merge(key: &str) -> PatchStrategy<'_> {
    PatchStrategy {
        merge: true,
        merge_key: Some(key),
        retain_keys: false,
    }
}

#[test]
fn every_extension_marker_names_a_real_field() {
    let generated = generate::generate();
    assert!(
        generated.missing.is_empty(),
        "markers for fields the schemas lack: {:?}",
        generated.missing
    );
}

#[test]
fn every_served_kind_has_a_schema_carrying_its_gvk() {
    let s = schemas();
    for r in RESOURCES {
        let name = s
            .schema_name(r.group, r.version, r.kind)
            .unwrap_or_else(|| panic!("no schema for {}", r.kind));
        let gvks = &s.definitions()[name]["x-kubernetes-group-version-kind"];
        assert!(
            gvks.as_array()
                .is_some_and(|l| l
                    .contains(&json!({"group": r.group, "kind": r.kind, "version": r.version}))),
            "{name}: {gvks}"
        );
        if !r.list_kind.is_empty() {
            assert!(s.schema_name(r.group, r.version, r.list_kind).is_some());
        }
    }
    assert_eq!(
        s.schema_name("apps", "v1", "Deployment"),
        Some("io.k8s.api.apps.v1.Deployment")
    );
    assert_eq!(
        s.schema_name("autoscaling", "v1", "Scale"),
        Some("io.k8s.api.autoscaling.v1.Scale")
    );
}

#[test]
fn every_ref_points_at_a_definition() {
    fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let s = schemas();
    let mut all = Vec::new();
    for v in s.definitions().values() {
        refs(v, &mut all);
    }
    assert!(all.len() > 100);
    for r in all {
        assert!(s.resolve_ref(r).is_some(), "dangling {r}");
    }
}

#[test]
fn pod_template_lists_merge_by_their_upstream_keys() {
    let c = "spec.template.spec.containers";
    let containers = strategy("apps", "Deployment", c);
    assert_eq!(containers.patch, merge("name"));
    assert_eq!(containers.apply, ApplyStrategy::Map(vec!["name"]));

    // ports: SMP merges by containerPort alone, SSA keys on the pair.
    let ports = strategy("apps", "Deployment", &format!("{c}.ports"));
    assert_eq!(ports.patch, merge("containerPort"));
    assert_eq!(
        ports.apply,
        ApplyStrategy::Map(vec!["containerPort", "protocol"])
    );
    assert_eq!(
        strategy("apps", "Deployment", &format!("{c}.env")).patch,
        merge("name")
    );
    assert_eq!(
        strategy("apps", "Deployment", &format!("{c}.volumeMounts")).patch,
        merge("mountPath")
    );
    // envFrom, args and tolerations have no patch strategy: replaced whole.
    for field in [format!("{c}.envFrom"), format!("{c}.args")] {
        let s = strategy("apps", "Deployment", &field);
        assert_eq!(s.patch, PatchStrategy::default(), "{field}");
        assert_eq!(s.apply, ApplyStrategy::Atomic, "{field}");
    }
    let tolerations = strategy("", "Pod", "spec.tolerations");
    assert_eq!(tolerations.patch, PatchStrategy::default());
    assert_eq!(tolerations.apply, ApplyStrategy::Atomic);

    let volumes = strategy("", "Pod", "spec.volumes");
    assert_eq!(
        volumes.patch,
        PatchStrategy {
            merge: true,
            merge_key: Some("name"),
            retain_keys: true
        }
    );
    assert_eq!(
        strategy("", "Pod", "spec.imagePullSecrets").patch,
        merge("name")
    );
    assert_eq!(
        strategy("", "Pod", "spec.initContainers").patch,
        merge("name")
    );
    assert_eq!(
        strategy("", "Pod", "spec.topologySpreadConstraints").apply,
        ApplyStrategy::Map(vec!["topologyKey", "whenUnsatisfiable"])
    );
}

#[test]
fn service_node_status_and_metadata_lists() {
    let ports = strategy("", "Service", "spec.ports");
    assert_eq!(ports.patch, merge("port"));
    assert_eq!(ports.apply, ApplyStrategy::Map(vec!["port", "protocol"]));
    assert_eq!(
        strategy("", "Pod", "status.conditions").patch,
        merge("type")
    );
    assert_eq!(
        strategy("apps", "Deployment", "status.conditions").apply,
        ApplyStrategy::Map(vec!["type"])
    );
    assert_eq!(
        strategy("", "Node", "status.addresses").patch,
        merge("type")
    );
    let finalizers = strategy("", "ConfigMap", "metadata.finalizers");
    assert_eq!(
        finalizers.patch,
        PatchStrategy {
            merge: true,
            merge_key: None,
            retain_keys: false
        }
    );
    assert_eq!(finalizers.apply, ApplyStrategy::Set);
    assert_eq!(
        strategy("apps", "ReplicaSet", "metadata.ownerReferences").patch,
        merge("uid")
    );
    assert_eq!(
        strategy("discovery.k8s.io", "EndpointSlice", "endpoints").apply,
        ApplyStrategy::Atomic
    );
    assert_eq!(
        strategy("discovery.k8s.io", "EndpointSlice", "endpoints.addresses").apply,
        ApplyStrategy::Set
    );
    assert_eq!(
        strategy("", "ServiceAccount", "secrets").patch,
        merge("name")
    );
}

#[test]
fn structs_and_maps_follow_map_type_markers() {
    assert!(
        strategy("apps", "Deployment", "spec.strategy")
            .patch
            .retain_keys
    );
    assert_eq!(
        strategy("apps", "Deployment", "spec.selector").apply,
        ApplyStrategy::Atomic
    );
    assert_eq!(
        strategy("", "Pod", "spec.nodeSelector").apply,
        ApplyStrategy::Atomic
    );
    assert_eq!(
        strategy("", "Pod", "metadata.labels").apply,
        ApplyStrategy::Granular
    );
    assert_eq!(strategy("", "Pod", "spec").apply, ApplyStrategy::Granular);
    // ObjectReference is atomic, but a PV's claimRef is marked granular.
    assert_eq!(
        strategy("", "Binding", "target").apply,
        ApplyStrategy::Atomic
    );
    assert_eq!(
        strategy("", "PersistentVolume", "spec.claimRef").apply,
        ApplyStrategy::Granular
    );
    // A map key steps into the map's values.
    let s = schemas();
    let limits = s
        .kind("", "v1", "Pod")
        .and_then(|n| n.path(&["spec", "containers", "resources", "limits", "cpu"]))
        .expect("limits.cpu");
    assert_eq!(limits.shape(), Shape::Scalar);
    assert_eq!(
        limits.schema_name(),
        Some("io.k8s.apimachinery.pkg.api.resource.Quantity")
    );
    assert!(merge_strategy("apps", "v1", "Deployment", &["spec", "nope"]).is_none());
    assert!(merge_strategy("apps", "v1", "Nope", &["spec"]).is_none());
}

#[test]
fn scalars_take_kube_apiserver_v3_shapes() {
    let d = schemas().definitions();
    assert_eq!(
        d["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
        "int-or-string"
    );
    assert_eq!(
        d["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["oneOf"],
        json!([{"type": "integer"}, {"type": "string"}])
    );
    assert_eq!(
        d["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"],
        json!([{"type": "string"}, {"type": "number"}])
    );
    // A field with a description next to its type is wrapped in allOf.
    let strategy = &d["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
    assert_eq!(
        strategy["allOf"],
        json!([{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}])
    );
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    // Only core/v1 Event requires metadata.
    assert!(d["io.k8s.api.core.v1.Pod"].get("required").is_none());
    let mut required: Vec<&str> = d["io.k8s.api.core.v1.Event"]["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    required.sort_unstable();
    assert_eq!(required, ["involvedObject", "metadata"]);
}

fn deployment(spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "any/key": "x"}},
        "spec": spec,
    })
}

#[test]
fn unknown_fields_are_named_like_strict_decoding() {
    let body = deployment(json!({
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
                 "resources": {"limits": {"cpu": "500m", "memory": 128}}},
                {"name": "b", "image": "nginx", "imagePullPolice": "Always",
                 "ports": [{"containerPort": 81, "bogus": true}]},
            ]},
        },
        "replica": 1,
    }));
    assert_eq!(
        unknown_fields("apps", "v1", "Deployment", &body),
        vec![
            "spec.replica",
            "spec.template.spec.containers[1].imagePullPolice",
            "spec.template.spec.containers[1].ports[0].bogus",
        ]
    );
}

#[test]
fn unknown_fields_in_metadata_and_top_level_are_case_sensitive() {
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labelz": {}, "annotations": {"a": "b"}},
        "data": {"any-key": "v", "other.key": "w"},
        "Data": {},
    });
    assert_eq!(
        unknown_fields("", "v1", "ConfigMap", &body),
        vec!["Data", "metadata.labelz"]
    );
    assert!(unknown_fields("", "v1", "Nope", &body).is_empty());
}

#[test]
fn raw_values_and_wrong_types_are_not_unknown_fields() {
    // managedFields[].fieldsV1 is raw JSON; a string where an object is
    // expected is a decode error, not an unknown field.
    let body = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}]},
        "spec": {"containers": "oops", "securityContext": {"sysctls": [{"name": "a", "value": "1"}]}},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.244.1.2"}]},
    });
    assert!(unknown_fields("", "v1", "Pod", &body).is_empty());
}

#[test]
fn strict_decoding_message_matches_kube_apiserver() {
    assert_eq!(
        strict_decoding_message(&["spec.foo".to_string(), "bar".to_string()]),
        r#"strict decoding error: unknown field "spec.foo", unknown field "bar""#
    );
}
