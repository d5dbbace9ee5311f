//! batch/v1 Job and CronJob: defaults (pkg/apis/batch/v1/defaults.go), the
//! Job strategy's generated selector (pkg/registry/batch/job/strategy.go)
//! and validation (pkg/apis/batch/validation/validation.go).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec, JobTemplateSpec};
use serde_json::{Value, json};

use super::cron;
use super::field::{self, BadValue, Cause, Path, go_string_map};
use super::formats::{NameRule, is_dns1123_label};
use super::json::{Obj, child, default_str, default_value};
use super::metadata::{
    FIELD_IMMUTABLE, validate_nonnegative, validate_object_meta, validate_object_meta_update,
};
use super::pod::validate_pod_template;
use super::pod_defaults::default_pod_spec;
use super::selector::{from_label_selector, go_label_selector, validate_label_selector};

/// The label and annotation naming a pod's completion index (Indexed Jobs).
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Labels the Job strategy puts on the template and selects by.
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";
pub const LEGACY_JOB_NAME: &str = "job-name";
/// The annotation a CronJob's Jobs carry with their scheduled time.
pub const CRONJOB_SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Indexed Jobs may run at most this many pods at once
/// (`maxParallelismForIndexedJob`).
const MAX_PARALLELISM_INDEXED: i32 = 100_000;

fn default_template(spec: &mut Obj) {
    if let Some(ps) = child(spec, "template").and_then(|t| child(t, "spec")) {
        default_pod_spec(ps);
    }
}

