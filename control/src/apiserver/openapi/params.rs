//! Query and path parameters and response bodies of kube-apiserver's
//! operations, as its endpoint installer declares them
//! (`k8s.io/apiserver/pkg/endpoints/installer.go`, the option structs of
//! `k8s.io/apimachinery/pkg/apis/meta/v1/types.go`).

use serde_json::{Value, json};

use crate::schema::REF_PREFIX;

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({
        "description": description,
        "in": "query",
        "name": name,
        "schema": {"type": ty, "uniqueItems": true},
    })
}

fn path(name: &str, description: &str) -> Value {
    json!({
        "description": description,
        "in": "path",
        "name": name,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true},
    })
}

pub(super) fn name(kind: &str) -> Value {
    path("name", &format!("name of the {kind}"))
}

pub(super) fn namespace() -> Value {
    path(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    )
}

pub(super) fn pretty() -> Value {
    query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    )
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes. It is required for apply requests (application/apply-patch) and optional for the other patch types.",
    )
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "fieldValidation determines how the server responds to unknown or duplicate fields in the request body. Valid values are: - Ignore: drops them silently. - Warn: drops them and returns a warning for each. - Strict: fails the request with a BadRequest error naming them.",
    )
}

fn force() -> Value {
    query(
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests: the caller re-acquires fields that conflict with other managers. It must be unset for non-apply patch requests.",
    )
}

/// Parameters of create (POST) and replace (PUT).
pub(super) fn write() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation()]
}

/// Parameters of patch: kubectl looks for `fieldValidation` here before it
/// lets the server check fields instead of checking them itself.
pub(super) fn patch() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation(), force()]
}

fn delete_common() -> Vec<Value> {
    vec![
        dry_run(),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted. Zero means delete immediately; unset means the default grace period of the type.",
        ),
        query(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            "boolean",
            "if set to true, deletes an object whose stored data cannot be decoded (a corrupt object), bypassing finalizers and preconditions.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated: please use the PropagationPolicy. Should the dependent objects be orphaned.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
        ),
    ]
}

/// Parameters of delete.
pub(super) fn delete() -> Vec<Value> {
    delete_common()
}

/// Parameters of list and watch.
pub(super) fn list() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        query(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server, with the value the previous page returned.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        query(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call. If more items exist, the server sets the `continue` field on the list metadata.",
        ),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true` to begin the watch stream with synthetic events of the current state.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
        ),
        query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

/// Parameters of deletecollection: a list's selection plus a delete's options.
pub(super) fn delete_collection() -> Vec<Value> {
    let mut out = list();
    out.retain(|p| !matches!(p["name"].as_str(), Some("allowWatchBookmarks" | "watch")));
    out.extend(delete_common());
    sort(out)
}

/// Parameters of `pods/log`.
pub(super) fn log() -> Vec<Value> {
    vec![
        query(
            "container",
            "string",
            "The container for which to stream logs. Defaults to only container if there is one container in the pod.",
        ),
        query(
            "follow",
            "boolean",
            "Follow the log stream of the pod. Defaults to false.",
        ),
        query(
            "limitBytes",
            "integer",
            "If set, the number of bytes to read from the server before terminating the log output.",
        ),
        query(
            "previous",
            "boolean",
            "Return previous terminated container logs. Defaults to false.",
        ),
        query(
            "sinceSeconds",
            "integer",
            "A relative time in seconds before the current time from which to show logs.",
        ),
        query(
            "tailLines",
            "integer",
            "If set, the number of lines from the end of the logs to show.",
        ),
        query(
            "timestamps",
            "boolean",
            "If true, add an RFC3339 timestamp at the beginning of every line of log output.",
        ),
    ]
}

/// The proxy subresource's parameters: the path as a query parameter, or,
/// for the `…/proxy/{path}` form, as a path parameter.
pub(super) fn proxy(kind: &str, in_path: bool) -> Vec<Value> {
    if in_path {
        vec![path("path", "path to the resource")]
    } else {
        vec![query(
            "path",
            "string",
            &format!("Path is the URL path to use for the current proxy request to {kind}."),
        )]
    }
}

/// Parameters of the pods' connect subresources (`exec`, `attach`,
/// `portforward`).
pub(super) fn connect(subresource: &str) -> Vec<Value> {
    if subresource == "portforward" {
        return vec![query(
            "ports",
            "integer",
            "List of ports to forward Required when using WebSockets",
        )];
    }
    let mut out = vec![];
    if subresource == "exec" {
        out.push(query(
            "command",
            "string",
            "Command is the remote command to execute. argv array. Not executed within a shell.",
        ));
    }
    out.extend([
        query(
            "container",
            "string",
            "The container in which to run. Defaults to only container if there is only one container in the pod.",
        ),
        query(
            "stderr",
            "boolean",
            "Redirect the standard error stream of the pod for this call.",
        ),
        query(
            "stdin",
            "boolean",
            "Redirect the standard input stream of the pod for this call. Defaults to false.",
        ),
        query(
            "stdout",
            "boolean",
            "Redirect the standard output stream of the pod for this call.",
        ),
        query(
            "tty",
            "boolean",
            "TTY if true indicates that a tty will be allocated for the call. Defaults to false.",
        ),
    ]);
    out
}

fn sort(mut params: Vec<Value>) -> Vec<Value> {
    params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    params
}

/// The media types kube-apiserver encodes objects in.
const OBJECT_TYPES: &[&str] = &[
    "application/json",
    "application/vnd.kubernetes.protobuf",
    "application/yaml",
];

/// Those of a list, which may also be answered as a watch stream.
const LIST_TYPES: &[&str] = &[
    "application/json",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf",
    "application/vnd.kubernetes.protobuf;stream=watch",
    "application/yaml",
];

pub(super) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

fn content(types: &[&str], schema: &Value) -> Value {
    Value::Object(
        types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": schema})))
            .collect(),
    )
}

/// Responses of an operation returning `schema` with these status codes.
pub(super) fn responses(codes: &[(&str, &str)], schema: &str, list: bool) -> Value {
    let types = if list { LIST_TYPES } else { OBJECT_TYPES };
    let body = content(types, &schema_ref(schema));
    let mut out = serde_json::Map::new();
    for (code, description) in codes {
        out.insert(
            code.to_string(),
            json!({"content": body, "description": description}),
        );
    }
    out.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

/// Responses of log, exec and attach: a byte stream described as a string.
pub(super) fn text_responses() -> Value {
    json!({
        "200": {
            "content": {"*/*": {"schema": {"type": "string"}}},
            "description": "OK",
        },
        "401": {"description": "Unauthorized"},
    })
}

/// A request body of `schema` in every object media type.
pub(super) fn request_body(schema: &str) -> Value {
    json!({"content": content(OBJECT_TYPES, &schema_ref(schema)), "required": true})
}

/// The request body of a patch: one media type per patch type accepted.
/// kubectl computes client-side apply as a strategic merge patch only when
/// `application/strategic-merge-patch+json` is listed here.
pub(super) fn patch_body() -> Value {
    let patch = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
    json!({
        "content": content(
            &[
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ],
            &patch,
        ),
        "required": true,
    })
}
