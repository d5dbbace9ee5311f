//! Protobuf responses as client-go clients with `ContentType:
//! application/vnd.kubernetes.protobuf` (kube-proxy, kube-scheduler) get
//! them from the real API server on real etcd over HTTPS: objects, lists,
//! write results, Status errors and watch streams, decoded with k8s-pb's
//! prost types; JSON when JSON comes first or for Tables.

mod common;

use std::time::Duration;

use http_body_util::BodyExt;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message as _;
use serde_json::{Value, json};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// What client-go sends when configured for protobuf.
const CLIENT_GO: &str = "application/vnd.kubernetes.protobuf, application/json";

struct Reply {
    code: u16,
    content_type: String,
    body: Vec<u8>,
}

async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    accept: &str,
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("accept", accept);
    let bytes = match body {
        Some((ct, b)) => {
            req = req.header("content-type", ct);
            b
        }
        None => Vec::new(),
    };
    let resp = client
        .send(req.body(bytes).unwrap().map(kube::client::Body::from))
        .await
        .expect("send");
    let code = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        code,
        content_type,
        body,
    }
}

/// The envelope's apiVersion, kind and raw message.
fn unwrap(bytes: &[u8]) -> (String, String, Vec<u8>) {
    let rest = bytes
        .strip_prefix(b"k8s\0")
        .unwrap_or_else(|| panic!("no protobuf magic: {:?}", String::from_utf8_lossy(bytes)));
    let u = Unknown::decode(rest).expect("runtime.Unknown");
    let tm = u.type_meta.unwrap_or_default();
    (
        tm.api_version.unwrap_or_default(),
        tm.kind.unwrap_or_default(),
        u.raw.unwrap_or_default(),
    )
}

fn decode<M: prost::Message + Default>(r: &Reply, api_version: &str, kind: &str) -> M {
    assert_eq!(r.content_type, PROTOBUF, "code {}", r.code);
    let (v, k, raw) = unwrap(&r.body);
    assert_eq!((v.as_str(), k.as_str()), (api_version, kind));
    M::decode(raw.as_slice()).expect("message")
}

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let u = Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(u.encode_to_vec());
    out
}