/// `SetDefaults_Job` plus the template's PodSpec defaults.
pub fn default_job(obj: &mut Obj) {
    let template_labels = obj
        .get("spec")
        .and_then(|s| s.pointer("/template/metadata/labels"))
        .filter(|l| l.is_object())
        .cloned();
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    let absent = |s: &Obj, k: &str| s.get(k).is_none_or(Value::is_null);
    if absent(spec, "completions") && absent(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    default_value(spec, "parallelism", json!(1));
    if absent(spec, "backoffLimit") {
        let limit = if absent(spec, "backoffLimitPerIndex") {
            6
        } else {
            i32::MAX
        };
        spec.insert("backoffLimit".into(), json!(limit));
    }
    default_value(spec, "completionMode", json!("NonIndexed"));
    default_value(spec, "suspend", json!(false));
    let replacement = if absent(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    default_value(spec, "podReplacementPolicy", json!(replacement));
    default_template(spec);
    let meta = child(obj, "metadata").expect("object");
    let no_labels = meta
        .get("labels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.is_empty());
    if no_labels && let Some(l) = template_labels {
        meta.insert("labels".into(), l);
    }
}

/// The Job strategy's `PrepareForCreate` selector part: unless
/// `spec.manualSelector`, the template gets the job-name and controller-uid
/// labels and the selector matches the uid (`generateSelector`).
pub fn generate_job_selector(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    default_value(spec, "manualSelector", json!(false));
    if spec.get("manualSelector") == Some(&json!(true)) {
        return;
    }
    let Some(labels) = child(spec, "template")
        .and_then(|t| child(t, "metadata"))
        .and_then(|m| child(m, "labels"))
    else {
        return;
    };
    for key in [LEGACY_JOB_NAME, JOB_NAME] {
        labels.entry(key).or_insert_with(|| json!(name));
    }
    for key in [LEGACY_CONTROLLER_UID, CONTROLLER_UID] {
        labels.entry(key).or_insert_with(|| json!(uid));
    }
    if let Some(ml) = child(spec, "selector").and_then(|s| child(s, "matchLabels")) {
        ml.entry(CONTROLLER_UID).or_insert_with(|| json!(uid));
    }
    // `SetDefaults_Job` copies the template's labels to a Job without
    // labels; kube-apiserver runs it again on the stored object, so a Job
    // created without labels carries the generated ones.
    let template_labels = obj.pointer("/spec/template/metadata/labels").cloned();
    if let (Some(meta), Some(labels)) = (
        obj.get_mut("metadata").and_then(Value::as_object_mut),
        template_labels,
    ) && meta
        .get("labels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.is_empty())
    {
        meta.insert("labels".into(), labels);
    }
}

/// `SetDefaults_CronJob` plus the job template's PodSpec defaults.
pub fn default_cron_job(obj: &mut Obj) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_str(spec, "concurrencyPolicy", "Allow");
    default_value(spec, "suspend", json!(false));
    default_value(spec, "successfulJobsHistoryLimit", json!(3));
    default_value(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(js) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
        default_template(js);
    }
}

fn has_label(labels: &BTreeMap<String, String>, key: &str, value: &str, path: &Path) -> Vec<Cause> {
    // `ValidateHasLabel`.
    let lp = path.child("labels");
    match labels.get(key) {
        None => vec![field::required(&lp.key(key), &format!("must be '{value}'"))],
        Some(v) if v != value => vec![field::invalid(
            &lp.key(key),
            v.as_str(),
            &format!("must be '{value}'"),
        )],
        Some(_) => Vec::new(),
    }
}

/// `validateGeneratedSelector`.
fn validate_generated_selector(job: &Job, prefixed_labels: bool) -> Vec<Cause> {
    let spec = job.spec.clone().unwrap_or_default();
    if spec.manual_selector == Some(true) {
        return Vec::new();
    }
    let Some(labels) = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
    else {
        return Vec::new();
    };
    let Some(selector) = &spec.selector else {
        return vec![field::required(&Path::new("spec").child("selector"), "")];
    };
    let mut errs = Vec::new();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    if uid.is_empty() {
        errs.push(field::required(&Path::new("metadata").child("uid"), ""));
    }
    let mp = Path::new("spec").child("template").child("metadata");
    errs.extend(has_label(&labels, LEGACY_CONTROLLER_UID, &uid, &mp));
    errs.extend(has_label(&labels, LEGACY_JOB_NAME, &name, &mp));
    let mut expected = BTreeMap::new();
    if prefixed_labels {
        errs.extend(has_label(&labels, CONTROLLER_UID, &uid, &mp));
        errs.extend(has_label(&labels, JOB_NAME, &name, &mp));
        expected.insert(CONTROLLER_UID.to_string(), uid.clone());
        expected.insert(JOB_NAME.to_string(), name.clone());
    } else {
        expected.insert(LEGACY_CONTROLLER_UID.to_string(), uid.clone());
    }
    expected.insert(LEGACY_JOB_NAME.to_string(), name);
    if let Ok(sel) = from_label_selector(selector)
        && !sel.matches(&expected)
    {
        errs.push(field::invalid(
            &Path::new("spec").child("selector"),
            BadValue::Go(go_label_selector(selector)),
            "`selector` not auto-generated",
        ));
    }
    errs
}

/// `validateJobSpec`: what a Job and a CronJob's job template share.
fn validate_job_spec_common(spec: &JobSpec, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (name, v) in [
        ("parallelism", spec.parallelism.map(i64::from)),
        ("completions", spec.completions.map(i64::from)),
        ("activeDeadlineSeconds", spec.active_deadline_seconds),
        ("backoffLimit", spec.backoff_limit.map(i64::from)),
        (
            "ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished.map(i64::from),
        ),
        (
            "backoffLimitPerIndex",
            spec.backoff_limit_per_index.map(i64::from),
        ),
        ("maxFailedIndexes", spec.max_failed_indexes.map(i64::from)),
    ] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative(v, &path.child(name)));
        }
    }
    if let Some(mode) = &spec.completion_mode {
        if mode != "NonIndexed" && mode != "Indexed" {
            errs.push(field::not_supported(
                &path.child("completionMode"),
                mode.as_str(),
                &["NonIndexed", "Indexed"],
            ));
        }
        if mode == "Indexed" {
            if spec.completions.is_none() {
                errs.push(field::required(
                    &path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = spec.parallelism
                && p > MAX_PARALLELISM_INDEXED
            {
                errs.push(field::invalid(
                    &path.child("parallelism"),
                    p,
                    &format!(
                        "must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"
                    ),
                ));
            }
        }
    }
    if let Some(policy) = &spec.pod_replacement_policy
        && policy != "TerminatingOrFailed"
        && policy != "Failed"
    {
        errs.push(field::not_supported(
            &path.child("podReplacementPolicy"),
            policy.as_str(),
            &["Failed", "TerminatingOrFailed"],
        ));
    }
    let tp = path.child("template");
    errs.extend(validate_pod_template(&spec.template, &tp));
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("");
    let rp = tp.child("spec").child("restartPolicy");
    if restart == "Always" || restart.is_empty() {
        errs.push(field::required(
            &rp,
            "valid values: \"OnFailure\", \"Never\"",
        ));
    } else if restart != "OnFailure" && restart != "Never" {
        errs.push(field::not_supported(&rp, restart, &["OnFailure", "Never"]));
    } else if spec.pod_failure_policy.is_some() && restart != "Never" {
        errs.push(field::invalid(
            &rp,
            restart,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    errs
}

/// `ValidateJobSpec`: the common rules, the selector and its match with
/// the template's labels.
fn validate_job_spec(spec: &JobSpec, path: &Path) -> Vec<Cause> {
    let mut errs = validate_job_spec_common(spec, path);
    let sp = path.child("selector");
    match &spec.selector {
        None => errs.push(field::required(&sp, "")),
        Some(sel) => errs.extend(validate_label_selector(sel, &sp)),
    }
    if let Some(sel) = &spec.selector
        && let Ok(parsed) = from_label_selector(sel)
        && !parsed.is_empty()
    {
        let labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref());
        if !parsed.matches(&labels.cloned().unwrap_or_default()) {
            errs.push(field::invalid(
                &path.child("template").child("metadata").child("labels"),
                BadValue::Go(go_string_map(labels)),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs
}

fn uses_prefixed_labels(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .is_some_and(|l| l.contains_key(CONTROLLER_UID))
}

fn validate_job_with(job: &Job, prefixed_labels: bool) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &job.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_generated_selector(job, prefixed_labels));
    let spec = job.spec.clone().unwrap_or_default();
    errs.extend(validate_job_spec(&spec, &Path::new("spec")));
    if spec.completion_mode.as_deref() == Some("Indexed")
        && let Some(c) = spec.completions.filter(|c| *c > 0)
    {
        let name = job.metadata.name.clone().unwrap_or_default();
        let host = format!("{name}-{}", c - 1);
        if !is_dns1123_label(&host).is_empty() {
            errs.push(field::invalid(
                &Path::new("metadata").child("name"),
                name.as_str(),
                &format!("will not able to create pod with invalid DNS label: {host}"),
            ));
        }
    }
    errs
}

/// `ValidateJob` as the strategy's `Validate` runs it on create (the
/// batch.kubernetes.io labels required).
pub fn validate_job(job: &Job) -> Vec<Cause> {
    validate_job_with(job, true)
}

/// `ValidateJobUpdate` / `ValidateJobSpecUpdate`: the selector, template
/// (unless the Job is suspended and never started), completion mode,
/// completions (but for an elastic Indexed Job) and the policies are
/// immutable.
pub fn validate_job_update(new: &Job, old: &Job) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let (ns, os) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    let sp = Path::new("spec");
    errs.extend(validate_job_spec(&ns, &sp));
    errs.extend(validate_generated_selector(new, uses_prefixed_labels(old)));
    let elastic = ns.completion_mode.as_deref() == Some("Indexed")
        && os.completions == os.parallelism
        && ns.completions == ns.parallelism;
    if ns.completions != os.completions && !elastic {
        errs.push(field::invalid(
            &sp.child("completions"),
            ns.completions,
            FIELD_IMMUTABLE,
        ));
    }
    if ns.selector != os.selector {
        errs.push(field::invalid(
            &sp.child("selector"),
            BadValue::Go(
                ns.selector
                    .as_ref()
                    .map(go_label_selector)
                    .unwrap_or("nil".into()),
            ),
            FIELD_IMMUTABLE,
        ));
    }
    let never_started = old
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .is_none();
    let suspended = os.suspend == Some(true);
    if ns.template != os.template && !(suspended && never_started) {
        errs.push(field::invalid(
            &sp.child("template"),
            BadValue::Omit,
            FIELD_IMMUTABLE,
        ));
    }
    if ns.completion_mode != os.completion_mode {
        errs.push(field::invalid(
            &sp.child("completionMode"),
            ns.completion_mode.clone(),
            FIELD_IMMUTABLE,
        ));
    }
    if ns.backoff_limit_per_index != os.backoff_limit_per_index {
        errs.push(field::invalid(
            &sp.child("backoffLimitPerIndex"),
            ns.backoff_limit_per_index,
            FIELD_IMMUTABLE,
        ));
    }
    if ns.pod_failure_policy != os.pod_failure_policy {
        errs.push(field::invalid(
            &sp.child("podFailurePolicy"),
            BadValue::Omit,
            FIELD_IMMUTABLE,
        ));
    }
    if ns.success_policy != os.success_policy {
        errs.push(field::invalid(
            &sp.child("successPolicy"),
            BadValue::Omit,
            FIELD_IMMUTABLE,
        ));
    }
    if ns.managed_by != os.managed_by {
        errs.push(field::invalid(
            &sp.child("managedBy"),
            ns.managed_by.clone(),
            FIELD_IMMUTABLE,
        ));
    }
    errs
}

fn condition_true(job: &Job, ty: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == ty && c.status == "True"))
}

/// `ValidateJobUpdateStatus` / `validateJobStatus`: counts are not
/// negative, and a Job is never both Complete and Failed.
pub fn validate_job_status_update(new: &Job, old: &Job) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let p = Path::new("status");
    let s = new.status.clone().unwrap_or_default();
    for (name, v) in [
        ("active", s.active),
        ("succeeded", s.succeeded),
        ("failed", s.failed),
        ("ready", s.ready),
        ("terminating", s.terminating),
    ] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative(v.into(), &p.child(name)));
        }
    }
    if condition_true(new, "Complete") && condition_true(new, "Failed") {
        errs.push(field::invalid(
            &p.child("conditions"),
            BadValue::Omit,
            "cannot set Complete=True and Failed=true conditions",
        ));
    }
    errs
}

