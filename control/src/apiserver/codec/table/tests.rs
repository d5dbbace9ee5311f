//! Expected cells follow kube-apiserver's printers
//! (pkg/printers/internalversion/printers.go, and the cases of its
//! printers_test.go) and apimachinery's `duration.HumanDuration`.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::kinds;

fn now() -> Timestamp {
    "2025-06-01T12:00:00Z".parse().expect("timestamp")
}

/// `now` minus `secs`, as an RFC 3339 string.
fn ago(secs: i64) -> String {
    Timestamp::from_second(now().as_second() - secs)
        .expect("in range")
        .to_string()
}

fn resource(group: &str, plural: &str) -> &'static Resource {
    let version = "v1";
    kinds::find(group, version, plural).expect("served resource")
}

fn cells(group: &str, plural: &str, obj: Value) -> Vec<Value> {
    let r = resource(group, plural);
    let options = TableOptions::new(now());
    let rows = rows(r, &[&obj], &options);
    rows[0]["cells"].as_array().expect("cells").clone()
}

fn definitions(group: &str, kind: &str) -> Vec<Value> {
    let r = kinds::find_kind(group, "v1", kind).expect("served kind");
    column_definitions(r.strategy.printer())
}

fn names(group: &str, kind: &str) -> Vec<(String, i64)> {
    definitions(group, kind)
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                c["priority"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn pod(status: Value) -> Value {
    json!({
        "metadata": {"name": "web-1", "creationTimestamp": ago(303)},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "node-1"},
        "status": status,
    })
}

#[test]
fn pod_columns_match_kube_apiserver() {
    assert_eq!(
        names("", "Pod"),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1),
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    let defs = definitions("", "Pod");
    assert_eq!(defs[0]["format"], "name");
    assert_eq!(defs[3]["type"], "string");
    // Field docs come from the API types, as SwaggerDoc() does upstream.
    assert!(
        defs[0]["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Name must be unique within a namespace"))
    );
    assert!(
        defs[5]["description"]
            .as_str()
            .is_some_and(|d| d.contains("IP address allocated to the pod"))
    );
}

#[test]
fn running_pod_with_restarts() {
    let c = cells(
        "",
        "pods",
        pod(json!({
            "phase": "Running",
            "podIPs": [{"ip": "10.244.1.5"}],
            "containerStatuses": [{
                "name": "app", "ready": true, "restartCount": 2,
                "state": {"running": {"startedAt": ago(170)}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(180)}},
            }],
        })),
    );
    assert_eq!(
        c,
        [
            "web-1",
            "1/1",
            "Running",
            "2 (3m ago)",
            "5m3s",
            "10.244.1.5",
            "node-1",
            "<none>",
            "<none>"
        ]
        .map(|s| json!(s))
    );
}

#[test]
fn pod_status_follows_container_states() {
    let crash = pod(json!({
        "phase": "Running",
        "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        }],
    }));
    let c = cells("", "pods", crash);
    assert_eq!(
        (c[1].clone(), c[2].clone(), c[3].clone()),
        (json!("0/1"), json!("CrashLoopBackOff"), json!("5"))
    );

    let mut init = pod(json!({
        "phase": "Pending",
        "initContainerStatuses": [{"name": "setup", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "PodInitializing"}}}],
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "PodInitializing"}}}],
    }));
    init["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"}]);
    assert_eq!(cells("", "pods", init.clone())[2], "Init:0/1");

    init["status"]["initContainerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    assert_eq!(cells("", "pods", init.clone())[2], "Init:CrashLoopBackOff");
    init["status"]["initContainerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 3}});
    assert_eq!(cells("", "pods", init)[2], "Init:ExitCode:3");

    let mut exited = pod(json!({
        "phase": "Running",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "signal": 9}}}],
    }));
    assert_eq!(cells("", "pods", exited.clone())[2], "Signal:9");
    exited["status"]["containerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 2}});
    assert_eq!(cells("", "pods", exited)[2], "ExitCode:2");

    let gated = pod(json!({
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
    }));
    assert_eq!(cells("", "pods", gated)[2], "SchedulingGated");
}

