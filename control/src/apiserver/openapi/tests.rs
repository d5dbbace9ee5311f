//! Each check mirrors what kubectl 1.33 does with these documents:
//! `openapi3.Root.GVSpec` (index → document), `queryParamVerifierV3.HasSupport`
//! (k8s.io/cli-runtime), `Patcher.gvkSupportsPatchOpenAPIV3` and
//! `strategicpatch.PatchMetaFromOpenAPIV3` (kubectl apply), and the
//! `plaintext.tmpl` template of `kubectl explain` (k8s.io/kubectl/pkg/explain/v2).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;

/// `openapi3.Root.GVSpec`: look the group-version up in the index, fetch
/// its `serverRelativeURL`, parse the JSON.
fn gv_spec(group: &str, version: &str) -> Value {
    let index = v3_index();
    let url = index["paths"][index_path(group, version)]["serverRelativeURL"]
        .as_str()
        .unwrap_or_else(|| panic!("{group}/{version} missing from the index"))
        .to_string();
    let (path, hash) = url
        .strip_prefix("/openapi/v3/")
        .and_then(|u| u.split_once("?hash="))
        .expect("serverRelativeURL shape");
    let doc = v3_document_at(path).expect("document at the index's URL");
    assert_eq!(doc.hash, hash);
    serde_json::from_slice(&doc.bytes).expect("document is JSON")
}

fn gvk_json(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// The PATCH operations naming this GVK.
fn patch_ops<'a>(doc: &'a Value, gvk: &Value) -> Vec<&'a Value> {
    doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(|item| item.get("patch"))
        .filter(|op| &op["x-kubernetes-group-version-kind"] == gvk)
        .collect()
}

#[test]
fn index_names_every_group_version_with_its_hash() {
    let index = v3_index();
    let paths = index["paths"].as_object().expect("paths");
    for (group, version) in kinds::group_versions() {
        let key = index_path(group, version);
        let url = paths[&key]["serverRelativeURL"].as_str().expect("url");
        let hash = url.rsplit("hash=").next().unwrap_or("");
        assert_eq!(hash.len(), 128, "{url}");
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_eq!(
            v3_document(group, version).map(|d| d.hash.as_str()),
            Some(hash)
        );
    }
    assert!(paths.contains_key("api/v1"));
    assert!(paths.contains_key("apis/apps/v1"));
    assert!(v3_document("nope", "v1").is_none());
    // Built once: the same bytes every time.
    let a = v3_document("apps", "v1").expect("apps");
    let b = v3_document("apps", "v1").expect("apps");
    assert_eq!(a.bytes, b.bytes);
}

#[test]
fn every_patch_operation_declares_field_validation() {
    // queryParamVerifierV3 takes the first PATCH operation (in Go's random
    // map order) whose GVK matches and looks among its own parameters, so
    // every such operation must list fieldValidation.
    for r in kinds::RESOURCES
        .iter()
        .filter(|r| r.verbs.contains(&"patch"))
    {
        let doc = gv_spec(r.group, r.version);
        let gvk = gvk_json(r.group, r.version, r.kind);
        let ops = patch_ops(&doc, &gvk);
        assert!(!ops.is_empty(), "no PATCH for {gvk}");
        for op in ops {
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str())
                .collect();
            for wanted in ["fieldValidation", "fieldManager", "force", "dryRun"] {
                assert!(
                    names.contains(&wanted),
                    "{} lacks {wanted}",
                    op["operationId"]
                );
            }
            // gvkSupportsPatchOpenAPIV3: client-side apply uses SMP only
            // when the request body lists it.
            let content = op["requestBody"]["content"].as_object().expect("content");
            for t in [
                "application/strategic-merge-patch+json",
                "application/merge-patch+json",
                "application/json-patch+json",
                "application/apply-patch+yaml",
            ] {
                assert!(content.contains_key(t), "{} lacks {t}", op["operationId"]);
            }
        }
    }
    // The scale subresource is patched as autoscaling/v1 Scale.
    let apps = gv_spec("apps", "v1");
    let scale = patch_ops(&apps, &gvk_json("autoscaling", "v1", "Scale"));
    assert_eq!(scale.len(), 2, "deployments/scale and replicasets/scale");
}

#[test]
fn kinds_carry_their_gvk_and_refs_resolve_within_each_document() {
    for (group, version) in kinds::group_versions() {
        let doc = gv_spec(group, version);
        assert_eq!(doc["openapi"], "3.0.0");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for r in refs {
            assert!(schemas.contains_key(&r), "{group}/{version}: dangling {r}");
        }
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().expect("paths").values() {
            for verb in ["get", "put", "post", "patch", "delete"] {
                if let Some(id) = item.get(verb).and_then(|op| op["operationId"].as_str()) {
                    assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
                }
            }
        }
        for r in kinds::RESOURCES
            .iter()
            .filter(|r| r.group == group && r.version == version)
        {
            let gvk = gvk_json(r.group, r.version, r.kind);
            let found = schemas.values().any(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|l| l.contains(&gvk))
            });
            assert!(found, "no schema for {gvk}");
        }
    }
    let apps = gv_spec("apps", "v1");
    let schemas = apps["components"]["schemas"].as_object().expect("schemas");
    assert!(schemas.contains_key("io.k8s.api.core.v1.PodSpec"));
    assert!(!schemas.contains_key("io.k8s.api.core.v1.Node"));
}