/// `ValidateJobTemplateSpec`: the selector is always generated.
fn validate_job_template(t: &JobTemplateSpec, path: &Path) -> Vec<Cause> {
    let spec = t.spec.clone().unwrap_or_default();
    let sp = path.child("spec");
    let mut errs = validate_job_spec_common(&spec, &sp);
    if let Some(sel) = &spec.selector {
        errs.push(field::invalid(
            &sp.child("selector"),
            BadValue::Go(go_label_selector(sel)),
            "`selector` will be auto-generated",
        ));
    }
    if spec.manual_selector == Some(true) {
        errs.push(field::not_supported(
            &sp.child("manualSelector"),
            true,
            &["nil", "false"],
        ));
    }
    errs
}

/// `validateTimeZone`.
fn validate_time_zone(tz: Option<&str>, path: &Path) -> Vec<Cause> {
    let Some(tz) = tz else {
        return Vec::new();
    };
    if tz.is_empty() {
        return vec![field::invalid(
            path,
            tz,
            "timeZone must be nil or non-empty string",
        )];
    }
    let valid_part = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && !p.is_empty()
            && p.len() <= 14
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_+.".contains(&b))
    };
    if !tz.split('/').all(valid_part) {
        return vec![field::invalid(path, tz, &format!("unknown time zone {tz}"))];
    }
    let mut errs = Vec::new();
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(field::invalid(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if let Err(e) = cron::load_zone(tz) {
        errs.push(field::invalid(path, tz, &e));
    }
    errs
}

/// `validateScheduleFormat`.
fn validate_schedule(schedule: &str, allow_tz: bool, tz: Option<&str>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if let Err(e) = cron::parse(schedule) {
        errs.push(field::invalid(path, schedule, &e));
    }
    if allow_tz && schedule.contains("TZ") && tz.is_some() {
        errs.push(field::invalid(
            path,
            schedule,
            "cannot use both timeZone field and TZ or CRON_TZ in schedule",
        ));
    } else if !allow_tz && schedule.contains("TZ") {
        errs.push(field::invalid(
            path,
            schedule,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    }
    errs
}

/// `validateCronJobSpec`.
fn validate_cron_job_spec(cj: &CronJob, old: Option<&CronJob>, path: &Path) -> Vec<Cause> {
    let spec = cj.spec.clone().unwrap_or_default();
    let old_spec = old.and_then(|o| o.spec.clone());
    let mut errs = Vec::new();
    let schedule_path = path.child("schedule");
    if spec.schedule.is_empty() {
        errs.push(field::required(&schedule_path, ""));
    } else {
        let allow_tz = old_spec.as_ref().is_some_and(|o| o.schedule.contains("TZ"));
        errs.extend(validate_schedule(
            &spec.schedule,
            allow_tz,
            spec.time_zone.as_deref(),
            &schedule_path,
        ));
    }
    if let Some(s) = spec.starting_deadline_seconds {
        errs.extend(validate_nonnegative(
            s,
            &path.child("startingDeadlineSeconds"),
        ));
    }
    if old_spec
        .as_ref()
        .is_none_or(|o| o.time_zone != spec.time_zone)
    {
        errs.extend(validate_time_zone(
            spec.time_zone.as_deref(),
            &path.child("timeZone"),
        ));
    }
    let cp = path.child("concurrencyPolicy");
    match spec.concurrency_policy.as_deref().unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(field::required(&cp, "")),
        other => errs.push(field::not_supported(
            &cp,
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    errs.extend(validate_job_template(
        &spec.job_template,
        &path.child("jobTemplate"),
    ));
    for (name, v) in [
        (
            "successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit,
        ),
        ("failedJobsHistoryLimit", spec.failed_jobs_history_limit),
    ] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative(v.into(), &path.child(name)));
        }
    }
    errs
}

/// `ValidateCronJobCreate`: a CronJob's name leaves room for the 11
/// characters its Jobs' names add.
pub fn validate_cron_job(cj: &CronJob) -> Vec<Cause> {
    let mut errs = validate_object_meta(
        &cj.metadata,
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_cron_job_spec(cj, None, &Path::new("spec")));
    let name = cj.metadata.name.clone().unwrap_or_default();
    if name.len() > 63 - 11 {
        errs.push(field::invalid(
            &Path::new("metadata").child("name"),
            name.as_str(),
            "must be no more than 52 characters",
        ));
    }
    errs
}

/// `ValidateCronJobUpdate`.
pub fn validate_cron_job_update(new: &CronJob, old: &CronJob) -> Vec<Cause> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_cron_job_spec(new, Some(old), &Path::new("spec")));
    errs
}

