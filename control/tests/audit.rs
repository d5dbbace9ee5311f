//! The audit log with the real kubectl against the real API server
//! (`--audit-policy-file`, `--audit-log-path`, `--audit-log-maxsize`):
//! what each request leaves in the log, and rotation that loses nothing.

mod common;

use std::path::{Path, PathBuf};

use baton_e2e::kubectl::Kubectl;
use common::{ApiServer, Etcd, stderr};
use serde_json::Value;

/// Metadata for everything, RequestResponse for configmaps, nothing for
/// the health checks.
const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: [/readyz*, /healthz*, /livez*]
- level: RequestResponse
  resources:
  - group: \"\"
    resources: [configmaps]
- level: Metadata
";

fn write_policy(dir: &Path, policy: &str) -> PathBuf {
    let path = dir.join("policy.yaml");
    std::fs::write(&path, policy).unwrap();
    path
}

/// Every event of the log and its rotated backups; each line must parse.
fn events(log: &Path) -> Vec<Value> {
    let dir = log.parent().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("audit") && name.ends_with(".log")
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{f:?} ends mid-line"
        );
        for line in text.lines() {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{f:?}: {e}: {line}"));
            assert_eq!(v["kind"], "Event");
            assert_eq!(v["apiVersion"], "audit.k8s.io/v1");
            out.push(v);
        }
    }
    out
}

/// The events at `stage` that `pick` selects.
fn at<'a>(events: &'a [Value], stage: &str, pick: impl Fn(&Value) -> bool) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["stage"] == stage && pick(e))
        .collect()
}

fn about(e: &Value, verb: &str, resource: &str) -> bool {
    e["verb"] == verb && e["objectRef"]["resource"] == resource
}

