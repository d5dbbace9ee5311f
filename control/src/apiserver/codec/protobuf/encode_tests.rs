//! Responses encoded as protobuf: real objects through the encoder, back
//! through the decoder to equal JSON, and through k8s-pb's prost types as
//! an independent decoder.

use prost::Message as _;
use serde_json::{Value, json};

use super::*;

fn round_trip(v: Value) {
    let bytes = encode(&v).unwrap_or_else(|e| panic!("encoding {}: {e}", v["kind"]));
    assert!(bytes.starts_with(MAGIC));
    let back = decode(&bytes).expect("decodes");
    assert_eq!(back, v, "round trip of {}", v["kind"]);
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "default",
            "uid": "3c8a3e0e-1d1b-4c4f-9c58-5f0f4bb0d8a1",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": "2024-05-06T07:08:09Z",
            "deletionTimestamp": "2024-05-06T08:00:00Z",
            "deletionGracePeriodSeconds": 30,
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "x"},
            "finalizers": ["example.com/keep"],
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-abc",
                "uid": "11111111-2222-3333-4444-555555555555",
                "controller": true,
                "blockOwnerDeletion": true
            }],
            "managedFields": [{
                "manager": "kubectl",
                "operation": "Apply",
                "apiVersion": "v1",
                "time": "2024-05-06T07:08:09Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}
            }]
        },
        "spec": {
            "nodeName": "node-1",
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "activeDeadlineSeconds": -1,
            "hostNetwork": false,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "containers": [{
                "name": "nginx",
                "image": "nginx:1.25",
                "command": ["nginx", "-g", "daemon off;"],
                "ports": [
                    {"name": "http", "containerPort": 80, "protocol": "TCP"},
                    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}
                ],
                "env": [{"name": "A", "value": "1"}],
                "resources": {
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                    "requests": {"cpu": "250m", "memory": "64Mi", "ephemeral-storage": "1Gi"}
                },
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                    "periodSeconds": 5,
                    "failureThreshold": 3
                },
                "livenessProbe": {
                    "tcpSocket": {"port": 80},
                    "initialDelaySeconds": 10
                },
                "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}}
            }],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}]
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.5",
            "podIPs": [{"ip": "10.244.1.5"}],
            "hostIP": "192.168.0.2",
            "startTime": "2024-05-06T07:08:10Z",
            "qosClass": "Burstable",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-06T07:08:12Z"}],
            "containerStatuses": [{
                "name": "nginx",
                "ready": true,
                "started": true,
                "restartCount": 2,
                "image": "nginx:1.25",
                "imageID": "sha256:abc",
                "containerID": "containerd://def",
                "state": {"running": {"startedAt": "2024-05-06T07:08:11Z"}},
                "lastState": {"terminated": {"exitCode": 137, "signal": 9, "reason": "OOMKilled",
                    "startedAt": "2024-05-06T07:00:00Z", "finishedAt": "2024-05-06T07:05:00Z"}}
            }]
        }
    })
}

#[test]
fn pod_round_trips() {
    round_trip(pod());
}

#[test]
fn service_round_trips() {
    round_trip(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 32000,
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080},
                {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "metrics"}
            ]
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "192.168.0.200", "ipMode": "VIP"}]}}
    }));
}

#[test]
fn deployment_round_trips() {
    round_trip(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "generation": 2},
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]}]
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}
            }
        },
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "readyReplicas": 3,
            "availableReplicas": 3,
            "updatedReplicas": 3,
            "conditions": [{
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
                "lastUpdateTime": "2024-05-06T07:08:09Z",
                "lastTransitionTime": "2024-05-06T07:08:09Z"
            }]
        }
    }));
}

#[test]
fn pod_list_round_trips_with_list_meta() {
    let mut item = pod();
    // Items of a list carry no TypeMeta in protobuf.
    let m = item.as_object_mut().unwrap();
    m.remove("apiVersion");
    m.remove("kind");
    round_trip(json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "99", "continue": "eyJ2IjoxfQ", "remainingItemCount": 7},
        "items": [item.clone(), {"metadata": {"name": "b"}}]
    }));
}

#[test]
fn status_round_trips_as_meta_status() {
    round_trip(json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": "Pod \"p\" is invalid: spec.containers[0].image: Required value",
        "reason": "Invalid",
        "code": 422,
        "details": {
            "name": "p",
            "kind": "Pod",
            "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"}],
            "retryAfterSeconds": 1
        }
    }));
}

