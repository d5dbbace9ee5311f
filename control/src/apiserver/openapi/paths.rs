//! The `paths` of one group-version's document: every route kube-apiserver's
//! endpoint installer registers for a resource's verbs and subresources
//! (`k8s.io/apiserver/pkg/endpoints/installer.go`), with its operation id,
//! `x-kubernetes-action` and `x-kubernetes-group-version-kind`.

use serde_json::{Map, Value, json};

use super::params;
use crate::api::resource::{Resource, Subresource};
use crate::schema::Schemas;

/// `Core`, `Apps`, `RbacAuthorization`: the group in operation ids.
pub(super) fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(capitalize)
        .collect()
}

/// `core_v1`, `apps_v1`, `rbacAuthorization_v1`: the operation tag.
pub(super) fn tag(group: &str, version: &str) -> String {
    let camel = group_camel(group);
    let mut chars = camel.chars();
    let lower: String = chars
        .next()
        .map(|c| c.to_ascii_lowercase())
        .into_iter()
        .chain(chars)
        .collect();
    format!("{lower}_{version}")
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub(super) fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// Operations of one group-version: builds operation ids and bodies.
struct Builder<'a> {
    schemas: &'a Schemas,
    group: &'a str,
    version: &'a str,
    gv: String,
    paths: Map<String, Value>,
}

struct Op<'a> {
    verb: &'a str,
    id: String,
    action: &'a str,
    description: String,
    gvk: (&'a str, &'a str, &'a str),
    parameters: Vec<Value>,
    request: Option<Value>,
    responses: Value,
}

impl<'a> Builder<'a> {
    fn insert(&mut self, path: String, path_params: Vec<Value>, op: Op<'_>) {
        let entry = self
            .paths
            .entry(path)
            .or_insert_with(|| json!({"parameters": path_params}));
        let mut body = json!({
            "description": op.description,
            "operationId": op.id,
            "responses": op.responses,
            "tags": [tag(self.group, self.version)],
            "x-kubernetes-action": op.action,
            "x-kubernetes-group-version-kind": {
                "group": op.gvk.0, "kind": op.gvk.2, "version": op.gvk.1,
            },
        });
        if !op.parameters.is_empty() {
            body["parameters"] = Value::Array(op.parameters);
        }
        if let Some(request) = op.request {
            body["requestBody"] = request;
        }
        entry[op.verb] = body;
    }

    fn schema(&self, group: &str, version: &str, kind: &str) -> String {
        self.schemas
            .schema_name(group, version, kind)
            .map(str::to_string)
            .unwrap_or_default()
    }