#[test]
fn completed_and_terminating_pods() {
    let done = pod(json!({
        "phase": "Succeeded",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
    }));
    let r = resource("", "pods");
    let row = &rows(r, &[&done], &TableOptions::new(now()))[0];
    assert_eq!(row["cells"][2], "Completed");
    assert_eq!(row["conditions"][0]["type"], "Completed");
    assert_eq!(row["conditions"][0]["reason"], "Succeeded");

    // A finished pod being deleted keeps its terminal status.
    let mut deleted_done = done.clone();
    deleted_done["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells("", "pods", deleted_done)[2], "Completed");

    let mut terminating = pod(json!({
        "phase": "Running",
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
            "state": {"running": {}}}],
    }));
    terminating["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells("", "pods", terminating.clone())[2], "Terminating");
    terminating["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells("", "pods", terminating)[2], "Unknown");
}

#[test]
fn sidecars_count_towards_ready_and_gates_are_counted() {
    let mut p = pod(json!({
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True"},
            {"type": "example.com/gate", "status": "True"},
        ],
        "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true,
            "restartCount": 1, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(60)}}}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
            "state": {"running": {}}}],
    }));
    p["spec"]["initContainers"] =
        json!([{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]);
    p["spec"]["readinessGates"] = json!([
        {"conditionType": "example.com/gate"}, {"conditionType": "example.com/other"},
    ]);
    let c = cells("", "pods", p);
    assert_eq!(c[1], "2/2");
    assert_eq!(c[2], "Running");
    assert_eq!(c[3], "1 (60s ago)");
    assert_eq!(c[8], "1/2");
}

fn deployment() -> Value {
    json!({
        "metadata": {"name": "web", "creationTimestamp": ago(3 * 86400)},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
            "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"},
            ]}},
        },
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    })
}

#[test]
fn deployments_and_replica_sets() {
    assert_eq!(
        names("apps", "Deployment")
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        cells("apps", "deployments", deployment()),
        [
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("3d"),
            json!("nginx,log"),
            json!("nginx:1.27,busybox"),
            json!("app=web,tier in (a,b)")
        ]
    );
    let mut rs = deployment();
    rs["metadata"]["name"] = json!("web-5d4f");
    assert_eq!(
        cells("apps", "replicasets", rs),
        [
            json!("web-5d4f"),
            json!(3),
            json!(3),
            json!(2),
            json!("3d"),
            json!("nginx,log"),
            json!("nginx:1.27,busybox"),
            json!("app=web,tier in (a,b)")
        ]
    );
    let mut unset = deployment();
    unset["spec"].as_object_mut().map(|s| s.remove("selector"));
    assert_eq!(cells("apps", "replicasets", unset.clone())[7], "<none>");
    assert_eq!(cells("apps", "deployments", unset)[7], "");
}

#[test]
fn daemon_sets_and_controller_revisions() {
    let mut ds = deployment();
    ds["metadata"]["name"] = json!("agent");
    ds["spec"]["template"]["spec"]["nodeSelector"] = json!({"tier": "worker"});
    ds["status"] = json!({"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 1, "numberAvailable": 2});
    assert_eq!(
        cells("apps", "daemonsets", ds),
        [
            json!("agent"),
            json!(3),
            json!(3),
            json!(2),
            json!(1),
            json!(2),
            json!("tier=worker"),
            json!("3d"),
            json!("nginx,log"),
            json!("nginx:1.27,busybox"),
            json!("app=web,tier in (a,b)")
        ]
    );
    let cr = json!({"metadata": {"name": "agent-7c9d", "creationTimestamp": ago(45),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u", "controller": true}]},
        "revision": 2});
    assert_eq!(
        cells("apps", "controllerrevisions", cr),
        [
            json!("agent-7c9d"),
            json!("daemonset.apps/agent"),
            json!(2),
            json!("45s")
        ]
    );
}

fn service(spec: Value) -> Value {
    json!({"metadata": {"name": "web", "creationTimestamp": ago(45)}, "spec": spec})
}

#[test]
fn services_print_type_ips_and_ports() {
    let cluster_ip = service(json!({
        "type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
        "selector": {"app": "web", "tier": "front"},
    }));
    assert_eq!(
        cells("", "services", cluster_ip),
        [
            "web",
            "ClusterIP",
            "10.96.0.10",
            "<none>",
            "80/TCP,53/UDP",
            "45s",
            "app=web,tier=front"
        ]
        .map(|s| json!(s))
    );
    let node_port = service(json!({
        "type": "NodePort", "clusterIPs": ["10.96.0.11"], "externalIPs": ["192.0.2.1"],
        "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
    }));
    let c = cells("", "services", node_port);
    assert_eq!(
        (c[3].clone(), c[4].clone(), c[6].clone()),
        (json!("192.0.2.1"), json!("80:30080/TCP"), json!("<none>"))
    );
    let lb = service(json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "ports": []}));
    let c = cells("", "services", lb);
    assert_eq!(
        (c[3].clone(), c[4].clone()),
        (json!("<pending>"), json!("<none>"))
    );
    let mut lb_ready = service(json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"]}));
    lb_ready["status"] =
        json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"hostname": "lb.example"}]}});
    assert_eq!(
        cells("", "services", lb_ready)[3],
        "198.51.100.7,lb.example"
    );
    let external = service(json!({"type": "ExternalName", "externalName": "db.example.com"}));
    let c = cells("", "services", external);
    assert_eq!(
        (c[2].clone(), c[3].clone()),
        (json!("<none>"), json!("db.example.com"))
    );
    let headless = service(json!({"clusterIP": "None", "clusterIPs": ["None"]}));
    assert_eq!(
        cells("", "services", headless)[1..3],
        [json!("ClusterIP"), json!("None")]
    );
}