#[test]
fn endpoint_slice_round_trips() {
    round_trip(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abcde", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": ["10.244.1.5"],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": "node-1",
            "zone": "a",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": "u1"},
            "hints": {"forZones": [{"name": "a"}]}
        }],
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080, "appProtocol": "http"}]
    }));
}

#[test]
fn durations_micro_times_and_bytes_round_trip() {
    round_trip(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
        "spec": {
            "holderIdentity": "a",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-05-06T07:08:09.123456Z",
            "renewTime": "2024-05-06T07:08:19.000001Z",
            "leaseTransitions": 4
        }
    }));
    round_trip(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "type": "Opaque",
        "data": {"password": "c2VjcmV0", "empty": ""}
    }));
    assert_eq!(encode::parse_go_duration("1m30s"), Some(90_000_000_000));
    assert_eq!(
        encode::parse_go_duration("1h0m0.5s"),
        Some(3_600_500_000_000)
    );
    assert_eq!(encode::parse_go_duration("-300ms"), Some(-300_000_000));
    assert_eq!(encode::parse_go_duration("0s"), Some(0));
    assert_eq!(encode::parse_go_duration("1x"), None);
}

#[test]
fn every_served_kind_has_a_message() {
    for r in crate::kinds::RESOURCES {
        let v = r.api_version();
        assert!(
            serves(&v, r.kind),
            "{v} {} ({}) has no protobuf message",
            r.kind,
            r.plural
        );
        if !r.list_kind.is_empty() {
            assert!(
                serves(&v, r.list_kind),
                "{v} {} has no message",
                r.list_kind
            );
        }
    }
    assert!(serves("v1", "Status"));
    assert!(!serves("example.com/v1", "Widget"));
    assert!(encode(&json!({"metadata": {}})).is_err());
}

fn raw_of(bytes: &[u8], api_version: &str, kind: &str) -> Vec<u8> {
    use k8s_pb::apimachinery::pkg::runtime::Unknown;
    let u = Unknown::decode(bytes.strip_prefix(MAGIC).expect("magic")).expect("Unknown");
    let tm = u.type_meta.expect("typeMeta");
    assert_eq!(tm.api_version.as_deref(), Some(api_version));
    assert_eq!(tm.kind.as_deref(), Some(kind));
    assert_eq!(u.content_encoding.as_deref(), Some(""));
    assert_eq!(u.content_type.as_deref(), Some(""));
    u.raw.expect("raw")
}

#[test]
fn embedded_structs_are_exactly_the_inlined_ones() {
    use super::convert::{JsonField, plan};
    let mut inline = Vec::new();
    let mut names: Vec<&String> = table::TABLE.message_names().collect();
    names.sort();
    for m in names {
        for (f, json) in plan(m).unwrap().iter() {
            if *json == JsonField::Inline {
                inline.push(format!("{m}.{}", f.name));
            }
        }
    }
    assert_eq!(
        inline,
        [
            "io.k8s.api.core.v1.ConfigMapEnvSource.local_object_reference",
            "io.k8s.api.core.v1.ConfigMapKeySelector.local_object_reference",
            "io.k8s.api.core.v1.ConfigMapProjection.local_object_reference",
            "io.k8s.api.core.v1.ConfigMapVolumeSource.local_object_reference",
            "io.k8s.api.core.v1.EphemeralContainer.ephemeral_container_common",
            "io.k8s.api.core.v1.PersistentVolumeSpec.persistent_volume_source",
            "io.k8s.api.core.v1.Probe.handler",
            "io.k8s.api.core.v1.SecretEnvSource.local_object_reference",
            "io.k8s.api.core.v1.SecretKeySelector.local_object_reference",
            "io.k8s.api.core.v1.SecretProjection.local_object_reference",
            "io.k8s.api.core.v1.Volume.volume_source",
        ]
    );
}