/// The CronJob status strategy validates only the metadata update.
pub fn validate_cron_job_status_update(new: &CronJob, old: &CronJob) -> Vec<Cause> {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Value {
        let mut j = json!({
            "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "perl", "command": ["perl"]}]}}}
        });
        default_job(j.as_object_mut().unwrap());
        generate_job_selector(&mut j);
        j
    }

    fn check(j: &Value) -> Vec<String> {
        validate_job(&serde_json::from_value(j.clone()).unwrap())
            .iter()
            .map(Cause::error_string)
            .collect()
    }

    fn check_cj(cj: &Value) -> Vec<String> {
        validate_cron_job(&serde_json::from_value(cj.clone()).unwrap())
            .iter()
            .map(Cause::error_string)
            .collect()
    }

    #[test]
    fn job_defaults_and_generated_selector() {
        let j = job();
        let spec = &j["spec"];
        assert_eq!(
            (
                &spec["parallelism"],
                &spec["completions"],
                &spec["backoffLimit"],
                &spec["completionMode"],
                &spec["suspend"],
                &spec["manualSelector"],
                &spec["podReplacementPolicy"],
            ),
            (
                &json!(1),
                &json!(1),
                &json!(6),
                &json!("NonIndexed"),
                &json!(false),
                &json!(false),
                &json!("TerminatingOrFailed")
            )
        );
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            spec["template"]["metadata"]["labels"],
            json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
                   "controller-uid": "u-1", "job-name": "pi"})
        );
        assert_eq!(
            j["metadata"]["labels"],
            spec["template"]["metadata"]["labels"]
        );
        assert!(check(&j).is_empty(), "{:?}", check(&j));
        // Parallelism alone leaves completions unset (a work queue).
        let mut wq = json!({"spec": {"parallelism": 3}});
        default_job(wq.as_object_mut().unwrap());
        assert!(wq["spec"].get("completions").is_none());
    }

    #[test]
    fn restart_policy_messages() {
        let mut j = job();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        assert_eq!(
            check(&j),
            vec![
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
            ]
        );
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Sometimes");
        let errs = check(&j);
        assert!(
            errs.contains(
                &"spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\"".to_string()
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn spec_rules() {
        let mut j = job();
        j["spec"]["parallelism"] = json!(-1);
        j["spec"]["backoffLimit"] = json!(-2);
        j["spec"]["completionMode"] = json!("Indexed");
        j["spec"].as_object_mut().unwrap().remove("completions");
        assert_eq!(
            check(&j),
            vec![
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
                "spec.completions: Required value: when completion mode is Indexed",
            ]
        );
        let mut j = job();
        j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] = json!("other");
        let errs = check(&j);
        assert!(
            errs.iter()
                .any(|e| e.ends_with("`selector` not auto-generated")),
            "{errs:?}"
        );
    }

    #[test]
    fn template_immutable_once_started() {
        let mut old = job();
        old["metadata"]["resourceVersion"] = json!("1");
        old["status"] = json!({"startTime": "2024-01-01T00:00:00Z"});
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
        let errs: Vec<String> = validate_job_update(
            &serde_json::from_value(new).unwrap(),
            &serde_json::from_value(old).unwrap(),
        )
        .iter()
        .map(Cause::error_string)
        .collect();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("spec.template: Invalid value"),
            "{errs:?}"
        );
        assert!(errs[0].ends_with("field is immutable"), "{errs:?}");
    }

    fn cron_job() -> Value {
        let mut cj = json!({
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}
        });
        default_cron_job(cj.as_object_mut().unwrap());
        cj
    }

    #[test]
    fn cron_job_defaults_and_rules() {
        let cj = cron_job();
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["suspend"], false);
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert!(check_cj(&cj).is_empty(), "{:?}", check_cj(&cj));

        let mut bad = cron_job();
        bad["spec"]["schedule"] = json!("every minute");
        bad["spec"]["concurrencyPolicy"] = json!("Sometimes");
        bad["spec"]["timeZone"] = json!("Mars/Olympus");
        assert_eq!(
            check_cj(&bad),
            vec![
                "spec.schedule: Invalid value: \"every minute\": expected exactly 5 fields, found 2: [every minute]",
                "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus",
                "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
            ]
        );
        let mut tz = cron_job();
        tz["spec"]["schedule"] = json!("TZ=UTC 0 * * * *");
        assert_eq!(
            check_cj(&tz),
            vec![
                "spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
            ]
        );
        let mut long = cron_job();
        long["metadata"]["name"] = json!("a".repeat(53));
        assert!(
            check_cj(&long)
                .iter()
                .any(|e| e.ends_with("must be no more than 52 characters"))
        );
        let mut sel = cron_job();
        sel["spec"]["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        assert!(
            check_cj(&sel)
                .iter()
                .any(|e| e.ends_with("`selector` will be auto-generated"))
        );
    }
}