#[test]
fn endpoints_and_slices_list_three_then_more() {
    let ep = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(10)},
        "subsets": [{
            "addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.1.3"}, {"ip": "10.244.2.4"}, {"ip": "fd00::5"}],
            "ports": [{"port": 80}],
        }],
    });
    assert_eq!(
        cells("", "endpoints", ep)[1],
        "10.244.1.2:80,10.244.1.3:80,10.244.2.4:80 + 1 more..."
    );
    let empty = json!({"metadata": {"name": "none", "creationTimestamp": ago(10)}});
    assert_eq!(cells("", "endpoints", empty)[1], "<none>");

    let slice = json!({
        "metadata": {"name": "web-abc", "creationTimestamp": ago(10)},
        "addressType": "IPv4",
        "ports": [{"port": 80, "name": "http"}, {"name": "metrics"}, {}],
        "endpoints": [{"addresses": ["10.244.1.2"]}, {"addresses": ["10.244.1.3"]}],
    });
    assert_eq!(
        cells("discovery.k8s.io", "endpointslices", slice),
        [
            "web-abc",
            "IPv4",
            "80,metrics,*",
            "10.244.1.2,10.244.1.3",
            "10s"
        ]
        .map(|s| json!(s))
    );
    let bare = json!({"metadata": {"name": "x"}, "addressType": "IPv4", "endpoints": []});
    let c = cells("discovery.k8s.io", "endpointslices", bare);
    assert_eq!(
        (c[2].clone(), c[3].clone(), c[4].clone()),
        (json!("<unset>"), json!("<unset>"), json!("<unknown>"))
    );
}

