//! The REST API as kube clients see it: authentication, discovery,
//! selectors and paging, subresources, graceful deletion, namespaces.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn raw(client: &kube::Client, req: http::Request<Vec<u8>>) -> (u16, String, String) {
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let code = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, ct, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(Vec::new()).unwrap()
}

/// `curl` without credentials: the Status or document it answers.
fn anonymous_get(c: &common::Cluster, path: &str) -> Value {
    let ca = c.api.cert_dir().join("ca.crt");
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--cacert",
            ca.to_str().unwrap(),
            &format!("{}{path}", c.api.url()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test]
async fn anonymous_requests_are_judged_by_the_authorizers() {
    let c = common::Cluster::start();
    // system:anonymous may do what its bindings allow, as kube-apiserver's
    // --anonymous-auth: nothing but the public information.
    let body = anonymous_get(&c, "/api/v1/pods");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["code"], 403);
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(
        body["message"],
        r#"pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" at the cluster scope"#
    );
    assert_eq!(anonymous_get(&c, "/version")["major"], "1");
    // cluster-info, which joining nodes read before they trust the server.
    let mut info = Value::Null;
    for _ in 0..100 {
        info = anonymous_get(&c, "/api/v1/namespaces/kube-public/configmaps/cluster-info");
        if info["kind"] == "ConfigMap" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let kubeconfig = info["data"]["kubeconfig"].as_str().expect("a kubeconfig");
    assert!(
        kubeconfig.contains(&format!("server: {}", c.api.url())),
        "{kubeconfig}"
    );
    assert!(
        kubeconfig.contains("certificate-authority-data: "),
        "{kubeconfig}"
    );
    let other = anonymous_get(&c, "/api/v1/namespaces/kube-public/configmaps");
    assert_eq!(other["code"], 403, "{other}");
}

#[tokio::test]
async fn version_discovery_and_metrics() {
    let c = common::Cluster::start();
    let client = c.api.client().await;
    let (code, _, body) = raw(&client, get("/version")).await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "33");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.33."));

    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let req = http::Request::get("/apis")
        .header("accept", accept)
        .body(Vec::new())
        .unwrap();
    let (code, ct, body) = raw(&client, req).await;
    assert_eq!(code, 200);
    assert_eq!(
        ct,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let d: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["kind"], "APIGroupDiscoveryList");
    let apps = d["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert!(
        deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["subresource"] == "scale" && s["responseKind"]["kind"] == "Scale")
    );

    let (code, _, body) = raw(&client, get("/api/v1")).await;
    assert_eq!(code, 200);
    assert!(body.contains("\"pods/eviction\""));

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.list(&ListParams::default()).await.unwrap();
    let (code, _, m) = raw(&client, get("/metrics")).await;
    assert_eq!(code, 200);
    assert!(
        m.contains("apiserver_request_total{") && m.contains("resource=\"configmaps\""),
        "{m}"
    );
    assert!(m.contains("apiserver_request_duration_seconds_bucket"));
    assert!(m.contains("etcd_request_duration_seconds_bucket"));

    let (code, _, body) = raw(&client, get("/readyz?verbose")).await;
    assert_eq!(code, 200);
    assert!(
        body.contains("[+]ping ok") && body.contains("[+]etcd ok"),
        "{body}"
    );
}