fn pod(name: &str) -> core::Pod {
    core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some(name.into()),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: Some("web".into()),
                image: Some("nginx:1.25".into()),
                ports: vec![core::ContainerPort {
                    container_port: Some(80),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }],
                resources: Some(core::ResourceRequirements {
                    limits: [(
                        "memory".to_string(),
                        k8s_pb::apimachinery::pkg::api::resource::Quantity {
                            string: Some("128Mi".into()),
                        },
                    )]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

#[tokio::test]
async fn protobuf_reads_writes_and_errors() {
    let c = common::Cluster::start();
    let client = c.api.client().await;
    let pods = "/api/v1/namespaces/default/pods";

    // CREATE with a protobuf body: the created Pod comes back in protobuf.
    let body = envelope("v1", "Pod", pod("web-0").encode_to_vec());
    let r = send(&client, "POST", pods, CLIENT_GO, Some((PROTOBUF, body))).await;
    assert_eq!(r.code, 201, "{}", String::from_utf8_lossy(&r.body));
    let created: core::Pod = decode(&r, "v1", "Pod");
    let meta = created.metadata.clone().unwrap();
    assert_eq!(meta.name.as_deref(), Some("web-0"));
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert!(!meta.uid.unwrap_or_default().is_empty());
    assert!(meta.creation_timestamp.unwrap().seconds.unwrap_or(0) > 1_600_000_000);
    let container = &created.spec.as_ref().unwrap().containers[0];
    assert_eq!(container.ports[0].container_port, Some(80));
    assert_eq!(
        container.resources.as_ref().unwrap().limits["memory"]
            .string
            .as_deref(),
        Some("128Mi")
    );

    // CREATE with a JSON body, protobuf back: the Service's allocated IP.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}});
    let r = send(
        &client,
        "POST",
        "/api/v1/namespaces/default/services",
        CLIENT_GO,
        Some(("application/json", serde_json::to_vec(&svc).unwrap())),
    )
    .await;
    assert_eq!(r.code, 201, "{}", String::from_utf8_lossy(&r.body));
    let s: core::Service = decode(&r, "v1", "Service");
    let spec = s.spec.unwrap();
    assert!(spec.cluster_ip.unwrap_or_default().starts_with("10."));
    let tp = spec.ports[0].target_port.clone().unwrap();
    assert_eq!((tp.r#type, tp.str_val.as_deref()), (Some(1), Some("http")));

    // GET.
    let r = send(&client, "GET", &format!("{pods}/web-0"), CLIENT_GO, None).await;
    assert_eq!(r.code, 200);
    let got: core::Pod = decode(&r, "v1", "Pod");
    assert_eq!(got.metadata, created.metadata);

    // PATCH (JSON merge patch), protobuf back.
    let r = send(
        &client,
        "PATCH",
        &format!("{pods}/web-0"),
        CLIENT_GO,
        Some((
            "application/merge-patch+json",
            br#"{"metadata":{"labels":{"tier":"front"}}}"#.to_vec(),
        )),
    )
    .await;
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    let patched: core::Pod = decode(&r, "v1", "Pod");
    assert_eq!(
        patched
            .metadata
            .unwrap()
            .labels
            .get("tier")
            .map(String::as_str),
        Some("front")
    );

    // LIST: a PodList with its ListMeta.
    let r = send(&client, "GET", pods, CLIENT_GO, None).await;
    assert_eq!(r.code, 200);
    let list: core::PodList = decode(&r, "v1", "PodList");
    let rv: i64 = list
        .metadata
        .unwrap()
        .resource_version
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > 0);
    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.as_ref()?.name.clone())
        .collect();
    assert_eq!(names, ["web-0"]);

    // Errors are meta.k8s.io Status in protobuf.
    let r = send(&client, "GET", &format!("{pods}/missing"), CLIENT_GO, None).await;
    assert_eq!(r.code, 404);
    let st: meta::Status = decode(&r, "v1", "Status");
    assert_eq!(st.code, Some(404));
    assert_eq!(st.reason.as_deref(), Some("NotFound"));
    assert_eq!(st.message.as_deref(), Some("pods \"missing\" not found"));
    assert_eq!(st.details.unwrap().name.as_deref(), Some("missing"));

    // JSON first, `*/*`, or a Table: JSON.
    for accept in [
        "application/json, application/vnd.kubernetes.protobuf",
        "*/*",
        "application/vnd.kubernetes.protobuf;q=0.5, application/json",
    ] {
        let r = send(&client, "GET", &format!("{pods}/web-0"), accept, None).await;
        assert_eq!(r.content_type, "application/json", "{accept}");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["metadata"]["name"], "web-0");
    }
    let table = "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1;g=meta.k8s.io";
    let r = send(&client, "GET", pods, table, None).await;
    assert_eq!(r.code, 200);
    let v: Value = serde_json::from_slice(&r.body).expect("a JSON Table");
    assert_eq!(v["kind"], "Table");
    // Nothing acceptable: 406 (as JSON).
    let r = send(&client, "GET", pods, "text/html", None).await;
    assert_eq!(r.code, 406);

    // DELETE: the deleted Pod in protobuf.
    let r = send(&client, "DELETE", &format!("{pods}/web-0"), CLIENT_GO, None).await;
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    let deleted: core::Pod = decode(&r, "v1", "Pod");
    assert_eq!(deleted.metadata.unwrap().name.as_deref(), Some("web-0"));
}

/// Reads length-prefixed WatchEvents until `want` have arrived.
async fn read_events(
    body: &mut kube::client::Body,
    buf: &mut Vec<u8>,
    want: usize,
) -> Vec<meta::WatchEvent> {
    let mut out = Vec::new();
    while out.len() < want {
        while buf.len() >= 4 {
            let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
            if buf.len() < 4 + len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..4 + len).skip(4).collect();
            out.push(meta::WatchEvent::decode(frame.as_slice()).expect("WatchEvent"));
        }
        if out.len() >= want {
            break;
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("a watch event in time")
            .expect("stream open")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    out
}

#[tokio::test]
async fn protobuf_watch_streams_length_prefixed_events() {
    let c = common::Cluster::start();
    let client = c.api.client().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let create = |name: &str| {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": {"k": "v"}}))
        .unwrap()
    };
    let r = send(
        &client,
        "POST",
        cms,
        "application/json",
        Some(("application/json", create("a"))),
    )
    .await;
    assert_eq!(r.code, 201);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let req = http::Request::get(format!(
        "{cms}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=60"
    ))
    .header("accept", CLIENT_GO)
    .body(Vec::new())
    .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let mut body = resp.into_body();
    let mut buf = Vec::new();

    let r = send(
        &client,
        "POST",
        cms,
        "application/json",
        Some(("application/json", create("b"))),
    )
    .await;
    assert_eq!(r.code, 201);
    let patch = br#"{"data":{"k":"w"}}"#.to_vec();
    let r = send(
        &client,
        "PATCH",
        &format!("{cms}/b"),
        "application/json",
        Some(("application/merge-patch+json", patch)),
    )
    .await;
    assert_eq!(r.code, 200);
    let r = send(
        &client,
        "DELETE",
        &format!("{cms}/b"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(r.code, 200);

    let mut seen = Vec::new();
    while seen.len() < 3 {
        for ev in read_events(&mut body, &mut buf, 1).await {
            let kind = ev.r#type.clone().unwrap_or_default();
            if kind == "BOOKMARK" {
                continue;
            }
            // The object is itself a full protobuf payload with envelope.
            let raw = ev.object.and_then(|o| o.raw).expect("object");
            let (v, k, msg) = unwrap(&raw);
            assert_eq!((v.as_str(), k.as_str()), ("v1", "ConfigMap"));
            let cm = core::ConfigMap::decode(msg.as_slice()).unwrap();
            seen.push((
                kind,
                cm.metadata.unwrap().name.unwrap_or_default(),
                cm.data.get("k").cloned().unwrap_or_default(),
            ));
        }
    }
    let expected = [
        ("ADDED", "b", "v"),
        ("MODIFIED", "b", "w"),
        ("DELETED", "b", "w"),
    ];
    let seen: Vec<(&str, &str, &str)> = seen
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    assert_eq!(seen, expected);
}
