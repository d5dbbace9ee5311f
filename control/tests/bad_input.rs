//! Bad input gets kube-apiserver's error and leaves etcd unchanged.

mod common;

use common::{Cluster, stderr};

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: NAME\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

async fn snapshot(c: &Cluster) -> (i64, Vec<String>) {
    (c.etcd.revision().await, c.etcd.keys("/registry/").await)
}

#[tokio::test]
async fn each_rejected_request_gets_kube_error_and_stores_nothing() {
    let c = Cluster::start();
    let api = &c.api;
    // Let the bootstrap settle so revisions only move on our writes.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = snapshot(&c).await;

    // An invalid name.
    let out = api.kubectl_stdin(&["create", "-f", "-"], &POD.replace("NAME", "Bad_Name"));
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("The Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{e}");

    // A missing image.
    let no_image =
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n";
    let out = api.kubectl_stdin(&["create", "-f", "-"], no_image);
    let e = stderr(&out);
    assert!(
        e.contains("The Pod \"p\" is invalid: spec.containers[0].image: Required value"),
        "{e}"
    );

    // An unknown field (kubectl's default validation is Strict).
    let unknown = POD
        .replace("NAME", "u")
        .replace("spec:\n", "spec:\n  foo: bar\n");
    let out = api.kubectl_stdin(&["create", "-f", "-"], &unknown);
    let e = stderr(&out);
    assert!(
        e.contains("strict decoding error: unknown field \"spec.foo\""),
        "{e}"
    );

    // Malformed YAML, sent raw to the server: 400.
    let client = api.client().await;
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/yaml")
        .body(b"kind: ConfigMap\nmetadata: [\n".to_vec())
        .unwrap();
    let err = client.request_text(req).await.unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 400, "{s:?}"),
        other => panic!("unexpected {other:?}"),
    }

    assert_eq!(
        snapshot(&c).await,
        before,
        "a rejected request changed etcd"
    );

    // A duplicate create.
    api.kubectl_stdin(&["create", "-f", "-"], &POD.replace("NAME", "dup"));
    let stored = c
        .etcd
        .read("/registry/pods/default/dup")
        .await
        .expect("stored");
    let after_first = snapshot(&c).await;
    let out = api.kubectl_stdin(&["create", "-f", "-"], &POD.replace("NAME", "dup"));
    let e = stderr(&out);
    assert!(e.contains("pods \"dup\" already exists"), "{e}");
    assert_eq!(
        c.etcd.read("/registry/pods/default/dup").await.unwrap(),
        stored
    );

    // A stale update: PUT with an old resourceVersion.
    let cur = api.kubectl_ok(&["get", "pod", "dup", "-o", "json"]);
    let mut v: serde_json::Value = serde_json::from_str(&cur).unwrap();
    api.kubectl_ok(&["label", "pod", "dup", "fresh=1"]);
    let after_label = c.etcd.read("/registry/pods/default/dup").await.unwrap();
    v["metadata"]["labels"] = serde_json::json!({"stale": "1"});
    let out = api.kubectl_stdin(&["replace", "-f", "-"], &v.to_string());
    let e = stderr(&out);
    assert!(e.contains("Operation cannot be fulfilled on pods \"dup\": the object has been modified; please apply your changes to the latest version and try again"), "{e}");
    assert_eq!(
        c.etcd.read("/registry/pods/default/dup").await.unwrap(),
        after_label
    );
    assert_ne!(after_first.0, 0);
}

#[tokio::test]
async fn missing_namespace_and_requested_service_ip_taken() {
    let c = Cluster::start();
    let api = &c.api;
    let out = api.kubectl_stdin(
        &["create", "-n", "nope", "-f", "-"],
        &POD.replace("NAME", "x"),
    );
    assert!(
        stderr(&out).contains("namespaces \"nope\" not found"),
        "{}",
        stderr(&out)
    );

    let svc = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  clusterIP: 10.96.0.50\n  ports:\n  - port: 80\n"
        )
    };
    api.kubectl_stdin(&["create", "-f", "-"], &svc("a"));
    let out = api.kubectl_stdin(&["create", "-f", "-"], &svc("b"));
    let e = stderr(&out);
    assert!(e.contains("provided IP is already allocated"), "{e}");
    assert!(c.etcd.read("/registry/services/default/b").await.is_none());
    // Released on delete, then usable again.
    api.kubectl_ok(&["delete", "svc", "a"]);
    api.kubectl_stdin(&["create", "-f", "-"], &svc("b"));
    assert!(c.etcd.read("/registry/services/default/b").await.is_some());

    let np = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 30080\n"
        )
    };
    api.kubectl_stdin(&["create", "-f", "-"], &np("n1"));
    let out = api.kubectl_stdin(&["create", "-f", "-"], &np("n2"));
    assert!(
        stderr(&out).contains("provided port is already allocated"),
        "{}",
        stderr(&out)
    );

    // clusterIP is immutable.
    let out = api.kubectl(&[
        "patch",
        "svc",
        "b",
        "--type=merge",
        "-p",
        r#"{"spec":{"clusterIP":"10.96.0.51","clusterIPs":["10.96.0.51"]}}"#,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is invalid"), "{}", stderr(&out));
}

/// kubectl checks a manifest's group-version against discovery and
/// /openapi/v2 before sending it.
#[test]
fn wrong_api_version_is_refused_like_kube() {
    let c = Cluster::start();
    let api = &c.api;
    // A wrong apiVersion: no such kind in that version.
    let wrong = "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata:\n  name: d\nspec: {}\n";
    let out = api.kubectl_stdin(&["create", "-f", "-"], wrong);
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(
        e.contains("no matches for kind \"Deployment\" in version \"apps/v1beta1\""),
        "{e}"
    );
}
