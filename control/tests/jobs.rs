//! Jobs and CronJobs with the Job, CronJob, TTL-after-finished and garbage
//! collector controllers, against real etcd and the real API server,
//! driven with the real kubectl; nodes are Node objects whose kubelet the
//! test plays, finishing pods through their status subresource.

mod common;
mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use support::kubelet::{Kubelets, NodeSpec};
use support::{Plane, eventually};

async fn one_node(client: &kube::Client) -> Kubelets {
    let k = Kubelets::start(client.clone(), Duration::from_millis(200));
    k.add_node(NodeSpec::new("node-a", "8")).await;
    k
}

/// The pods of a Job, by its job-name label.
async fn job_pods(client: &kube::Client, job: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// What a kubelet writes when the pod's only container exits.
async fn finish(client: &kube::Client, pod: &Pod, exit_code: i32) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let now = Time(jiff::Timestamp::now());
    let container = pod.spec.as_ref().unwrap().containers[0].name.clone();
    let (phase, reason) = if exit_code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let status = json!({"status": {
        "phase": phase,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
        ],
        "containerStatuses": [{"name": container, "image": "busybox", "imageID": "", "ready": false,
            "restartCount": 0, "started": false,
            "state": {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": now, "finishedAt": now}}}],
    }});
    api.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Strategic(status),
    )
    .await
    .expect("pod status");
}

async fn job(client: &kube::Client, name: &str) -> Job {
    Api::<Job>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .unwrap()
}

fn conditions(j: &Job) -> Vec<(String, String, String)> {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status, c.reason.unwrap_or_default()))
        .collect()
}

