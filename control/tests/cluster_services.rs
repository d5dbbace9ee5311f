//! The housekeeping controllers against real etcd and the real API server:
//! EndpointSlices and Endpoints of selector Services, node pod CIDRs, the
//! default ServiceAccount, namespace deletion, and cascading deletion
//! policies.

mod common;
mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PropagationPolicy};

use support::kubelet::{Kubelets, NodeSpec};
use support::{Plane, eventually};

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: c
        image: busybox
        ports:
        - name: http
          containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - name: web
    port: 80
    targetPort: http
---
apiVersion: v1
kind: Service
metadata:
  name: manual
  namespace: shop
spec:
  ports:
  - port: 80
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_slices_and_endpoints_nodes_get_cidrs_namespaces_get_accounts_and_are_emptied()
{
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let k = Kubelets::start(client.clone(), Duration::from_millis(100));
    k.add_node(NodeSpec::new("n1", "4").label("topology.kubernetes.io/zone", "zone-a"))
        .await;
    k.add_node(NodeSpec::new("n2", "4").label("topology.kubernetes.io/zone", "zone-b"))
        .await;

    // Node IPAM: distinct /24s of the cluster CIDR.
    let nodes: Api<Node> = Api::all(client.clone());
    let cidrs = eventually(Duration::from_secs(20), "pod CIDRs", || async {
        let l = nodes.list(&ListParams::default()).await.ok()?;
        let c: Vec<String> = l
            .items
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
            .collect();
        (c.len() == 2).then_some(c)
    })
    .await;
    assert_ne!(cidrs[0], cidrs[1]);
    assert!(
        cidrs
            .iter()
            .all(|c| c.starts_with("10.244.") && c.ends_with(".0/24")),
        "{cidrs:?}"
    );

    plane.cluster.api.kubectl_stdin(
        &[
            "create",
            "namespace",
            "shop",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        "",
    );
    plane.cluster.api.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
    );
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "shop");
    eventually(
        Duration::from_secs(20),
        "default service account",
        || async { sas.get_opt("default").await.ok().flatten() },
    )
    .await;

    let out = plane.cluster.api.kubectl_stdin(&["apply", "-f", "-"], APP);
    assert!(out.status.success(), "{}", common::stderr(&out));
    plane.kubectl_ok(&[
        "-n",
        "shop",
        "rollout",
        "status",
        "deployment/web",
        "--timeout=60s",
    ]);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "shop");
    let slice = eventually(
        Duration::from_secs(20),
        "slice with 2 ready endpoints",
        || async {
            let l = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .ok()?;
            l.items.into_iter().find(|s| {
                s.endpoints
                    .iter()
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                    .count()
                    == 2
            })
        },
    )
    .await;
    assert_eq!(
        slice.labels()["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice.address_type, "IPv4");
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port),
        (Some("web"), Some(8080)),
        "named targetPort resolved"
    );
    let mut zones: Vec<String> = slice
        .endpoints
        .iter()
        .filter_map(|e| e.zone.clone())
        .collect();
    zones.sort();
    assert_eq!(
        zones,
        vec!["zone-a", "zone-b"],
        "spread over both nodes, zones filled in"
    );
    assert!(slice.endpoints.iter().all(|e| e.node_name.is_some()
        && e.target_ref.as_ref().and_then(|r| r.kind.as_deref()) == Some("Pod")));
    let owner = &slice.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Service", "web")
    );
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "shop");
    let e = eventually(Duration::from_secs(20), "endpoints", || async {
        let e = eps.get_opt("web").await.ok()??;
        (e.subsets.as_ref()?.first()?.addresses.as_ref()?.len() == 2).then_some(e)
    })
    .await;
    assert_eq!(e.subsets.unwrap()[0].ports.as_ref().unwrap()[0].port, 8080);
    let describe = plane.kubectl_ok(&["-n", "shop", "describe", "service", "web"]);
    assert!(describe.contains(":8080"), "{describe}");
    // A Service without a selector is left alone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=manual"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(eps.get_opt("manual").await.unwrap().is_none());

    // Orphan propagation keeps the ReplicaSet, without its owner reference.
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "shop");
    let deps: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), "shop");
    deps.delete(
        "web",
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let rs = eventually(Duration::from_secs(20), "orphaned ReplicaSet", || async {
        let gone = deps.get_opt("web").await.ok()?.is_none();
        let rs = rss
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()?;
        (gone && rs.owner_references().is_empty()).then_some(rs)
    })
    .await;
    // Foreground: the ReplicaSet stays until its pods are gone.
    rss.delete(&rs.name_any(), &DeleteParams::foreground())
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    eventually(
        Duration::from_secs(30),
        "foreground deletion done",
        || async {
            let rs_left = rss.list(&ListParams::default()).await.ok()?.items.len();
            let pods_left = pods.list(&ListParams::default()).await.ok()?.items.len();
            (rs_left == 0 && pods_left == 0).then_some(())
        },
    )
    .await;

    // Deleting the namespace deletes what is in it, then the namespace.
    plane.cluster.api.kubectl_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\ndata:\n  a: b\n");
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.delete("shop", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(40), "namespace gone", || async {
        nss.get_opt("shop").await.ok()?.is_none().then_some(())
    })
    .await;
}