    fn resource(&mut self, r: &Resource) {
        let kind = r.kind;
        let gvk = (r.group, r.version, kind);
        let schema = self.schema(r.group, r.version, kind);
        let list_schema = self.schema(r.group, r.version, r.list_kind);
        let status = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
        let watch_event = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
        let prefix = prefix(r.group, r.version);
        let gv = self.gv.clone();
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let (collection, scope_params) = if r.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", r.plural),
                vec![params::namespace(), params::pretty()],
            )
        } else {
            (format!("{prefix}/{}", r.plural), vec![params::pretty()])
        };
        let item = format!("{collection}/{{name}}");
        let item_params = || {
            let mut p = vec![params::name(kind)];
            p.extend(scope_params.clone());
            p
        };
        let has = |verb: &str| r.verbs.contains(&verb);

        if has("list") {
            self.insert(
                collection.clone(),
                scope_params.clone(),
                Op {
                    verb: "get",
                    id: format!("list{gv}{ns}{kind}"),
                    action: "list",
                    description: format!("list or watch objects of kind {kind}"),
                    gvk,
                    parameters: params::list(),
                    request: None,
                    responses: params::responses(&[("200", "OK")], &list_schema, true),
                },
            );
            if r.namespaced {
                self.insert(
                    format!("{prefix}/{}", r.plural),
                    vec![params::pretty()],
                    Op {
                        verb: "get",
                        id: format!("list{gv}{kind}ForAllNamespaces"),
                        action: "list",
                        description: format!("list or watch objects of kind {kind}"),
                        gvk,
                        parameters: params::list(),
                        request: None,
                        responses: params::responses(&[("200", "OK")], &list_schema, true),
                    },
                );
            }
        }
        if has("watch") {
            let watch_collection = collection.replacen(&prefix, &format!("{prefix}/watch"), 1);
            let watches = [
                (
                    watch_collection.clone(),
                    scope_params.clone(),
                    format!("watch{gv}{ns}{kind}List"),
                    "watchlist",
                    format!(
                        "watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."
                    ),
                ),
                (
                    format!("{watch_collection}/{{name}}"),
                    item_params(),
                    format!("watch{gv}{ns}{kind}"),
                    "watch",
                    format!(
                        "watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."
                    ),
                ),
            ];
            for (path, path_params, id, action, description) in watches {
                self.insert(
                    path,
                    path_params,
                    Op {
                        verb: "get",
                        id,
                        action,
                        description,
                        gvk,
                        parameters: params::list(),
                        request: None,
                        responses: params::responses(&[("200", "OK")], watch_event, true),
                    },
                );
            }
            if r.namespaced {
                self.insert(
                    format!("{prefix}/watch/{}", r.plural),
                    vec![params::pretty()],
                    Op {
                        verb: "get",
                        id: format!("watch{gv}{kind}ListForAllNamespaces"),
                        action: "watchlist",
                        description: format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                        gvk,
                        parameters: params::list(),
                        request: None,
                        responses: params::responses(&[("200", "OK")], watch_event, true),
                    },
                );
            }
        }
        if has("create") {
            self.insert(
                collection.clone(),
                scope_params.clone(),
                Op {
                    verb: "post",
                    id: format!("create{gv}{ns}{kind}"),
                    action: "post",
                    description: format!("create a {kind}"),
                    gvk,
                    parameters: params::write(),
                    request: Some(params::request_body(&schema)),
                    responses: params::responses(
                        &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                        &schema,
                        false,
                    ),
                },
            );
        }
        if has("deletecollection") {
            self.insert(
                collection.clone(),
                scope_params.clone(),
                Op {
                    verb: "delete",
                    id: format!("delete{gv}Collection{ns}{kind}"),
                    action: "deletecollection",
                    description: format!("delete collection of {kind}"),
                    gvk,
                    parameters: params::delete_collection(),
                    request: Some(params::request_body(
                        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
                    )),
                    responses: params::responses(&[("200", "OK")], status, false),
                },
            );
        }
        self.item_ops(r, &item, item_params(), "", gvk, &schema);
        for sub in r.subresources {
            self.subresource(r, sub, &item, item_params());
        }
    }

    /// get/put/patch/delete on an object or on a subresource that takes the
    /// object's verbs (`status`, `scale`).
    fn item_ops(
        &mut self,
        r: &Resource,
        path: &str,
        path_params: Vec<Value>,
        suffix: &str,
        gvk: (&str, &str, &str),
        schema: &str,
    ) {
        let gv = self.gv.clone();
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let kind = r.kind;
        let what = if suffix.is_empty() {
            format!("the specified {kind}")
        } else {
            format!("{} of the specified {kind}", suffix.to_ascii_lowercase())
        };
        let verbs: &[&str] = if suffix.is_empty() {
            r.verbs
        } else {
            r.subresource(&suffix.to_ascii_lowercase())
                .map(|s| s.verbs)
                .unwrap_or_default()
        };
        let has = |verb: &str| verbs.contains(&verb);
        if has("get") {
            self.insert(
                path.to_string(),
                path_params.clone(),
                Op {
                    verb: "get",
                    id: format!("read{gv}{ns}{kind}{suffix}"),
                    action: "get",
                    description: format!("read {what}"),
                    gvk,
                    parameters: vec![],
                    request: None,
                    responses: params::responses(&[("200", "OK")], schema, false),
                },
            );
        }
        if has("update") {
            self.insert(
                path.to_string(),
                path_params.clone(),
                Op {
                    verb: "put",
                    id: format!("replace{gv}{ns}{kind}{suffix}"),
                    action: "put",
                    description: format!("replace {what}"),
                    gvk,
                    parameters: params::write(),
                    request: Some(params::request_body(schema)),
                    responses: params::responses(
                        &[("200", "OK"), ("201", "Created")],
                        schema,
                        false,
                    ),
                },
            );
        }
        if has("patch") {
            self.insert(
                path.to_string(),
                path_params.clone(),
                Op {
                    verb: "patch",
                    id: format!("patch{gv}{ns}{kind}{suffix}"),
                    action: "patch",
                    description: format!("partially update {what}"),
                    gvk,
                    parameters: params::patch(),
                    request: Some(params::patch_body()),
                    responses: params::responses(
                        &[("200", "OK"), ("201", "Created")],
                        schema,
                        false,
                    ),
                },
            );
        }
        if has("delete") && suffix.is_empty() {
            self.insert(
                path.to_string(),
                path_params,
                Op {
                    verb: "delete",
                    id: format!("delete{gv}{ns}{kind}"),
                    action: "delete",
                    description: format!("delete a {kind}"),
                    gvk,
                    parameters: params::delete(),
                    request: Some(params::request_body(
                        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
                    )),
                    responses: params::responses(
                        &[("200", "OK"), ("202", "Accepted")],
                        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                        false,
                    ),
                },
            );
        }
    }

    fn subresource(
        &mut self,
        r: &Resource,
        sub: &Subresource,
        item: &str,
        item_params: Vec<Value>,
    ) {
        let path = format!("{item}/{}", sub.name);
        let suffix = capitalize(sub.name);
        let group = if sub.group.is_empty() {
            r.group
        } else {
            sub.group
        };
        let version = if sub.version.is_empty() {
            r.version
        } else {
            sub.version
        };
        let gvk = (group, version, sub.kind);
        let gv = self.gv.clone();
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let kind = r.kind;
        match sub.name {
            "status" | "scale" | "ephemeralcontainers" => {
                let schema = self.schema(group, version, sub.kind);
                self.item_ops(r, &path, item_params, &suffix, gvk, &schema);
            }
            "log" => self.insert(
                path,
                item_params,
                Op {
                    verb: "get",
                    id: format!("read{gv}{ns}{kind}Log"),
                    action: "get",
                    description: format!("read log of the specified {kind}"),
                    gvk,
                    parameters: params::log(),
                    request: None,
                    responses: params::text_responses(),
                },
            ),
            "exec" | "attach" | "portforward" => {
                for (verb, method) in [("get", "Get"), ("post", "Post")] {
                    self.insert(
                        path.clone(),
                        item_params.clone(),
                        Op {
                            verb,
                            id: format!("connect{gv}{method}{ns}{kind}{suffix}"),
                            action: "connect",
                            description: format!(
                                "connect {method} requests to {} of {kind}",
                                sub.name
                            ),
                            gvk,
                            parameters: params::connect(sub.name),
                            request: None,
                            responses: params::text_responses(),
                        },
                    );
                }
            }
            "proxy" => {
                // `…/proxy` takes the path as a query parameter,
                // `…/proxy/{path}` as a path parameter of the item.
                let mut with_path_params = item_params.clone();
                with_path_params.extend(params::proxy(kind, true));
                let forms = [
                    (path.clone(), item_params, "", params::proxy(kind, false)),
                    (
                        format!("{path}/{{path}}"),
                        with_path_params,
                        "WithPath",
                        vec![],
                    ),
                ];
                for (at, at_params, id_suffix, parameters) in forms {
                    for (verb, method) in [
                        ("get", "Get"),
                        ("put", "Put"),
                        ("post", "Post"),
                        ("patch", "Patch"),
                        ("delete", "Delete"),
                    ] {
                        self.insert(
                            at.clone(),
                            at_params.clone(),
                            Op {
                                verb,
                                id: format!("connect{gv}{method}{ns}{kind}Proxy{id_suffix}"),
                                action: "connect",
                                description: format!(
                                    "connect {method} requests to proxy of {kind}"
                                ),
                                gvk,
                                parameters: parameters.clone(),
                                request: None,
                                responses: params::text_responses(),
                            },
                        );
                    }
                }
            }
            _ if sub.verbs.contains(&"create") => {
                // binding, eviction: a POST of the subresource's kind.
                let schema = self.schema(group, version, sub.kind);
                self.insert(
                    path,
                    item_params,
                    Op {
                        verb: "post",
                        id: format!("create{gv}{ns}{kind}{suffix}"),
                        action: "post",
                        description: format!("create {} of a {kind}", sub.name),
                        gvk,
                        parameters: params::write(),
                        request: Some(params::request_body(&schema)),
                        responses: params::responses(
                            &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                            &schema,
                            false,
                        ),
                    },
                );
            }
            _ if sub.verbs.contains(&"update") => {
                // namespaces/finalize: a PUT of the object.
                let schema = self.schema(group, version, sub.kind);
                self.insert(
                    path,
                    item_params,
                    Op {
                        verb: "put",
                        id: format!("replace{gv}{ns}{kind}{suffix}"),
                        action: "put",
                        description: format!("replace {} of the specified {kind}", sub.name),
                        gvk,
                        parameters: params::write(),
                        request: Some(params::request_body(&schema)),
                        responses: params::responses(
                            &[("200", "OK"), ("201", "Created")],
                            &schema,
                            false,
                        ),
                    },
                );
            }
            _ => {}
        }
    }
}

/// Every path of a group-version.
pub(super) fn paths(
    schemas: &Schemas,
    group: &str,
    version: &str,
    resources: &[&Resource],
) -> Map<String, Value> {
    let mut b = Builder {
        schemas,
        group,
        version,
        gv: format!("{}{}", group_camel(group), capitalize(version)),
        paths: Map::new(),
    };
    // GET <prefix>/ answers the group-version's APIResourceList.
    let gv = b.gv.clone();
    b.paths.insert(
        format!("{}/", prefix(group, version)),
        json!({"get": {
            "description": "get available resources",
            "operationId": format!("get{gv}APIResources"),
            "responses": params::responses(
                &[("200", "OK")],
                "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
                false,
            ),
            "tags": [tag(group, version)],
        }}),
    );
    for r in resources {
        b.resource(r);
    }
    b.paths
}
