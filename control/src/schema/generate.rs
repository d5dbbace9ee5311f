//! Builds the JSON schemas of every served kind from the Rust API types
//! (k8s-openapi's `schemars` support), named as kube-apiserver names them
//! (`io.k8s.api.apps.v1.Deployment`) and shaped like its OpenAPI v3 documents:
//! `$ref`s point into `#/components/schemas/`, a `$ref` with siblings becomes
//! `allOf: [{$ref}]`, and top-level kinds carry `x-kubernetes-group-version-kind`.

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authentication, authorization::v1 as authorization,
    autoscaling::v1 as autoscaling, batch::v1 as batch, certificates::v1 as certificates,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, transform::Transform};
use serde_json::{Map, Value, json};

/// A kind with a group-version-kind, and the name of its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSchema {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Key in `components.schemas` (`io.k8s.api.core.v1.Pod`).
    pub schema: String,
}

/// Where a `$ref` points: `#/components/schemas/<name>`.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// The schemas of every served kind, their lists, and the meta types the
/// API's operations take and return (Status, DeleteOptions, WatchEvent,
/// Patch), with everything they reference.
pub struct Generated {
    pub definitions: Map<String, Value>,
    pub kinds: Vec<KindSchema>,
    /// Extension markers naming a type or field the schemas lack (empty
    /// unless the tables drifted from the API types).
    pub missing: Vec<String>,
}

struct Builder {
    generator: SchemaGenerator,
    kinds: Vec<KindSchema>,
    /// (item schema name, list kind) of every listable kind.
    lists: Vec<(String, &'static str)>,
}

impl Builder {
    fn kind<T: JsonSchema + k8s_openapi::Resource>(&mut self) {
        self.generator.subschema_for::<T>();
        self.kinds.push(KindSchema {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
            schema: T::schema_name().into_owned(),
        });
    }

    fn listable<T: JsonSchema + k8s_openapi::ListableResource>(&mut self) {
        self.kind::<T>();
        self.lists
            .push((T::schema_name().into_owned(), T::LIST_KIND));
    }