#[tokio::test]
async fn selectors_paging_dry_run_and_generate_name() {
    let c = common::Cluster::start();
    let client = c.api.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..12 {
        let mut m = ConfigMap::default();
        m.metadata.name = Some(format!("cm{i:02}"));
        m.metadata.labels = Some(
            [
                (
                    "tier".to_string(),
                    if i % 3 == 0 { "a" } else { "b" }.to_string(),
                ),
                ("n".to_string(), i.to_string()),
            ]
            .into(),
        );
        cms.create(&PostParams::default(), &m).await.unwrap();
    }
    let sel = |s: &str| ListParams::default().labels(s);
    assert_eq!(cms.list(&sel("tier=a")).await.unwrap().items.len(), 4);
    assert_eq!(cms.list(&sel("tier!=a")).await.unwrap().items.len(), 8);
    assert_eq!(
        cms.list(&sel("tier in (a,b),n notin (0,1)"))
            .await
            .unwrap()
            .items
            .len(),
        10
    );
    assert_eq!(cms.list(&sel("n>9")).await.unwrap().items.len(), 2);
    assert_eq!(
        cms.list(&ListParams::default().fields("metadata.name=cm03"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Paging at one consistent revision.
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(5);
    let first = cms.list(&lp).await.unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(7));
    let rv = first.metadata.resource_version.clone();
    names.extend(first.items.into_iter().filter_map(|o| o.metadata.name));
    let mut token = first.metadata.continue_;
    // A write between pages is not seen by the paged list.
    let mut late = ConfigMap::default();
    late.metadata.name = Some("zz-late".into());
    cms.create(&PostParams::default(), &late).await.unwrap();
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        lp = lp.continue_token(&t);
        let page = cms.list(&lp).await.unwrap();
        assert_eq!(page.metadata.resource_version, rv);
        names.extend(page.items.into_iter().filter_map(|o| o.metadata.name));
        token = page.metadata.continue_;
    }
    assert_eq!(names.len(), 12);
    assert!(!names.contains(&"zz-late".to_string()));

    // Dry run stores nothing; generateName makes a name.
    let mut m = ConfigMap::default();
    m.metadata.generate_name = Some("gen-".into());
    let dry = cms
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &m,
        )
        .await
        .unwrap();
    assert!(dry.metadata.name.as_ref().unwrap().starts_with("gen-"));
    assert!(
        cms.get_opt(dry.metadata.name.as_ref().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let real = cms.create(&PostParams::default(), &m).await.unwrap();
    assert_eq!(real.metadata.name.as_ref().unwrap().len(), 9);
    assert!(real.metadata.uid.is_some() && real.metadata.creation_timestamp.is_some());
}

#[tokio::test]
async fn status_and_scale_subresources_and_generation() {
    let c = common::Cluster::start();
    let client = c.api.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        "status": {"replicas": 99}
    }))
    .unwrap();
    let created = deploys.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.status.as_ref().and_then(|s| s.replicas).is_none(),
        "status set on create"
    );

    // A status write ignores spec changes; a spec write ignores status.
    let pp = PatchParams::default();
    let st = deploys
        .patch_status(
            "web",
            &pp,
            &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().replicas, Some(3));
    assert_eq!(st.spec.unwrap().replicas, Some(1));
    assert_eq!(st.metadata.generation, Some(1));
    let sp = deploys
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"spec": {"replicas": 2}, "status": {"replicas": 50}})),
        )
        .await
        .unwrap();
    assert_eq!(sp.status.unwrap().replicas, Some(3));
    assert_eq!(sp.metadata.generation, Some(2));
    // Metadata-only change: generation unchanged.
    let lab = deploys
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(lab.metadata.generation, Some(2));

    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    deploys
        .patch_scale("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 4}})))
        .await
        .unwrap();
    assert_eq!(
        deploys.get("web").await.unwrap().spec.unwrap().replicas,
        Some(4)
    );
}

#[tokio::test]
async fn binding_graceful_delete_and_eviction() {
    let c = common::Cluster::start();
    let client = c.api.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}], "terminationGracePeriodSeconds": 30}})).unwrap()
    };
    pods.create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    let bind = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    let req = http::Request::post("/api/v1/namespaces/default/pods/p/binding")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&bind).unwrap())
        .unwrap();
    let (code, _, _) = raw(&client, req).await;
    assert_eq!(code, 201);
    assert_eq!(
        pods.get("p")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref(),
        Some("n1")
    );
    let req = http::Request::post("/api/v1/namespaces/default/pods/p/binding")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&bind).unwrap())
        .unwrap();
    let (code, _, body) = raw(&client, req).await;
    assert_eq!(code, 409, "{body}");

    // A bound pod is deleted gracefully: it stays with a deletionTimestamp
    // until its kubelet deletes it with grace 0.
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    let p = pods.get("p").await.unwrap();
    assert!(p.metadata.deletion_timestamp.is_some());
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(30));
    pods.delete(
        "p",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_none());

    // An unscheduled pod goes at once; eviction deletes too.
    pods.create(&PostParams::default(), &pod("q"))
        .await
        .unwrap();
    pods.delete("q", &DeleteParams::default()).await.unwrap();
    assert!(pods.get_opt("q").await.unwrap().is_none());
    pods.create(&PostParams::default(), &pod("e"))
        .await
        .unwrap();
    pods.evict("e", &Default::default()).await.unwrap();
    assert!(pods.get_opt("e").await.unwrap().is_none());

    // Finalizers hold an object until they are removed.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut m = ConfigMap::default();
    m.metadata.name = Some("held".into());
    m.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &m).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    assert!(
        cms.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn namespace_terminates_until_finalized() {
    let c = common::Cluster::start();
    let client = c.api.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some("temp".into());
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(
        created.spec.unwrap().finalizers,
        Some(vec!["kubernetes".to_string()])
    );
    nss.delete("temp", &DeleteParams::default()).await.unwrap();
    let t = nss.get("temp").await.unwrap();
    assert_eq!(t.status.unwrap().phase.as_deref(), Some("Terminating"));
    // New content is refused while terminating.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "temp");
    let mut m = ConfigMap::default();
    m.metadata.name = Some("x".into());
    let err = cms.create(&PostParams::default(), &m).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err:?}"
    );
    // Removing the finalizer through /finalize deletes the namespace.
    let mut fin = nss.get("temp").await.unwrap();
    fin.spec.as_mut().unwrap().finalizers = Some(vec![]);
    let req = http::Request::put("/api/v1/namespaces/temp/finalize")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&fin).unwrap())
        .unwrap();
    let (code, _, body) = raw(&client, req).await;
    assert_eq!(code, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(nss.get_opt("temp").await.unwrap().is_none());
    for sys in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(nss.get_opt(sys).await.unwrap().is_some(), "{sys} missing");
    }
}
