//! etcd stopped: the API server stays up, /readyz fails, requests fail fast
//! with 503/504; etcd back: everything recovers without a restart.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn etcd_down_fails_fast_and_recovers() {
    let mut c = common::Cluster::start();
    let client = c.api.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut m = ConfigMap::default();
    m.metadata.name = Some("before".into());
    cms.create(&PostParams::default(), &m).await.unwrap();

    c.etcd.stop();
    eprintln!("etcd stopped");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = c.api.kubectl(&["get", "--raw", "/readyz"]);
    assert!(!out.status.success(), "readyz passed with etcd down");
    let verbose = c.api.kubectl(&["get", "--raw", "/readyz?verbose"]);
    let text = common::stdout(&verbose) + &common::stderr(&verbose);
    assert!(
        text.contains("[+]ping ok") || text.contains("readyz check failed") || text.contains("500"),
        "{text}"
    );

    eprintln!("readyz checked");
    let started = Instant::now();
    let err = cms.get("before").await.unwrap_err();
    let took = started.elapsed();
    match err {
        kube::Error::Api(s) => assert!(s.code == 503 || s.code == 504, "{s:?}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        took < Duration::from_secs(8),
        "request took {took:?} with etcd down"
    );
    m.metadata.name = Some("during".into());
    let err = cms.create(&PostParams::default(), &m).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 503 || s.code == 504),
        "{err:?}"
    );

    eprintln!("requests failed fast");
    c.etcd.resume();
    eprintln!("etcd resumed");
    c.api.wait_ready(Duration::from_secs(30));
    assert!(cms.get("before").await.is_ok());
    m.metadata.name = Some("after".into());
    cms.create(&PostParams::default(), &m).await.unwrap();
    let names: Vec<String> = cms
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    assert!(
        names.contains(&"after".to_string()) && !names.contains(&"during".to_string()),
        "{names:?}"
    );
}