#[test]
fn operations_follow_kube_apiserver_naming() {
    let core = gv_spec("", "v1");
    let pod = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
    assert_eq!(pod["patch"]["operationId"], "patchCoreV1NamespacedPod");
    assert_eq!(pod["patch"]["x-kubernetes-action"], "patch");
    assert_eq!(pod["get"]["operationId"], "readCoreV1NamespacedPod");
    assert_eq!(pod["parameters"][0]["name"], "name");
    assert_eq!(
        core["paths"]["/api/v1/namespaces/{namespace}/pods"]["delete"]["operationId"],
        "deleteCoreV1CollectionNamespacedPod"
    );
    assert_eq!(
        core["paths"]["/api/v1/pods"]["get"]["operationId"],
        "listCoreV1PodForAllNamespaces"
    );
    assert_eq!(
        core["paths"]["/api/v1/watch/namespaces/{namespace}/pods/{name}"]["get"]["x-kubernetes-action"],
        "watch"
    );
    assert_eq!(
        core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/exec"]["post"]["operationId"],
        "connectCoreV1PostNamespacedPodExec"
    );
    assert_eq!(
        core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]["x-kubernetes-group-version-kind"],
        gvk_json("policy", "v1", "Eviction")
    );
    assert_eq!(
        core["paths"]["/api/v1/nodes/{name}/status"]["patch"]["operationId"],
        "patchCoreV1NodeStatus"
    );
    let rbac = gv_spec("rbac.authorization.k8s.io", "v1");
    assert_eq!(
        rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["post"]["operationId"],
        "createRbacAuthorizationV1ClusterRole"
    );
    assert_eq!(
        rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["post"]["tags"],
        json!(["rbacAuthorization_v1"])
    );
    // Namespaces have no deletecollection in the catalog.
    assert!(core["paths"]["/api/v1/namespaces"].get("delete").is_none());
}

/// `resolveRef` of the explain template.
fn resolve_ref<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix(REF_PREFIX))
        .and_then(|name| doc["components"]["schemas"].get(name))
        .unwrap_or(schema)
}

/// The `typeGuess` template.
fn type_guess(doc: &Value, s: &Value) -> String {
    if let Some(items) = s.get("items") {
        return format!("[]{}", type_guess(doc, items));
    }
    if let Some(ap) = s.get("additionalProperties").filter(|v| v.is_object()) {
        return format!("map[string]{}", type_guess(doc, ap));
    }
    if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice)
        && s.get("properties").is_none()
    {
        return type_guess(doc, only);
    }
    if let Some(r) = s["$ref"].as_str() {
        let target = resolve_ref(doc, s);
        return match target["type"].as_str() {
            None | Some("object") => r.rsplit('.').next().unwrap_or("Object").to_string(),
            Some(t) => t.to_string(),
        };
    }
    match s["type"].as_str() {
        Some("object") | None => "Object".into(),
        Some(t) => t.into(),
    }
}

/// The `output` template: follows the field path, then lists the fields
/// of the schema reached (`name <type>` per field; with `recursive`, the
/// fields of fields, stopping at a `$ref` already on the path).
fn explain(doc: &Value, schema: &Value, path: &[&str], recursive: bool) -> Option<Vec<String>> {
    let resolved = resolve_ref(doc, schema);
    if path.is_empty() {
        let mut out = Vec::new();
        field_list(doc, schema, 0, recursive, &mut Vec::new(), &mut out);
        return Some(out);
    }
    if let Some(sub) = resolved.get("properties").and_then(|p| p.get(path[0])) {
        return explain(doc, sub, &path[1..], recursive);
    }
    if let Some(items) = resolved.get("items") {
        return explain(doc, items, path, recursive);
    }
    if let Some(ap) = resolved
        .get("additionalProperties")
        .filter(|v| v.is_object())
    {
        return explain(doc, ap, path, recursive);
    }
    resolved
        .get("allOf")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|s| explain(doc, s, path, recursive))
}

fn field_list(
    doc: &Value,
    schema: &Value,
    level: usize,
    recursive: bool,
    history: &mut Vec<String>,
    out: &mut Vec<String>,
) {
    let r = schema["$ref"].as_str().unwrap_or("").to_string();
    if !r.is_empty() && history.contains(&r) {
        return;
    }
    history.push(r);
    let resolved = resolve_ref(doc, schema);
    if let Some(props) = resolved.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            out.push(format!(
                "{}{name} <{}>",
                "  ".repeat(level),
                type_guess(doc, sub)
            ));
            if recursive {
                field_list(doc, sub, level + 1, recursive, history, out);
            }
        }
    }
    for sub in resolved
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        field_list(doc, sub, level, recursive, history, out);
    }
    if let Some(items) = resolved.get("items") {
        field_list(doc, items, level, recursive, history, out);
    }
    history.pop();
}

