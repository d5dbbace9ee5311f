//! Watches: resuming after an API server restart misses and repeats
//! nothing; a compacted revision gets 410 and kube-rs's watcher relists.

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;

fn cm(name: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c
}

#[tokio::test]
async fn watch_resumed_after_restart_misses_and_repeats_nothing() {
    let mut c = common::Cluster::start();
    let client = c.api.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = cms.create(&PostParams::default(), &cm("a0")).await.unwrap();
    let rv = first.metadata.resource_version.unwrap();

    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("a1")).await.unwrap();
    let mut last_rv = rv.clone();
    let mut seen = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        if let WatchEvent::Added(o) = ev {
            last_rv = o.metadata.resource_version.clone().unwrap();
            seen.push(o.metadata.name.unwrap());
            break;
        }
    }
    drop(stream);
    assert_eq!(seen, vec!["a1"]);

    // Restart the API server; write while it is down (directly in etcd is
    // not allowed — through a second server on the same etcd).
    c.api.stop();
    let other = common::ApiServer::start(&c.etcd);
    let other_cms: Api<ConfigMap> = Api::namespaced(other.client().await, "default");
    for i in 2..6 {
        other_cms
            .create(&PostParams::default(), &cm(&format!("a{i}")))
            .await
            .unwrap();
    }
    drop(other);
    c.api.resume();

    let cms: Api<ConfigMap> = Api::namespaced(c.api.client().await, "default");
    let mut stream = cms
        .watch(&WatchParams::default(), &last_rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("a6")).await.unwrap();
    let mut resumed = Vec::new();
    while resumed.len() < 5 {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Added(o)) => resumed.push(o.metadata.name.unwrap()),
            Some(WatchEvent::Error(e)) => panic!("watch error {e:?}"),
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(resumed, vec!["a2", "a3", "a4", "a5", "a6"]);
}

#[tokio::test]
async fn compacted_revision_gets_410_and_watcher_relists() {
    // Compaction every second, like kube-apiserver's (default 5 min).
    let etcd = common::Etcd::start();
    let api = common::ApiServer::start_with(&etcd, &["--etcd-compaction-interval", "1"]);
    let c = common::Cluster { api, etcd };
    let client = c.api.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = cms.create(&PostParams::default(), &cm("c0")).await.unwrap();
    let old_rv = first.metadata.resource_version.unwrap();
    for i in 1..5 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}")))
            .await
            .unwrap();
    }
    // Two compaction intervals later, the old revision is compacted.
    tokio::time::sleep(Duration::from_millis(3500)).await;

    // A watch from before the compaction gets an ERROR event with 410.
    let mut stream = cms
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap();
    match ev {
        Ok(Some(WatchEvent::Error(e))) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.contains("too old resource version"),
                "{}",
                e.message
            );
        }
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }

    // kube-rs's watcher recovers by relisting and sees every object.
    let mut w = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut names = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while names.len() < 5 && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
        {
            Some(Ok(watcher::Event::InitApply(o))) | Some(Ok(watcher::Event::Apply(o))) => {
                names.insert(o.metadata.name.unwrap());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("watcher error {e}"),
            None => break,
        }
    }
    assert_eq!(names.len(), 5, "{names:?}");
}
