//! batch/v1 Jobs and CronJobs (`printJob`, `printCronJob` in
//! kube-apiserver's printers.go).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::format::{
    age, container_cells, human_duration, int_at, label_selector, list_at, since, str_at, time_at,
};
use super::workloads::TEMPLATE_WIDE;
use crate::api::table::{AGE, Doc, NAME, Printed, Printer, col, wide};

const JOB_SPEC: &str = "io.k8s.api.batch.v1.JobSpec";
const CRON_JOB_SPEC: &str = "io.k8s.api.batch.v1.CronJobSpec";
const CRON_JOB_STATUS: &str = "io.k8s.api.batch.v1.CronJobStatus";

pub const JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", Doc::Text("Status of the job.")),
        col(
            "Completions",
            "string",
            Doc::Field("io.k8s.api.batch.v1.JobStatus", "succeeded"),
        ),
        col(
            "Duration",
            "string",
            Doc::Text("Time required to complete the job."),
        ),
        AGE,
        TEMPLATE_WIDE[0],
        TEMPLATE_WIDE[1],
        wide("Selector", "string", Doc::Field(JOB_SPEC, "selector")),
    ],
    print: print_job,
};

/// `hasJobCondition`: the first condition of the type is True.
fn has_condition(obj: &Value, ty: &str) -> bool {
    list_at(obj, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == ty)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

/// The SELECTOR cell: `<none>` without a selector.
fn selector_cell(selector: Option<&Value>) -> String {
    match selector {
        Some(s) if s.is_object() => label_selector(Some(s)),
        _ => "<none>".into(),
    }
}

/// The STATUS cell.
fn job_status(job: &Value) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if job.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn print_job(job: &Value, now: Timestamp) -> Printed {
    let succeeded = int_at(job, "/status/succeeded").unwrap_or(0);
    let completions = match int_at(job, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(job, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time_at(job, "/status/startTime"),
        time_at(job, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => since(now, Some(start)),
        (Some(start), Some(end)) => human_duration(end.as_nanosecond() - start.as_nanosecond()),
    };
    let (names, images) =
        container_cells(job.pointer("/spec/template/spec").unwrap_or(&Value::Null));
    vec![
        json!(str_at(job, "/metadata/name")),
        json!(job_status(job)),
        json!(completions),
        json!(duration),
        json!(age(now, job)),
        json!(names),
        json!(images),
        json!(selector_cell(job.pointer("/spec/selector"))),
    ]
    .into()
}

pub const CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Schedule", "string", Doc::Field(CRON_JOB_SPEC, "schedule")),
        col("Timezone", "string", Doc::Field(CRON_JOB_SPEC, "timeZone")),
        col("Suspend", "boolean", Doc::Field(CRON_JOB_SPEC, "suspend")),
        col("Active", "integer", Doc::Field(CRON_JOB_STATUS, "active")),
        col(
            "Last Schedule",
            "string",
            Doc::Field(CRON_JOB_STATUS, "lastScheduleTime"),
        ),
        AGE,
        TEMPLATE_WIDE[0],
        TEMPLATE_WIDE[1],
        wide("Selector", "string", Doc::Field(JOB_SPEC, "selector")),
    ],
    print: print_cron_job,
};

fn print_cron_job(cj: &Value, now: Timestamp) -> Printed {
    let last = match time_at(cj, "/status/lastScheduleTime") {
        Some(t) => since(now, Some(t)),
        None => "<none>".into(),
    };
    let tz = match cj.pointer("/spec/timeZone").and_then(Value::as_str) {
        Some(tz) => tz.to_string(),
        None => "<none>".into(),
    };
    let suspend = match cj.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let (names, images) = container_cells(
        cj.pointer("/spec/jobTemplate/spec/template/spec")
            .unwrap_or(&Value::Null),
    );
    vec![
        json!(str_at(cj, "/metadata/name")),
        json!(str_at(cj, "/spec/schedule")),
        json!(tz),
        json!(suspend),
        json!(list_at(cj, "/status/active").len()),
        json!(last),
        json!(age(now, cj)),
        json!(names),
        json!(images),
        json!(selector_cell(cj.pointer("/spec/jobTemplate/spec/selector"))),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(p: &Printer, obj: Value) -> Vec<Value> {
        let now: Timestamp = "2024-01-01T01:00:00Z".parse().unwrap();
        (p.print)(&obj, now).cells
    }

    #[test]
    fn job_cells() {
        let job = json!({"metadata": {"name": "pi", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"completions": 3, "parallelism": 1, "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"succeeded": 3, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:42Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
        assert_eq!(
            cells(&JOB, job),
            vec![
                json!("pi"),
                json!("Complete"),
                json!("3/3"),
                json!("42s"),
                json!("60m"),
                json!("pi"),
                json!("perl"),
                json!("a=b")
            ]
        );
        let running = json!({"metadata": {"name": "w"}, "spec": {"parallelism": 2},
            "status": {"startTime": "2024-01-01T00:59:00Z"}});
        let c = cells(&JOB, running);
        assert_eq!(
            (&c[1], &c[2], &c[3]),
            (&json!("Running"), &json!("0/1 of 2"), &json!("60s"))
        );
    }

    #[test]
    fn cron_job_cells() {
        let cj = json!({"metadata": {"name": "hello", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"schedule": "*/1 * * * *", "suspend": false,
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2024-01-01T00:59:00Z"}});
        assert_eq!(
            cells(&CRON_JOB, cj)[..7].to_vec(),
            vec![
                json!("hello"),
                json!("*/1 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("60s"),
                json!("60m")
            ]
        );
    }
}
