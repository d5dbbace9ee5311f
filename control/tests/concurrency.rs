//! 50 concurrent writers on one object with stale resourceVersions: every
//! write succeeds once or gets 409 Conflict, and no accepted update is lost.

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn stale_writers_conflict_and_no_update_is_lost() {
    let c = common::Cluster::start();
    let client = c.api.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("counter".into());
    cm.data = Some([("n".to_string(), "0".to_string())].into());
    cms.create(&PostParams::default(), &cm).await.unwrap();

    // Every writer reads, then increments with the RV it read, retrying on
    // 409 until its increment is accepted once.
    let mut tasks = Vec::new();
    for w in 0..50 {
        let cms = cms.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            loop {
                let mut cur = cms.get("counter").await.unwrap();
                let n: i64 = cur.data.as_ref().unwrap()["n"].parse().unwrap();
                cur.data
                    .as_mut()
                    .unwrap()
                    .insert("n".into(), (n + 1).to_string());
                cur.data
                    .as_mut()
                    .unwrap()
                    .insert(format!("w{w}"), "1".into());
                match cms.replace("counter", &PostParams::default(), &cur).await {
                    Ok(_) => return conflicts,
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        assert_eq!(s.reason, "Conflict");
                        conflicts += 1;
                    }
                    Err(e) => panic!("writer {w}: {e}"),
                }
            }
        }));
    }
    let mut total_conflicts = 0;
    for t in tasks {
        total_conflicts += t.await.unwrap();
    }
    let fin = cms.get("counter").await.unwrap();
    let data = fin.data.unwrap();
    assert_eq!(data["n"], "50", "an accepted increment was lost");
    for w in 0..50 {
        assert!(
            data.contains_key(&format!("w{w}")),
            "writer {w}'s accepted write was lost"
        );
    }
    assert!(
        total_conflicts > 0,
        "50 concurrent stale writers never conflicted"
    );
}