#[test]
fn nodes_print_status_roles_and_addresses() {
    let node = json!({
        "metadata": {"name": "node-1", "creationTimestamp": ago(8 * 86400),
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "10.0.0.11"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0-baton", "osImage": "Debian", "kernelVersion": "6.18.0", "containerRuntimeVersion": ""},
        },
    });
    assert_eq!(
        cells("", "nodes", node),
        [
            "node-1",
            "Ready,SchedulingDisabled",
            "control-plane,edge",
            "8d",
            "v1.33.0-baton",
            "10.0.0.11",
            "<none>",
            "Debian",
            "6.18.0",
            "<unknown>"
        ]
        .map(|s| json!(s))
    );
    let fresh = json!({"metadata": {"name": "node-2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    let c = cells("", "nodes", fresh);
    assert_eq!(
        (c[1].clone(), c[2].clone(), c[3].clone()),
        (json!("NotReady"), json!("<none>"), json!("<unknown>"))
    );
    assert_eq!(
        cells("", "nodes", json!({"metadata": {"name": "n"}}))[1],
        "Unknown"
    );
}

#[test]
fn events_print_last_seen_object_and_message() {
    assert_eq!(
        names("", "Event"),
        [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    let ev = json!({
        "metadata": {"name": "web-1.17f", "creationTimestamp": ago(400)},
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "type": "Normal", "message": "  Container image already present  ",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(400), "lastTimestamp": ago(30), "count": 4,
    });
    assert_eq!(
        cells("", "events", ev),
        [
            json!("30s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web-1"),
            json!("spec.containers{app}"),
            json!("kubelet, node-1"),
            json!("Container image already present"),
            json!("6m40s"),
            json!(4),
            json!("web-1.17f")
        ]
    );
    // An events.k8s.io/v1 Event, printed as the core Event it is stored as.
    let v1 = json!({
        "metadata": {"name": "sched.1"},
        "eventTime": ago(90), "reason": "Scheduled", "type": "Normal",
        "regarding": {"kind": "Pod", "name": "web-2"}, "note": "Successfully assigned",
        "reportingController": "default-scheduler", "reportingInstance": "sched-0",
    });
    assert_eq!(
        cells("events.k8s.io", "events", v1),
        [
            json!("90s"),
            json!("Normal"),
            json!("Scheduled"),
            json!("pod/web-2"),
            json!(""),
            json!("default-scheduler, sched-0"),
            json!("Successfully assigned"),
            json!("90s"),
            json!(1),
            json!("sched.1")
        ]
    );
}

#[test]
fn config_storage_and_small_kinds() {
    let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": ago(5)}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells("", "configmaps", cm),
        [json!("cfg"), json!(3), json!("5s")]
    );
    let secret = json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells("", "secrets", secret),
        [
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("<unknown>")
        ]
    );
    let sa = json!({"metadata": {"name": "default", "creationTimestamp": ago(5)}});
    assert_eq!(
        cells("", "serviceaccounts", sa),
        [json!("default"), json!(0), json!("5s")]
    );
    let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(3600)}, "status": {"phase": "Active"}});
    assert_eq!(
        cells("", "namespaces", ns),
        ["kube-system", "Active", "60m"].map(|s| json!(s))
    );
    let lease = json!({"metadata": {"name": "node-1", "creationTimestamp": ago(5)}, "spec": {"holderIdentity": "node-1"}});
    assert_eq!(
        cells("coordination.k8s.io", "leases", lease),
        ["node-1", "node-1", "5s"].map(|s| json!(s))
    );
    let pc = json!({"metadata": {"name": "high", "creationTimestamp": ago(5)}, "value": 1000, "preemptionPolicy": "PreemptLowerPriority"});
    assert_eq!(
        cells("scheduling.k8s.io", "priorityclasses", pc),
        [
            json!("high"),
            json!(1000),
            json!(false),
            json!("5s"),
            json!("PreemptLowerPriority")
        ]
    );
    let pv = json!({
        "metadata": {"name": "pv-1", "creationTimestamp": ago(5)},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
            "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"},
    });
    assert_eq!(
        cells("", "persistentvolumes", pv),
        [
            "pv-1",
            "10Gi",
            "RWO,RWX",
            "Retain",
            "Bound",
            "default/data",
            "local",
            "<unset>",
            "",
            "5s",
            "Filesystem"
        ]
        .map(|s| json!(s))
    );
    let pending = json!({
        "metadata": {"name": "data", "creationTimestamp": ago(5),
            "annotations": {"volume.beta.kubernetes.io/storage-class": "beta"}},
        "spec": {"storageClassName": "local", "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Pending"},
    });
    assert_eq!(
        cells("", "persistentvolumeclaims", pending),
        [
            "data", "Pending", "", "", "", "beta", "<unset>", "5s", "<unset>"
        ]
        .map(|s| json!(s))
    );
}

#[test]
fn rbac_bindings_and_default_tables() {
    let rb = json!({
        "metadata": {"name": "read", "creationTimestamp": ago(5)},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "namespace": "ci", "name": "bot"}, {"kind": "User", "name": "bob"}],
    });
    assert_eq!(
        cells("rbac.authorization.k8s.io", "clusterrolebindings", rb),
        [
            "read",
            "ClusterRole/view",
            "5s",
            "alice, bob",
            "devs",
            "ci/bot"
        ]
        .map(|s| json!(s))
    );
    assert_eq!(
        definitions("rbac.authorization.k8s.io", "RoleBinding")[3]["description"],
        "Users in the roleBinding"
    );
    assert_eq!(
        names("rbac.authorization.k8s.io", "ClusterRole"),
        [("Name".to_string(), 0), ("Created At".to_string(), 0)]
    );
    assert_eq!(
        definitions("rbac.authorization.k8s.io", "Role")[1]["type"],
        "date"
    );
    let role = json!({"metadata": {"name": "admin", "creationTimestamp": "2024-02-03T04:05:06Z"}});
    assert_eq!(
        cells("rbac.authorization.k8s.io", "clusterroles", role),
        ["admin", "2024-02-03T04:05:06Z"].map(|s| json!(s))
    );
}