    fn plain<T: JsonSchema>(&mut self) -> String {
        self.generator.subschema_for::<T>();
        T::schema_name().into_owned()
    }
}

/// Generates every schema. Deterministic: the same types give the same bytes.
pub fn generate() -> Generated {
    let settings = SchemaSettings::openapi3().with(|s| {
        // kube-apiserver's documents carry no `$schema` and no `nullable`.
        s.meta_schema = None;
        s.transforms.clear();
    });
    let mut b = Builder {
        generator: settings.into_generator(),
        kinds: Vec::new(),
        lists: Vec::new(),
    };

    // core/v1
    b.listable::<core::Namespace>();
    b.listable::<core::Pod>();
    b.kind::<core::Binding>();
    b.listable::<core::Service>();
    b.listable::<core::Endpoints>();
    b.listable::<core::Node>();
    b.listable::<core::ConfigMap>();
    b.listable::<core::Secret>();
    b.listable::<core::ServiceAccount>();
    b.listable::<core::Event>();
    b.listable::<core::PersistentVolume>();
    b.listable::<core::PersistentVolumeClaim>();
    // apps/v1 and the subresource kinds served under other groups' paths.
    b.listable::<apps::Deployment>();
    b.listable::<apps::ReplicaSet>();
    b.listable::<batch::Job>();
    b.listable::<batch::CronJob>();
    b.listable::<apps::DaemonSet>();
    b.listable::<apps::ControllerRevision>();
    b.kind::<autoscaling::Scale>();
    b.kind::<policy::Eviction>();
    b.kind::<authentication::TokenRequest>();
    b.kind::<authentication::SelfSubjectReview>();
    b.kind::<authentication::TokenReview>();
    b.kind::<authorization::SelfSubjectAccessReview>();
    b.kind::<authorization::SelfSubjectRulesReview>();
    b.kind::<authorization::SubjectAccessReview>();
    b.kind::<authorization::LocalSubjectAccessReview>();
    b.listable::<discovery::EndpointSlice>();
    b.listable::<coordination::Lease>();
    b.listable::<events::Event>();
    b.listable::<certificates::CertificateSigningRequest>();
    b.listable::<policy::PodDisruptionBudget>();
    b.listable::<rbac::Role>();
    b.listable::<rbac::RoleBinding>();
    b.listable::<rbac::ClusterRole>();
    b.listable::<rbac::ClusterRoleBinding>();
    b.listable::<scheduling::PriorityClass>();

    // Meta types every group-version's operations use.
    let status = b.plain::<meta::Status>();
    b.kinds.push(KindSchema {
        group: "",
        version: "v1",
        kind: "Status",
        schema: status,
    });
    b.plain::<meta::DeleteOptions>();
    b.plain::<meta::WatchEvent<Value>>();
    b.plain::<meta::Patch>();
    b.plain::<meta::APIResourceList>();

    let Builder {
        mut generator,
        kinds,
        lists,
    } = b;
    let mut definitions = generator.take_definitions(false);
    let mut kinds = kinds;
    for (item, list_kind) in lists {
        let schema = list_schema(&definitions, &item, list_kind);
        let list = format!("{item}List");
        definitions.insert(list.clone(), schema);
        if let Some(k) = kinds.iter().find(|k| k.schema == item).cloned() {
            kinds.push(KindSchema {
                group: k.group,
                version: k.version,
                kind: list_kind,
                schema: list,
            });
        }
    }

    for k in &kinds {
        // core/v1 Event is the one served kind whose Go type makes metadata
        // required (`json:"metadata"` without omitempty).
        if k.schema == "io.k8s.api.core.v1.Event" {
            continue;
        }
        if let Some(Value::Object(obj)) = definitions.get_mut(&k.schema) {
            drop_required_metadata(obj);
        }
    }
    set_group_version_kinds(&mut definitions, &kinds);
    set_scalar_shapes(&mut definitions);
    let missing = super::extensions::apply(&mut definitions);

    // A `$ref` with siblings (a field's description next to its type) is
    // wrapped in `allOf`, as kube-openapi writes it: OpenAPI 3.0 ignores a
    // `$ref`'s siblings otherwise.
    let mut wrap = schemars::transform::RemoveRefSiblings::default();
    for value in definitions.values_mut() {
        if let Ok(schema) = <&mut schemars::Schema>::try_from(value) {
            wrap.transform(schema);
        }
    }

    Generated {
        definitions,
        kinds,
        missing,
    }
}

/// kube-openapi's v3 shapes of the two scalar types that take a number or a
/// string (their `OpenAPIV3OneOfTypes`): IntOrString is `int-or-string`
/// integer-or-string, Quantity string-or-number. k8s-openapi marks both only
/// with `x-kubernetes-int-or-string`, which suits CRD schemas; kubectl
/// explain names a `$ref` without `type` by its schema name (`<IntOrString>`).
fn set_scalar_shapes(definitions: &mut Map<String, Value>) {
    let shapes = [
        (
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            json!({"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true}),
        ),
        (
            "io.k8s.apimachinery.pkg.api.resource.Quantity",
            json!({"oneOf": [{"type": "string"}, {"type": "number"}]}),
        ),
    ];
    for (name, shape) in shapes {
        if let Some(Value::Object(obj)) = definitions.get_mut(name) {
            obj.remove("x-kubernetes-int-or-string");
            if let Value::Object(shape) = shape {
                obj.extend(shape);
            }
        }
    }
}

/// k8s-openapi marks `metadata` required on every resource; kube-apiserver's
/// documents do not (a create may omit it and use generateName… in the body).
fn drop_required_metadata(obj: &mut Map<String, Value>) {
    let now_empty = match obj.get_mut("required") {
        Some(Value::Array(required)) => {
            required.retain(|r| r != "metadata");
            required.is_empty()
        }
        _ => false,
    };
    if now_empty {
        obj.remove("required");
    }
}

/// Schema of `<Kind>List`: kube-apiserver's list shape (apiVersion, items,
/// kind, metadata as ListMeta; items required). k8s-openapi's generic
/// `List<T>` has no schema of its own, so it is written here.
fn list_schema(definitions: &Map<String, Value>, item: &str, list_kind: &str) -> Value {
    let kind = item.rsplit('.').next().unwrap_or(item);
    let prop_description = |name: &str| {
        definitions
            .get(item)
            .and_then(|s| s.pointer(&format!("/properties/{name}/description")))
            .cloned()
            .unwrap_or(Value::Null)
    };
    json!({
        "description": format!("{list_kind} is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {"description": prop_description("apiVersion"), "type": "string"},
            "items": {
                "description": format!("Items is the list of {kind} objects."),
                "type": "array",
                "items": {"$ref": format!("{REF_PREFIX}{item}")},
            },
            "kind": {"description": prop_description("kind"), "type": "string"},
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                "$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"),
            },
        },
        "required": ["items"],
    })
}

/// Puts `x-kubernetes-group-version-kind` on every top-level kind, as a list
/// (kube-apiserver lists every GVK a schema serves).
fn set_group_version_kinds(definitions: &mut Map<String, Value>, kinds: &[KindSchema]) {
    for k in kinds {
        let Some(Value::Object(obj)) = definitions.get_mut(&k.schema) else {
            continue;
        };
        let gvk = json!({"group": k.group, "kind": k.kind, "version": k.version});
        match obj
            .entry("x-kubernetes-group-version-kind")
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(list) if !list.contains(&gvk) => list.push(gvk),
            _ => {}
        }
    }
    // DeleteOptions and WatchEvent are the same type in every group-version.
    let served: Vec<(&str, &str)> = crate::kinds::group_versions();
    for (name, kind) in [
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "DeleteOptions",
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
            "WatchEvent",
        ),
    ] {
        if let Some(Value::Object(obj)) = definitions.get_mut(name) {
            let mut gvks: Vec<Value> = served
                .iter()
                .map(|(g, v)| json!({"group": g, "kind": kind, "version": v}))
                .collect();
            for extra in [("autoscaling", "v1"), ("policy", "v1")] {
                let gvk = json!({"group": extra.0, "kind": kind, "version": extra.1});
                if !gvks.contains(&gvk) {
                    gvks.push(gvk);
                }
            }
            gvks.sort_by_key(|g| (g["group"].to_string(), g["version"].to_string()));
            obj.insert("x-kubernetes-group-version-kind".into(), Value::Array(gvks));
        }
    }
}
