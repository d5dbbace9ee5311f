//! Kubernetes protobuf (`application/vnd.kubernetes.protobuf`), as typed
//! clients — kubectl's `create deployment` and `expose`, real kube-proxy or
//! kube-scheduler — send and accept it: the `k8s\0` magic, a
//! `runtime.Unknown` envelope naming apiVersion and kind, and the object's
//! message. Request bodies are decoded generically into the JSON the rest
//! of the server works on, and responses encoded back from it, with the
//! field table in `table` and the JSON names of the schemas.

mod convert;
mod encode;
mod error;
pub mod table;
mod wire;

#[cfg(test)]
mod encode_tests;
#[cfg(test)]
mod generate_tests;

use serde_json::Value;

pub use convert::decode_message;
pub use encode::{encode_message, envelope, frame, watch_event};
pub use error::ProtobufError;

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf payload starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// The envelope: apiVersion, kind and the object's bytes.
#[derive(Debug)]
pub struct Unknown<'a> {
    pub api_version: String,
    pub kind: String,
    pub raw: &'a [u8],
}

/// Splits a payload into its envelope.
pub fn unwrap(body: &[u8]) -> Result<Unknown<'_>, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::Magic)?;
    let mut out = Unknown {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
    };
    for (tag, v) in wire::fields(rest)? {
        match (tag, v) {
            (1, wire::Value::Bytes(tm)) => {
                for (t, v) in wire::fields(tm)? {
                    if let wire::Value::Bytes(b) = v {
                        let s = String::from_utf8_lossy(b).into_owned();
                        match t {
                            1 => out.api_version = s,
                            2 => out.kind = s,
                            _ => {}
                        }
                    }
                }
            }
            (2, wire::Value::Bytes(raw)) => out.raw = raw,
            _ => {}
        }
    }
    Ok(out)
}

/// The full proto name of the message of `kind` in `api_version`:
/// `io.k8s.api.<group's first label>.<version>.<kind>`, or the meta.k8s.io
/// message for kinds every group shares (Status, DeleteOptions, …).
pub fn message_name(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let package = if group.is_empty() {
        format!("io.k8s.api.core.{version}")
    } else {
        let short = group.split('.').next().unwrap_or(group);
        format!("io.k8s.api.{short}.{version}")
    };
    let api = format!("{package}.{kind}");
    let meta = format!("io.k8s.apimachinery.pkg.apis.meta.{version}.{kind}");
    if !table::TABLE.has(&api) && table::TABLE.has(&meta) {
        meta
    } else {
        api
    }
}

/// Whether objects of `kind` in `api_version` have a protobuf form.
pub fn serves(api_version: &str, kind: &str) -> bool {
    table::TABLE.has(&message_name(api_version, kind))
}

/// Decodes a protobuf payload of a served kind into its JSON object.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let u = unwrap(body)?;
    let message = message_name(&u.api_version, &u.kind);
    let mut v = decode_message(&message, u.raw)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(u.api_version.clone()));
        m.insert("kind".into(), Value::String(u.kind.clone()));
    }
    Ok(v)
}

/// Encodes a JSON object of a served kind (named by its apiVersion and
/// kind) as a protobuf payload, envelope included.
pub fn encode(v: &Value) -> Result<Vec<u8>, ProtobufError> {
    let field = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
        return Err(ProtobufError::MissingKind);
    };
    let raw = encode_message(&message_name(api_version, kind), v)?;
    Ok(envelope(api_version, kind, &raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(u.encode_to_vec());
        out
    }

    #[test]
    fn deployment_as_kubectl_create_sends_it() {
        use k8s_pb::api::apps::v1 as apps;
        use k8s_pb::api::core::v1 as core;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        let d = apps::Deployment {
            metadata: Some(meta::ObjectMeta {
                name: Some("web".into()),
                labels: [("app".to_string(), "web".to_string())].into(),
                creation_timestamp: Some(meta::Time::default()),
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(2),
                selector: Some(meta::LabelSelector {
                    match_labels: [("app".to_string(), "web".to_string())].into(),
                    ..Default::default()
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta::default()),
                    spec: Some(core::PodSpec {
                        containers: vec![core::Container {
                            name: Some("nginx".into()),
                            image: Some("nginx".into()),
                            ports: vec![core::ContainerPort {
                                container_port: Some(80),
                                protocol: Some("TCP".into()),
                                ..Default::default()
                            }],
                            resources: Some(core::ResourceRequirements {
                                limits: [(
                                    "cpu".to_string(),
                                    k8s_pb::apimachinery::pkg::api::resource::Quantity {
                                        string: Some("500m".into()),
                                    },
                                )]
                                .into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: Some("RollingUpdate".into()),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_surge: Some(k8s_pb::apimachinery::pkg::util::intstr::IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: Some("25%".into()),
                        }),
                        max_unavailable: Some(
                            k8s_pb::apimachinery::pkg::util::intstr::IntOrString {
                                r#type: Some(0),
                                int_val: Some(1),
                                str_val: Some(String::new()),
                            },
                        ),
                    }),
                }),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus::default()),
        };
        let body = envelope("apps/v1", "Deployment", d.encode_to_vec());
        let v = decode(&body).unwrap();
        assert_eq!(v["apiVersion"], "apps/v1");
        assert_eq!(v["kind"], "Deployment");
        assert_eq!(v["metadata"]["name"], "web");
        assert_eq!(v["metadata"]["labels"]["app"], "web");
        assert!(v["metadata"].get("creationTimestamp").is_none());
        assert_eq!(v["spec"]["replicas"], 2);
        assert_eq!(v["spec"]["selector"]["matchLabels"]["app"], "web");
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "nginx");
        assert_eq!(c["ports"][0]["containerPort"], 80);
        assert_eq!(c["resources"]["limits"]["cpu"], "500m");
        assert_eq!(v["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(v["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 1);
    }

    #[test]
    fn service_with_ip_fields_and_bad_magic() {
        use k8s_pb::api::core::v1 as core;
        let s = core::Service {
            spec: Some(core::ServiceSpec {
                cluster_ips: vec!["10.96.0.9".into()],
                ports: vec![core::ServicePort {
                    port: Some(80),
                    target_port: Some(k8s_pb::apimachinery::pkg::util::intstr::IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: None,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = decode(&envelope("v1", "Service", s.encode_to_vec())).unwrap();
        assert_eq!(v["spec"]["clusterIPs"][0], "10.96.0.9");
        assert_eq!(v["spec"]["ports"][0]["targetPort"], 8080);
        assert!(decode(b"{}").is_err());
    }
}