#[test]
fn tables_carry_metadata_and_the_requested_object() {
    let r = resource("apps", "deployments");
    let d = deployment();
    let mut options = TableOptions::new(now());
    options
        .list_meta
        .insert("resourceVersion".into(), json!("42"));
    let table = to_table(r, &[&d], &options);
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(table["metadata"]["resourceVersion"], "42");
    assert_eq!(table["columnDefinitions"].as_array().map(Vec::len), Some(8));
    assert_eq!(
        table["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": d["metadata"]})
    );

    options.include_object = IncludeObject::Object;
    options.no_headers = true;
    let later = to_table(r, &[&d], &options);
    assert_eq!(later["columnDefinitions"], Value::Null);
    assert_eq!(later["rows"][0]["object"], d);
    options.include_object = IncludeObject::None;
    assert_eq!(to_table(r, &[], &options)["rows"], json!([]));
    assert_eq!(rows(r, &[&d], &options)[0]["object"], Value::Null);

    assert_eq!(IncludeObject::parse(None), Some(IncludeObject::Metadata));
    assert_eq!(
        IncludeObject::parse(Some("Object")),
        Some(IncludeObject::Object)
    );
    assert_eq!(
        IncludeObject::parse(Some("None")),
        Some(IncludeObject::None)
    );
    assert_eq!(IncludeObject::parse(Some("bogus")), None);

    let scale = json!({"metadata": {"name": "web", "creationTimestamp": ago(5)}, "spec": {"replicas": 3}, "status": {"replicas": 2}});
    let t = printed_table(
        &kinds::printers::workloads::SCALE,
        &[&scale],
        &TableOptions::new(now()),
    );
    assert_eq!(t["rows"][0]["cells"], json!(["web", 3, 2, "5s"]));
    assert_eq!(t["columnDefinitions"][0]["format"], "");
}

#[test]
fn every_served_resource_has_cells_for_every_column() {
    let options = TableOptions::new(now());
    let empty = json!({"metadata": {"name": "x"}});
    for r in kinds::RESOURCES {
        let columns = column_definitions(r.strategy.printer()).len();
        let row = &rows(r, &[&empty], &options)[0];
        assert_eq!(
            row["cells"].as_array().map(Vec::len),
            Some(columns),
            "{}",
            r.kind
        );
        for c in column_definitions(r.strategy.printer()) {
            if c["name"] != "Created At" {
                assert!(
                    !c["description"].as_str().unwrap_or("").is_empty(),
                    "{}: {}",
                    r.kind,
                    c["name"]
                );
            }
        }
    }
}

#[test]
fn jobs_and_cron_jobs() {
    assert_eq!(
        names("batch", "Job"),
        [
            ("Name", 0),
            ("Status", 0),
            ("Completions", 0),
            ("Duration", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1),
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    let job = json!({"metadata": {"name": "pi", "creationTimestamp": ago(120)},
        "spec": {"completions": 1, "parallelism": 1},
        "status": {"succeeded": 0, "failed": 2, "startTime": ago(120),
            "conditions": [{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}});
    assert_eq!(
        cells("batch", "jobs", job)[..5].to_vec(),
        vec![
            json!("pi"),
            json!("Failed"),
            json!("0/1"),
            json!("2m"),
            json!("2m")
        ]
    );
    assert_eq!(
        names("batch", "CronJob")
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
}

#[test]
fn pod_disruption_budgets() {
    assert_eq!(
        names("policy", "PodDisruptionBudget"),
        [
            ("Name".to_string(), 0),
            ("Min Available".to_string(), 0),
            ("Max Unavailable".to_string(), 0),
            ("Allowed Disruptions".to_string(), 0),
            ("Age".to_string(), 0),
        ]
    );
    let pdb = json!({"metadata": {"name": "web", "creationTimestamp": ago(5)},
        "spec": {"maxUnavailable": "25%"}, "status": {"disruptionsAllowed": 2}});
    assert_eq!(
        cells("policy", "poddisruptionbudgets", pdb),
        [
            json!("web"),
            json!("N/A"),
            json!("25%"),
            json!(2),
            json!("5s")
        ]
    );
}