/// `kubectl get <what>` as rows of whitespace-separated cells.
fn table(plane: &Plane, args: &[&str]) -> Vec<Vec<String>> {
    plane
        .kubectl_ok(args)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_job_runs_to_complete_and_a_failing_job_to_failed() {
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let _k = one_node(&client).await;

    let out = plane.kubectl_ok(&[
        "create",
        "job",
        "pi",
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    assert!(out.contains("job.batch/pi created"), "{out}");
    let pod = eventually(Duration::from_secs(30), "the Job's pod runs", || async {
        let pods = job_pods(&client, "pi").await;
        (pods.len() == 1 && is_ready(&pods[0])).then(|| pods[0].clone())
    })
    .await;
    let j = job(&client, "pi").await;
    let uid = j.uid().unwrap();
    let labels = pod.labels();
    assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(labels["job-name"], "pi");
    assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
    assert_eq!(labels["controller-uid"], uid);
    assert!(pod.name_any().starts_with("pi-"), "{}", pod.name_any());
    let owner = &pod.owner_references()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.uid.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("Job", uid.as_str(), Some(true), Some(true))
    );
    // The Job carries its template's generated labels, as upstream's does.
    assert_eq!(j.labels()["batch.kubernetes.io/job-name"], "pi");
    let spec = j.spec.clone().unwrap();
    assert_eq!(
        (
            spec.parallelism,
            spec.completions,
            spec.backoff_limit,
            spec.completion_mode.as_deref(),
            spec.manual_selector
        ),
        (Some(1), Some(1), Some(6), Some("NonIndexed"), Some(false))
    );
    eventually(Duration::from_secs(20), "status.ready", || async {
        let s = job(&client, "pi").await.status.unwrap_or_default();
        (s.active == Some(1) && s.ready == Some(1) && s.start_time.is_some()).then_some(())
    })
    .await;
    let rows = table(&plane, &["get", "jobs"]);
    assert_eq!(
        rows[0],
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    );
    assert_eq!(rows[1][..3], ["pi", "Running", "0/1"]);

    finish(&client, &pod, 0).await;
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=30s",
    ]);
    let j = job(&client, "pi").await;
    assert_eq!(
        conditions(&j),
        vec![
            (
                "SuccessCriteriaMet".into(),
                "True".into(),
                "CompletionsReached".into()
            ),
            (
                "Complete".into(),
                "True".into(),
                "CompletionsReached".into()
            ),
        ]
    );
    let s = j.status.unwrap();
    assert_eq!(
        (s.succeeded, s.failed, s.active),
        (Some(1), Some(0), Some(0))
    );
    assert!(s.completion_time.is_some());
    let rows = table(&plane, &["get", "jobs"]);
    assert_eq!(rows[1][..3], ["pi", "Complete", "1/1"], "{rows:?}");
    let events = plane.kubectl_ok(&[
        "get",
        "events",
        "--field-selector=involvedObject.kind=Job,involvedObject.name=pi",
        "-o",
        "custom-columns=R:.reason,M:.message",
    ]);
    assert!(
        events.contains(&format!("Created pod: {}", pod.name_any())),
        "{events}"
    );
    assert!(
        events.contains("Completed") && events.contains("Job completed"),
        "{events}"
    );

    // A Job whose pods fail, with a backoff limit of one: the second
    // failure fails it.
    let manifest = r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fails"},
        "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 1"]}]}}}}"#;
    let o = plane
        .cluster
        .api
        .kubectl_stdin(&["create", "-f", "-"], manifest);
    assert!(o.status.success(), "{}", common::stderr(&o));
    for round in 1..=2 {
        let pod = eventually(Duration::from_secs(40), "a running pod to fail", || async {
            job_pods(&client, "fails")
                .await
                .into_iter()
                .find(|p| is_ready(p) && phase(p) == "Running")
        })
        .await;
        finish(&client, &pod, 1).await;
        eventually(Duration::from_secs(20), "the failure counted", || async {
            let s = job(&client, "fails").await.status.unwrap_or_default();
            (s.failed == Some(round)).then_some(())
        })
        .await;
    }
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/fails",
        "--timeout=30s",
    ]);
    let j = job(&client, "fails").await;
    assert_eq!(
        conditions(&j),
        vec![
            (
                "FailureTarget".into(),
                "True".into(),
                "BackoffLimitExceeded".into()
            ),
            (
                "Failed".into(),
                "True".into(),
                "BackoffLimitExceeded".into()
            ),
        ]
    );
    let rows = table(&plane, &["get", "job", "fails"]);
    assert_eq!(rows[1][..3], ["fails", "Failed", "0/1"], "{rows:?}");
    let events = plane.kubectl_ok(&[
        "get",
        "events",
        "--field-selector=involvedObject.name=fails",
        "-o",
        "custom-columns=T:.type,R:.reason,M:.message",
    ]);
    assert!(
        events.lines().any(|l| l.starts_with("Warning")
            && l.contains("BackoffLimitExceeded")
            && l.contains("Job has reached the specified backoff limit")),
        "{events}"
    );

    // Deleting the Job removes its pods (garbage collector, owner
    // references).
    plane.kubectl_ok(&["delete", "job", "pi"]);
    eventually(
        Duration::from_secs(30),
        "the Job's pods collected",
        || async { job_pods(&client, "pi").await.is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_job_suspend_and_ttl() {
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let _k = one_node(&client).await;
    let manifest = r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "idx"},
        "spec": {"completionMode": "Indexed", "completions": 3, "parallelism": 2, "ttlSecondsAfterFinished": 2,
        "template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 0"]}]}}}}"#;
    let o = plane
        .cluster
        .api
        .kubectl_stdin(&["create", "-f", "-"], manifest);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let pods = eventually(Duration::from_secs(30), "indexed pods run", || async {
            let pods: Vec<Pod> = job_pods(&client, "idx")
                .await
                .into_iter()
                .filter(|p| is_ready(p) && phase(p) == "Running")
                .collect();
            (!pods.is_empty()).then_some(pods)
        })
        .await;
        assert!(pods.len() <= 2, "parallelism 2");
        for p in pods {
            let index = p.annotations()["batch.kubernetes.io/job-completion-index"].clone();
            assert_eq!(
                p.labels()["batch.kubernetes.io/job-completion-index"],
                index
            );
            let spec = p.spec.clone().unwrap();
            assert_eq!(spec.hostname, Some(format!("idx-{index}")));
            let env = spec.containers[0].env.clone().unwrap_or_default();
            assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
            assert!(p.name_any().starts_with(&format!("idx-{index}-")));
            seen.push(index);
            finish(&client, &p, 0).await;
        }
    }
    seen.sort();
    assert_eq!(seen, ["0", "1", "2"]);
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=30s",
    ]);
    let s = job(&client, "idx").await.status.unwrap();
    assert_eq!(s.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(s.succeeded, Some(3));
    // ttlSecondsAfterFinished: the finished Job is deleted.
    eventually(
        Duration::from_secs(30),
        "the TTL controller deletes it",
        || async {
            Api::<Job>::namespaced(client.clone(), "default")
                .get_opt("idx")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;

    // Suspending deletes the active pods and says so in a condition.
    plane.kubectl_ok(&[
        "create",
        "job",
        "sleepy",
        "--image=busybox",
        "--",
        "sleep",
        "3600",
    ]);
    eventually(Duration::from_secs(30), "the pod runs", || async {
        job_pods(&client, "sleepy")
            .await
            .iter()
            .any(is_ready)
            .then_some(())
    })
    .await;
    plane.kubectl_ok(&[
        "patch",
        "job",
        "sleepy",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    eventually(
        Duration::from_secs(30),
        "suspended without pods",
        || async {
            let j = job(&client, "sleepy").await;
            let suspended = conditions(&j).contains(&(
                "Suspended".into(),
                "True".into(),
                "JobSuspended".into(),
            ));
            (suspended && job_pods(&client, "sleepy").await.is_empty()).then_some(())
        },
    )
    .await;
    let rows = table(&plane, &["get", "job", "sleepy"]);
    assert_eq!(rows[1][1], "Suspended", "{rows:?}");
    let events = plane.kubectl_ok(&[
        "get",
        "events",
        "--field-selector=involvedObject.name=sleepy",
        "-o",
        "custom-columns=R:.reason",
    ]);
    assert!(
        events.contains("SuccessfulDelete") && events.contains("Suspended"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_job_schedules_jobs_and_trims_history() {
    let plane = Plane::start(&[]);
    let client = plane.client().await;
    let _k = one_node(&client).await;
    let out = plane.kubectl_ok(&[
        "create",
        "cronjob",
        "hello",
        "--image=busybox",
        "--schedule=* * * * *",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    assert!(out.contains("cronjob.batch/hello created"), "{out}");
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let cj = cjs.get("hello").await.unwrap();
    let spec = cj.spec.clone().unwrap();
    assert_eq!(
        (
            spec.concurrency_policy.as_deref(),
            spec.suspend,
            spec.failed_jobs_history_limit
        ),
        (Some("Allow"), Some(false), Some(1))
    );
    assert_eq!(spec.successful_jobs_history_limit, Some(3));
    let rows = table(&plane, &["get", "cj"]);
    assert_eq!(
        rows[0],
        [
            "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"
        ]
    );
    assert_eq!(
        rows[1][..9],
        ["hello", "*", "*", "*", "*", "*", "<none>", "False", "0"]
    );

    // `kubectl create job --from=cronjob/…` posts a Job from the template.
    let out = plane.kubectl_ok(&["create", "job", "manual", "--from=cronjob/hello"]);
    assert!(out.contains("job.batch/manual created"), "{out}");
    let manual = job(&client, "manual").await;
    assert_eq!(manual.owner_references()[0].kind, "CronJob");

    // The first scheduled Job comes within a minute.
    let scheduled = eventually(Duration::from_secs(75), "a scheduled Job", || async {
        Api::<Job>::namespaced(client.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|j| j.name_any().starts_with("hello-"))
    })
    .await;
    let name = scheduled.name_any();
    let stamp = scheduled.annotations()["batch.kubernetes.io/cronjob-scheduled-timestamp"].clone();
    let at: jiff::Timestamp = stamp.parse().expect("RFC 3339 timestamp");
    assert_eq!(name, format!("hello-{}", at.as_second() / 60));
    let owner = &scheduled.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller, owner.uid.as_str()),
        ("CronJob", Some(true), cj.uid().unwrap().as_str())
    );
    eventually(Duration::from_secs(20), "status.active", || async {
        let s = cjs.get("hello").await.unwrap().status.unwrap_or_default();
        let active = s.active.unwrap_or_default();
        (active
            .iter()
            .any(|r| r.name.as_deref() == Some(name.as_str()))
            && s.last_schedule_time.is_some_and(|t| t.0 == at))
        .then_some(())
    })
    .await;
    let pod = eventually(Duration::from_secs(30), "the Job's pod runs", || async {
        job_pods(&client, &name).await.into_iter().find(is_ready)
    })
    .await;
    finish(&client, &pod, 0).await;
    // Seen completed: no longer active, the last success recorded.
    eventually(
        Duration::from_secs(40),
        "the completed Job seen",
        || async {
            let s = cjs.get("hello").await.unwrap().status.unwrap_or_default();
            let active = s.active.unwrap_or_default();
            (!active
                .iter()
                .any(|r| r.name.as_deref() == Some(name.as_str()))
                && s.last_successful_time.is_some())
            .then_some(())
        },
    )
    .await;
    // A history limit of zero removes it.
    plane.kubectl_ok(&[
        "patch",
        "cronjob",
        "hello",
        "--type=merge",
        "-p",
        r#"{"spec":{"successfulJobsHistoryLimit":0}}"#,
    ]);
    eventually(
        Duration::from_secs(30),
        "the finished Job trimmed",
        || async {
            Api::<Job>::namespaced(client.clone(), "default")
                .get_opt(&name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    let events = plane.kubectl_ok(&[
        "get",
        "events",
        "--field-selector=involvedObject.kind=CronJob",
        "-o",
        "custom-columns=R:.reason,M:.message",
    ]);
    assert!(events.contains(&format!("Created job {name}")), "{events}");
    assert!(events.contains("SawCompletedJob"), "{events}");
    assert!(events.contains(&format!("Deleted job {name}")), "{events}");
}

#[test]
fn kubectl_sees_jobs_and_cron_jobs_and_gets_upstreams_errors() {
    let c = common::Cluster::start();
    let api = &c.api;
    let r = api.kubectl_ok(&["api-resources", "--api-group=batch"]);
    let lines: Vec<Vec<&str>> = r.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(
        lines.contains(&vec!["cronjobs", "cj", "batch/v1", "true", "CronJob"]),
        "{r}"
    );
    assert!(
        lines.contains(&vec!["jobs", "batch/v1", "true", "Job"]),
        "{r}"
    );
    let e = api.kubectl_ok(&["explain", "job.spec.backoffLimit"]);
    assert!(e.contains("backoffLimit"), "{e}");
    let e = api.kubectl_ok(&["explain", "cronjob.spec.concurrencyPolicy"]);
    assert!(e.contains("concurrencyPolicy"), "{e}");

    // A pod template that restarts Always is refused with upstream's cause.
    let bad = r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}"#;
    let o = api.kubectl_stdin(&["create", "-f", "-"], bad);
    assert!(!o.status.success());
    assert_eq!(
        common::stderr(&o).trim(),
        "The Job \"bad\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
    );
    let o = api.kubectl(&[
        "create",
        "cronjob",
        "badcron",
        "--image=busybox",
        "--schedule=61 * * * *",
    ]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains(
            "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"
        ),
        "{}",
        common::stderr(&o)
    );

    // Without controllers: the Job as stored, with kubectl's views of it.
    api.kubectl_ok(&["create", "job", "pi", "--image=busybox", "--", "true"]);
    api.kubectl_ok(&[
        "create",
        "cronjob",
        "hello",
        "--image=busybox",
        "--schedule=@hourly",
        "--",
        "true",
    ]);
    let all = api.kubectl_ok(&["get", "all"]);
    assert!(
        all.contains("job.batch/pi") && all.contains("cronjob.batch/hello"),
        "{all}"
    );
    let d = api.kubectl_ok(&["describe", "job", "pi"]);
    assert!(
        d.contains("Parallelism:") && d.contains("batch.kubernetes.io/controller-uid="),
        "{d}"
    );
    let d = api.kubectl_ok(&["describe", "cronjob", "hello"]);
    assert!(d.contains("@hourly") && d.contains("Allow"), "{d}");
    let sel = api.kubectl_ok(&[
        "get",
        "jobs",
        "--field-selector=status.successful=0",
        "-o",
        "name",
    ]);
    assert_eq!(sel.trim(), "job.batch/pi");
}