#[test]
fn requests_are_audited_as_the_policy_says() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), POLICY);
    let log = dir.path().join("audit.log");
    let etcd = Etcd::start();
    let api = ApiServer::start_with(
        &etcd,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-log-path",
            log.to_str().unwrap(),
        ],
    );

    api.kubectl_ok(&["create", "configmap", "audited", "--from-literal=a=1"]);
    api.kubectl_ok(&["get", "configmap", "audited", "-o", "json"]);
    // The admin may impersonate; `nobody` may not list pods.
    let out = api.kubectl(&["get", "pods", "--as=nobody"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    // A user with no bindings is refused.
    let jane_config = dir.path().join("jane.conf");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_baton-control"))
        .args(["kubeconfig", "--cert-dir"])
        .arg(api.cert_dir())
        .args(["--server", &api.url(), "--user", "jane", "--out"])
        .arg(&jane_config)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let jane = Kubectl::new(&jane_config).with_home(dir.path().join("jane-home"));
    let out = jane.run(&["get", "secrets"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    // A bearer token that authenticates no one: 401, and the audit ID in
    // the response's header.
    let headers = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(api.cert_dir().join("ca.crt"))
        .args(["-H", "Authorization: Bearer not-a-token"])
        .arg(format!("{}/api/v1/namespaces/default/pods", api.url()))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout).to_lowercase();
    assert!(headers.contains(" 401"), "{headers}");
    let unauthenticated_id = headers
        .lines()
        .find_map(|l| l.strip_prefix("audit-id:"))
        .map(|v| v.trim().to_owned())
        .expect("an Audit-ID header");

    let events = events(&log);
    let admin = |e: &Value| e["user"]["username"] == "kubernetes-admin";

    // The create: RequestResponse, with the object sent and the one
    // stored.
    let created = at(&events, "ResponseComplete", |e| {
        about(e, "create", "configmaps") && admin(e)
    });
    assert_eq!(created.len(), 1, "{created:?}");
    let c = created[0];
    assert_eq!(c["level"], "RequestResponse");
    assert_eq!(
        c["objectRef"],
        serde_json::json!({"resource": "configmaps", "namespace": "default",
                           "name": "audited", "apiVersion": "v1"})
    );
    assert_eq!(c["responseStatus"]["code"], 201);
    assert_eq!(c["requestObject"]["kind"], "ConfigMap");
    assert_eq!(c["requestObject"]["data"]["a"], "1");
    assert_eq!(c["responseObject"]["metadata"]["name"], "audited");
    assert!(c["responseObject"]["metadata"]["uid"].is_string());
    assert_eq!(c["annotations"]["authorization.k8s.io/decision"], "allow");
    assert_eq!(c["sourceIPs"], serde_json::json!(["127.0.0.1"]));
    assert!(c["userAgent"].as_str().unwrap().starts_with("kubectl"));
    assert!(uuid_like(c["auditID"].as_str().unwrap()));
    assert!(
        c["requestReceivedTimestamp"].as_str().unwrap() <= c["stageTimestamp"].as_str().unwrap()
    );
    // Its RequestReceived event came first, with the same ID.
    let received = at(&events, "RequestReceived", |e| e["auditID"] == c["auditID"]);
    assert_eq!(received.len(), 1);
    assert!(received[0].get("responseStatus").is_none());

    // The get: the object read.
    let got = at(&events, "ResponseComplete", |e| {
        about(e, "get", "configmaps") && e["objectRef"]["name"] == "audited"
    });
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["level"], "RequestResponse");
    assert_eq!(got[0]["responseStatus"]["code"], 200);
    assert_eq!(got[0]["responseObject"]["data"]["a"], "1");
    assert!(got[0].get("requestObject").is_none());

    // The impersonated list: the admin, acting as nobody, refused.
    let impersonated = at(&events, "ResponseComplete", |e| {
        about(e, "list", "pods") && e["impersonatedUser"]["username"] == "nobody"
    });
    assert_eq!(impersonated.len(), 1, "{impersonated:?}");
    let i = impersonated[0];
    assert!(admin(i));
    assert_eq!(i["level"], "Metadata");
    assert_eq!(i["responseStatus"]["code"], 403);
    assert_eq!(i["responseStatus"]["reason"], "Forbidden");
    assert_eq!(i["annotations"]["authorization.k8s.io/decision"], "forbid");
    assert!(i.get("responseObject").is_none());

    // Jane's refusal.
    let refused = at(&events, "ResponseComplete", |e| {
        about(e, "list", "secrets") && e["user"]["username"] == "jane"
    });
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["responseStatus"]["code"], 403);
    assert_eq!(refused[0]["objectRef"]["namespace"], "default");
    assert!(
        refused[0]["user"]["groups"]
            .as_array()
            .unwrap()
            .contains(&Value::from("system:authenticated"))
    );

    // The bad token: one ResponseStarted event, no user.
    let unauthenticated: Vec<&Value> = events
        .iter()
        .filter(|e| e["auditID"] == unauthenticated_id.as_str())
        .collect();
    assert_eq!(unauthenticated.len(), 1, "{unauthenticated:?}");
    let u = unauthenticated[0];
    assert_eq!(u["stage"], "ResponseStarted");
    assert_eq!(u["user"], serde_json::json!({}));
    assert_eq!(u["responseStatus"]["code"], 401);
    assert!(about(u, "list", "pods"));

    // Health checks are level None: not logged.
    assert!(
        events
            .iter()
            .all(|e| !e["requestURI"].as_str().unwrap().starts_with("/readyz")),
        "a /readyz event"
    );
    // Every request has at most one event per stage.
    let mut seen = std::collections::BTreeSet::new();
    for e in &events {
        assert!(
            seen.insert((e["auditID"].to_string(), e["stage"].to_string())),
            "two {} events for {}",
            e["stage"],
            e["auditID"]
        );
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_log_loses_no_event() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;

    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), POLICY);
    let log = dir.path().join("audit.log");
    let etcd = Etcd::start();
    let api = ApiServer::start_with(
        &etcd,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-log-path",
            log.to_str().unwrap(),
            "--audit-log-maxsize",
            "1",
        ],
    );
    // A configmap of 4 KiB: each get logs it at RequestResponse.
    api.kubectl_ok(&[
        "create",
        "configmap",
        "big",
        &format!("--from-literal=data={}", "x".repeat(4096)),
    ]);
    let client = api.client().await;
    let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
    const GETS: usize = 800;
    let results: Vec<_> = futures::stream::iter(0..GETS)
        .map(|_| {
            let configmaps = configmaps.clone();
            async move { configmaps.get("big").await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(results.iter().all(Result::is_ok));

    let backups: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("audit-"))
        .collect();
    assert!(backups.len() >= 2, "{backups:?}");
    for b in &backups {
        // audit-YYYY-MM-DDTHH-MM-SS.mmm.log
        let time = b
            .strip_prefix("audit-")
            .and_then(|r| r.strip_suffix(".log"))
            .unwrap_or_else(|| panic!("{b}"));
        assert_eq!(time.len(), "2006-01-02T15-04-05.000".len(), "{b}");
        assert_eq!(&time[10..11], "T", "{b}");
        assert_eq!(&time[19..20], ".", "{b}");
        let size = std::fs::metadata(dir.path().join(b)).unwrap().len();
        assert!(size <= 1024 * 1024, "{b}: {size} bytes");
    }
    let events = events(&log);
    let gets = |stage| {
        at(&events, stage, |e| {
            about(e, "get", "configmaps") && e["objectRef"]["name"] == "big"
        })
        .len()
    };
    assert_eq!(gets("RequestReceived"), GETS);
    assert_eq!(gets("ResponseComplete"), GETS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_is_audited_when_it_starts_and_when_it_ends() {
    use futures::TryStreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::WatchParams;

    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), POLICY);
    let log = dir.path().join("audit.log");
    let etcd = Etcd::start();
    let api = ApiServer::start_with(
        &etcd,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-log-path",
            log.to_str().unwrap(),
        ],
    );
    let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(api.client().await, "default");
    // The server ends the watch after a second.
    let stream = configmaps
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap();
    let _: Vec<_> = stream.try_collect().await.unwrap();
    // The stream's end is noticed once the server drops its body.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (started, completed) = loop {
        let events = events(&log);
        let watch = |stage| -> Vec<Value> {
            at(&events, stage, |e| about(e, "watch", "configmaps"))
                .into_iter()
                .cloned()
                .collect()
        };
        let (started, completed) = (watch("ResponseStarted"), watch("ResponseComplete"));
        if !completed.is_empty() || std::time::Instant::now() > deadline {
            break (started, completed);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(started[0]["auditID"], completed[0]["auditID"]);
    assert_eq!(started[0]["responseStatus"]["code"], 200);
    assert_eq!(started[0]["level"], "RequestResponse");
    // A stream's objects are not logged.
    assert!(completed[0].get("responseObject").is_none());
    assert!(
        started[0]["stageTimestamp"].as_str().unwrap()
            <= completed[0]["stageTimestamp"].as_str().unwrap()
    );
}

/// PodSecurity tells the audit log the enforce policy a pod was checked
/// against and how pods and templates violate the namespace's audit level;
/// a request for an unknown path is audited with its 404.
#[test]
fn pod_security_annotates_the_audit_events_and_unknown_paths_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), POLICY);
    let log = dir.path().join("audit.log");
    let etcd = Etcd::start();
    let api = ApiServer::start_with(
        &etcd,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-log-path",
            log.to_str().unwrap(),
        ],
    );
    api.kubectl_ok(&["create", "namespace", "guarded"]);
    api.kubectl_ok(&[
        "label",
        "namespace",
        "guarded",
        "pod-security.kubernetes.io/enforce=baseline",
        "pod-security.kubernetes.io/audit=restricted",
    ]);
    let pod = |name: &str, privileged: bool| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"guarded"}},