/// What `kubectl explain <resource>.<path>` finds: the GVK from the
/// resource's paths, the schema carrying that GVK, then the field.
fn kubectl_explain(
    group: &str,
    version: &str,
    plural: &str,
    path: &[&str],
    recursive: bool,
) -> Vec<String> {
    let doc = gv_spec(group, version);
    let prefix = if group.is_empty() {
        "/api".to_string()
    } else {
        format!("/apis/{group}")
    };
    let candidates = [
        format!("{prefix}/{version}/{plural}"),
        format!("{prefix}/{version}/{plural}/{{name}}"),
        format!("{prefix}/{version}/namespaces/{{namespace}}/{plural}"),
        format!("{prefix}/{version}/namespaces/{{namespace}}/{plural}/{{name}}"),
    ];
    let gvk = candidates
        .iter()
        .filter_map(|p| doc["paths"].get(p))
        .flat_map(|item| {
            ["get", "post", "put", "patch", "delete"]
                .into_iter()
                .filter_map(|m| item.get(m)?.get("x-kubernetes-group-version-kind"))
        })
        .next()
        .expect("GVR found in OpenAPI schema")
        .clone();
    let schema = doc["components"]["schemas"]
        .as_object()
        .and_then(|s| {
            s.values().find(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|l| l.contains(&gvk))
            })
        })
        .expect("GVK found in OpenAPI schema")
        .clone();
    explain(&doc, &schema, path, recursive).expect("field exists")
}

#[test]
fn kubectl_explain_deployment_spec_strategy() {
    let fields = kubectl_explain("apps", "v1", "deployments", &["spec", "strategy"], false);
    assert_eq!(
        fields,
        vec!["rollingUpdate <RollingUpdateDeployment>", "type <string>"]
    );
    let fields = kubectl_explain(
        "apps",
        "v1",
        "deployments",
        &["spec", "strategy", "rollingUpdate"],
        false,
    );
    assert_eq!(
        fields,
        vec!["maxSurge <IntOrString>", "maxUnavailable <IntOrString>"]
    );
}

#[test]
fn kubectl_explain_pod_containers_recursive() {
    let fields = kubectl_explain("", "v1", "pods", &["spec", "containers"], true);
    for wanted in [
        "name <string>",
        "ports <[]ContainerPort>",
        "  containerPort <integer>",
        "env <[]EnvVar>",
        "livenessProbe <Probe>",
        "  httpGet <HTTPGetAction>",
        "    port <IntOrString>",
        "resources <ResourceRequirements>",
        "  limits <map[string]Quantity>",
    ] {
        assert!(fields.iter().any(|f| f == wanted), "missing {wanted:?}");
    }
    let top = kubectl_explain("", "v1", "pods", &[], false);
    assert!(
        top.contains(&"metadata <ObjectMeta>".to_string()),
        "{top:?}"
    );
    let ev = kubectl_explain("events.k8s.io", "v1", "events", &["regarding"], false);
    assert!(ev.contains(&"fieldPath <string>".to_string()));
}

/// `strategicpatch.PatchMetaFromOpenAPIV3`: from a kind's schema, traverse a
/// property and read its patch extensions, resolving `allOf[0]` / `$ref`.
fn patch_meta(doc: &Value, kind_schema: &str, path: &[&str]) -> (Option<String>, Option<String>) {
    let schemas = &doc["components"]["schemas"];
    let mut schema = &schemas[kind_schema];
    let mut meta = (None, None);
    for key in path {
        let sub = &schema["properties"][*key];
        assert!(sub.is_object(), "unable to find api field {key}");
        meta = (
            sub["x-kubernetes-patch-strategy"]
                .as_str()
                .map(String::from),
            sub["x-kubernetes-patch-merge-key"]
                .as_str()
                .map(String::from),
        );
        let mut next = sub.get("items").unwrap_or(sub);
        if let Some(first) = next.get("allOf").and_then(|a| a.get(0)) {
            next = first;
        }
        schema = match next["$ref"].as_str() {
            Some(r) => &schemas[r.strip_prefix(REF_PREFIX).expect("local ref")],
            None => next,
        };
    }
    meta
}

#[test]
fn client_side_apply_finds_merge_keys() {
    let apps = gv_spec("apps", "v1");
    let d = "io.k8s.api.apps.v1.Deployment";
    let containers = ["spec", "template", "spec", "containers"];
    assert_eq!(
        patch_meta(&apps, d, &containers),
        (Some("merge".into()), Some("name".into()))
    );
    let ports = [&containers[..], &["ports"]].concat();
    assert_eq!(
        patch_meta(&apps, d, &ports),
        (Some("merge".into()), Some("containerPort".into()))
    );
    assert_eq!(
        patch_meta(&apps, d, &["spec", "strategy"]),
        (Some("retainKeys".into()), None)
    );
    let core = gv_spec("", "v1");
    assert_eq!(
        patch_meta(&core, "io.k8s.api.core.v1.Service", &["spec", "ports"]),
        (Some("merge".into()), Some("port".into()))
    );
    assert_eq!(
        patch_meta(&core, "io.k8s.api.core.v1.Pod", &["spec", "tolerations"]),
        (None, None)
    );
}