#[test]
fn k8s_pb_decodes_a_pod() {
    use k8s_pb::api::core::v1::Pod;
    let bytes = encode(&pod()).unwrap();
    let p = Pod::decode(raw_of(&bytes, "v1", "Pod").as_slice()).expect("k8s-pb Pod");
    let meta = p.metadata.unwrap();
    assert_eq!(meta.name.as_deref(), Some("web-0"));
    assert_eq!(meta.labels.get("tier").map(String::as_str), Some("front"));
    assert_eq!(meta.generation, Some(3));
    let created = meta.creation_timestamp.unwrap();
    assert_eq!(created.seconds, Some(1_714_979_289));
    assert_eq!(meta.owner_references[0].controller, Some(true));
    let fields = meta.managed_fields[0].fields_v1.as_ref().unwrap();
    let fj: Value = serde_json::from_slice(fields.raw.as_deref().unwrap()).unwrap();
    assert_eq!(fj["f:metadata"]["f:labels"]["f:app"], json!({}));
    let spec = p.spec.unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(-1));
    let c = &spec.containers[0];
    assert_eq!(c.ports.len(), 2);
    assert_eq!(c.ports[1].host_port, Some(5353));
    assert_eq!(c.ports[1].protocol.as_deref(), Some("UDP"));
    let res = c.resources.as_ref().unwrap();
    assert_eq!(res.limits["cpu"].string.as_deref(), Some("500m"));
    assert_eq!(
        res.requests["ephemeral-storage"].string.as_deref(),
        Some("1Gi")
    );
    let port = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.handler.as_ref())
        .and_then(|h| h.http_get.as_ref())
        .and_then(|g| g.port.as_ref())
        .unwrap();
    assert_eq!(port.r#type, Some(1));
    assert_eq!(port.str_val.as_deref(), Some("http"));
    let status = p.status.unwrap();
    assert_eq!(status.container_statuses[0].restart_count, Some(2));
    let term = status.container_statuses[0]
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .unwrap();
    assert_eq!(term.exit_code, Some(137));
}

#[test]
fn k8s_pb_decodes_list_status_and_watch_event() {
    use k8s_pb::api::core::v1::PodList;
    use k8s_pb::apimachinery::pkg::apis::meta::v1::{Status, WatchEvent};
    let list = json!({
        "apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": "7", "remainingItemCount": 3},
        "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]
    });
    let l = PodList::decode(raw_of(&encode(&list).unwrap(), "v1", "PodList").as_slice()).unwrap();
    let lm = l.metadata.unwrap();
    assert_eq!(lm.resource_version.as_deref(), Some("7"));
    assert_eq!(lm.remaining_item_count, Some(3));
    let names: Vec<_> = l
        .items
        .iter()
        .map(|p| p.metadata.as_ref().unwrap().name.clone().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);

    let st = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": "pods \"x\" not found", "reason": "NotFound", "code": 404,
        "details": {"name": "x", "kind": "pods"}});
    let s = Status::decode(raw_of(&encode(&st).unwrap(), "v1", "Status").as_slice()).unwrap();
    assert_eq!(s.code, Some(404));
    assert_eq!(s.reason.as_deref(), Some("NotFound"));
    assert_eq!(s.details.unwrap().kind.as_deref(), Some("pods"));

    let obj = encode(&pod()).unwrap();
    let framed = frame(&watch_event("ADDED", &obj));
    let len = u32::from_be_bytes(framed[..4].try_into().unwrap()) as usize;
    assert_eq!(len, framed.len() - 4);
    let ev = WatchEvent::decode(&framed[4..]).unwrap();
    assert_eq!(ev.r#type.as_deref(), Some("ADDED"));
    let inner = ev.object.unwrap().raw.unwrap();
    assert_eq!(inner, obj);
    assert_eq!(decode(&inner).unwrap(), pod());
}

#[test]
fn bytes_match_prost_for_a_simple_object() {
    // Fields in tag order, map entries sorted, unpacked repeated scalars:
    // byte-for-byte what a generated marshaler writes.
    use k8s_pb::api::core::v1::{ConfigMap, ConfigMapList};
    use k8s_pb::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "d", "labels": {"b": "2", "a": "1"}},
        "data": {"k": "v"}});
    let expected = ConfigMap {
        metadata: Some(ObjectMeta {
            name: Some("c".into()),
            namespace: Some("d".into()),
            labels: [("a".to_string(), "1".to_string()), ("b".into(), "2".into())].into(),
            ..Default::default()
        }),
        data: [("k".to_string(), "v".to_string())].into(),
        ..Default::default()
    };
    assert_eq!(
        encode_message("io.k8s.api.core.v1.ConfigMap", &cm).unwrap(),
        expected.encode_to_vec()
    );
    let list = ConfigMapList {
        metadata: Some(ListMeta {
            resource_version: Some("5".into()),
            ..Default::default()
        }),
        items: vec![expected],
    };
    let lj = json!({"apiVersion": "v1", "kind": "ConfigMapList",
        "metadata": {"resourceVersion": "5"}, "items": [cm]});
    assert_eq!(
        encode_message("io.k8s.api.core.v1.ConfigMapList", &lj).unwrap(),
        list.encode_to_vec()
    );
}