"spec":{{"containers":[{{"name":"c","image":"busybox","securityContext":{{"privileged":{privileged}}}}}]}}}}"#
        )
    };
    let out = api.kubectl_stdin(&["create", "-f", "-"], &pod("plain", false));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = api.kubectl_stdin(&["create", "-f", "-"], &pod("privileged", true));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("violates PodSecurity \"baseline:latest\""),
        "{}",
        stderr(&out)
    );
    api.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "-n",
        "guarded",
    ]);
    let out = api.kubectl(&["get", "--raw", "/no/such/path"]);
    assert!(!out.status.success());
    // A method the path does not take (PUT on a collection): 405, audited.
    let body = api.dir.path().join("empty.json");
    std::fs::write(&body, "{}").unwrap();
    let out = api.kubectl(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/guarded/pods",
        "-f",
        body.to_str().unwrap(),
    ]);
    assert!(!out.status.success());

    let events = events(&log);
    let created = |name: &str| {
        at(&events, "ResponseComplete", |e| {
            about(e, "create", "pods") && e["objectRef"]["name"] == name
        })
    };
    let plain = created("plain");
    assert_eq!(plain.len(), 1, "{events:#?}");
    let annotations = &plain[0]["annotations"];
    assert_eq!(
        annotations["pod-security.kubernetes.io/enforce-policy"],
        "baseline:latest"
    );
    let violations = annotations["pod-security.kubernetes.io/audit-violations"]
        .as_str()
        .unwrap_or_default();
    assert!(
        violations.starts_with("would violate PodSecurity \"restricted:latest\": "),
        "{annotations}"
    );
    let refused = created("privileged");
    assert_eq!(refused.len(), 1, "{events:#?}");
    assert_eq!(refused[0]["responseStatus"]["code"], 403);
    assert_eq!(
        refused[0]["annotations"]["pod-security.kubernetes.io/enforce-policy"],
        "baseline:latest"
    );
    // A template is audited, never enforced.
    let deployment = at(&events, "ResponseComplete", |e| {
        about(e, "create", "deployments")
    });
    assert_eq!(deployment.len(), 1, "{events:#?}");
    let annotations = &deployment[0]["annotations"];
    assert!(annotations["pod-security.kubernetes.io/enforce-policy"].is_null());
    assert!(
        annotations["pod-security.kubernetes.io/audit-violations"]
            .as_str()
            .is_some_and(|v| v.starts_with("would violate PodSecurity \"restricted:latest\": ")),
        "{annotations}"
    );

    let unknown = at(&events, "ResponseComplete", |e| {
        e["requestURI"] == "/no/such/path"
    });
    assert_eq!(unknown.len(), 1, "{events:#?}");
    assert_eq!(unknown[0]["verb"], "get");
    assert_eq!(unknown[0]["responseStatus"]["code"], 404);
    let refused = at(&events, "ResponseComplete", |e| {
        e["requestURI"] == "/api/v1/namespaces/guarded/pods" && e["verb"] == "put"
    });
    assert_eq!(refused.len(), 1, "{events:#?}");
    assert_eq!(refused[0]["responseStatus"]["code"], 405);
    assert_eq!(refused[0]["user"]["username"], "kubernetes-admin");
}
