//! The pod's status from its spec and what the runtime has, as the
//! kubelet's `generateAPIPodStatus`/`getPhase`: phase, conditions,
//! container statuses with state, last state, restart count and readiness.
//!
//! Conditions of other types than the kubelet's (a readiness gate's, set
//! by a controller; `DisruptionTarget`) are kept as the API has them, and
//! the pod is Ready only when its containers are and every readiness gate's
//! condition is True (`GeneratePodReadyCondition`).

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container as SpecContainer, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::actions::RestartPolicy;
use super::pod_spec::Qos;
use super::runtime_view::observed::{Container, PodRuntime, State};

/// What the kubelet knows beyond the runtime.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub host_ip: String,
    /// Readiness per container ID (absent: no result yet).
    pub ready: HashMap<String, bool>,
    /// Whether the startup probe has passed, per container ID.
    pub started: HashMap<String, bool>,
    /// Why a container is waiting, per container name, when the kubelet
    /// could not start it (`ErrImagePull`, `CreateContainerConfigError`,
    /// `CrashLoopBackOff`…).
    pub waiting: HashMap<String, (String, String)>,
}

fn time(nanos: i64) -> Option<Time> {
    (nanos > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(nanos)).ok())
        .flatten()
        .map(Time)
}

fn terminated(c: &Container) -> ContainerStateTerminated {
    let reason = if c.reason.is_empty() {
        if c.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
        .to_owned()
    } else {
        c.reason.clone()
    };
    ContainerStateTerminated {
        exit_code: c.exit_code,
        reason: Some(reason),
        message: (!c.message.is_empty()).then(|| c.message.clone()),
        started_at: time(c.started_at),
        finished_at: time(c.finished_at),
        container_id: Some(format!("containerd://{}", c.id)),
        signal: None,
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message,
        }),
        ..Default::default()
    }
}

/// The status of one container. `policy` is `None` once the pod has
/// finished: nothing is started again.
fn container_status(
    spec: &SpecContainer,
    runtime: &PodRuntime,
    extra: &Extra,
    policy: Option<RestartPolicy>,
    init: bool,
    default_waiting: &str,
) -> ContainerStatus {
    let mut attempts = runtime.containers.iter().filter(|c| c.name == spec.name);
    let latest = attempts.next();
    let previous = attempts.next();
    let mut status = ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: String::new(),
        restart_count: latest.map_or(0, |c| i32::try_from(c.attempt).unwrap_or(i32::MAX)),
        ready: false,
        started: Some(false),
        ..Default::default()
    };
    let Some(latest) = latest else {
        let (reason, message) = extra
            .waiting
            .get(&spec.name)
            .cloned()
            .map_or((default_waiting.to_owned(), None), |(r, m)| (r, Some(m)));
        status.state = Some(waiting(&reason, message));
        return status;
    };
    status.container_id = Some(format!("containerd://{}", latest.id));
    status.image_id = latest.image_ref.clone();
    match latest.state {
        State::Running => {
            let started = extra.started.get(&latest.id).copied().unwrap_or(true);
            status.started = Some(started);
            status.ready = started && extra.ready.get(&latest.id).copied().unwrap_or(false);
            if init {
                // An init container is never "ready" while it runs.
                status.ready = false;
            }
            status.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time(latest.started_at),
                }),
                ..Default::default()
            });
            if let Some(prev) = previous.filter(|p| p.state == State::Exited) {
                status.last_state = Some(ContainerState {
                    terminated: Some(terminated(prev)),
                    ..Default::default()
                });
            }
        }
        State::Exited => {
            let done = init && latest.exit_code == 0;
            if done {
                status.ready = true;
            }
            if !done && policy.is_some_and(|p| p.restarts(latest.exit_code)) {
                // About to be (or waiting to be) started again.
                let (reason, message) = extra
                    .waiting
                    .get(&spec.name)
                    .cloned()
                    .map_or(("ContainerCreating".to_owned(), None), |(r, m)| {
                        (r, Some(m))
                    });
                status.state = Some(waiting(&reason, message));
                status.last_state = Some(ContainerState {
                    terminated: Some(terminated(latest)),
                    ..Default::default()
                });
            } else {
                status.state = Some(ContainerState {
                    terminated: Some(terminated(latest)),
                    ..Default::default()
                });
                if let Some(prev) = previous.filter(|p| p.state == State::Exited) {
                    status.last_state = Some(ContainerState {
                        terminated: Some(terminated(prev)),
                        ..Default::default()
                    });
                }
            }
        }
        State::Created | State::Unknown => {
            status.state = Some(waiting("ContainerCreating", None));
        }
    }
    status
}

/// The pod phase, as `getPhase`.
#[must_use]
pub fn phase(
    pod: &Pod,
    old: Option<&PodStatus>,
    runtime: &PodRuntime,
    now: Timestamp,
) -> &'static str {
    // A pod that has finished stays finished, whatever its containers do
    // afterwards (they are being stopped).
    match old.and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => return "Succeeded",
        Some("Failed") => return "Failed",
        _ => {}
    }
    if active_deadline_left(pod, old, now) == Some(Duration::ZERO) {
        return "Failed";
    }
    let Some(spec) = pod.spec.as_ref() else {
        return "Pending";
    };
    let policy = RestartPolicy::of(pod);
    let sandbox_ready = runtime.sandbox().is_some_and(|s| s.ready);
    // Init containers; sidecars are counted below.
    let (sidecars, init): (Vec<&SpecContainer>, Vec<&SpecContainer>) = spec
        .init_containers
        .iter()
        .flatten()
        .partition(|c| super::pod_spec::is_sidecar(c));
    for c in init {
        match runtime.latest_any(&c.name) {
            Some(l) if l.state == State::Exited && l.exit_code == 0 => {}
            Some(l) if l.state == State::Exited && policy == RestartPolicy::Never => {
                return "Failed";
            }
            _ => return "Pending",
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    // A running sidecar counts as running; one that has not run yet keeps
    // the pod Pending unless every app container has stopped; one that
    // exited does not count (`getPhase`).
    let mut sidecar_pending = false;
    for c in sidecars {
        match runtime.latest_any(&c.name).map(|l| l.state) {
            Some(State::Running) if sandbox_ready => running += 1,
            None | Some(State::Created | State::Unknown) => sidecar_pending = true,
            Some(_) => {}
        }
    }
    for c in &spec.containers {
        match runtime.latest_any(&c.name) {
            None => waiting += 1,
            Some(l) => match l.state {
                State::Running if sandbox_ready => running += 1,
                State::Running => stopped += 1,
                State::Exited => {
                    stopped += 1;
                    if l.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                State::Created | State::Unknown => waiting += 1,
            },
        }
    }
    if waiting > 0 || (sidecar_pending && stopped != spec.containers.len()) {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        return match policy {
            RestartPolicy::Always => "Running",
            RestartPolicy::OnFailure if stopped == succeeded => "Succeeded",
            RestartPolicy::OnFailure => "Running",
            RestartPolicy::Never if stopped == succeeded => "Succeeded",
            RestartPolicy::Never => "Failed",
        };
    }
    "Pending"
}

/// `status.reason` of a pod failed for running past its
/// `activeDeadlineSeconds` (the kubelet's active deadline handler).
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
/// Its `status.message`, as the kubelet words it.
pub const DEADLINE_EXCEEDED_MESSAGE: &str =
    "Pod was active on the node longer than the specified deadline";

/// How long `pod` may still be active on the node at `now`:
/// `spec.activeDeadlineSeconds` counted from `status.startTime` (in `old`,
/// the pod's latest status). `None` without a deadline or before the pod
/// started; zero once the deadline has passed.
#[must_use]
pub fn active_deadline_left(
    pod: &Pod,
    old: Option<&PodStatus>,
    now: Timestamp,
) -> Option<Duration> {
    let seconds = pod.spec.as_ref()?.active_deadline_seconds?;
    let started = old?.start_time.as_ref()?.0;
    let deadline = started
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .ok()?;
    Some(
        now.duration_until(deadline)
            .try_into()
            .unwrap_or(Duration::ZERO),
    )
}

/// Whether the sync at `now` is the one that fails `pod` for its active
/// deadline (its latest status `old` is not final yet).
#[must_use]
pub fn deadline_reached(pod: &Pod, old: Option<&PodStatus>, now: Timestamp) -> bool {
    !old.and_then(|s| s.phase.as_deref())
        .is_some_and(is_terminal)
        && active_deadline_left(pod, old, now) == Some(Duration::ZERO)
}

/// Whether `phase` is final.
#[must_use]
pub fn is_terminal(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed")
}

/// The condition types the kubelet owns (`PodConditionsByKubelet`, and
/// `PodReadyToStartContainers`); others are someone else's.
const KUBELET_CONDITIONS: [&str; 5] = [
    "PodScheduled",
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

fn is_kubelets(c: &PodCondition) -> bool {
    KUBELET_CONDITIONS.contains(&c.type_.as_str())
}

/// The conditions in `status` that are not the kubelet's, in order.
fn others_conditions(status: Option<&PodStatus>) -> Vec<PodCondition> {
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| !is_kubelets(c))
        .cloned()
        .collect()
}

/// `status` (what the kubelet last wrote) with the conditions others own
/// as the API's copy `api` has them: the kubelet's own write may be newer
/// than the API's copy, but the others' are not in it.
#[must_use]
pub fn with_others_conditions(status: &PodStatus, api: Option<&PodStatus>) -> PodStatus {
    let mut out = status.clone();
    let mut conditions = others_conditions(api);
    conditions.extend(
        status
            .conditions
            .iter()
            .flatten()
            .filter(|c| is_kubelets(c))
            .cloned(),
    );
    out.conditions = Some(conditions);
    out
}

/// Why the pod's readiness gates keep it from being Ready: one message per
/// gate whose condition is missing or not True, in the gates' order.
fn unready_gates(pod: &Pod, conditions: &[PodCondition]) -> Vec<String> {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default();
    gates
        .iter()
        .filter_map(|gate| {
            let kind = &gate.condition_type;
            match conditions.iter().find(|c| &c.type_ == kind) {
                None => Some(format!(
                    "corresponding condition of pod readiness gate \"{kind}\" does not exist."
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate \"{kind}\" is not \"True\", but {}",
                    c.status
                )),
                Some(_) => None,
            }
        })
        .collect()
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: kind.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.map(str::to_owned),
        message,
        ..Default::default()
    }
}

/// The full status of `pod`. Transition times of unchanged conditions and
/// `startTime` are kept from the current status; `now` stamps the rest.
#[must_use]
pub fn compute(pod: &Pod, runtime: &PodRuntime, extra: &Extra, now: Timestamp) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let phase = phase(pod, pod.status.as_ref(), runtime, now);
    let policy = (!is_terminal(phase)).then(|| RestartPolicy::of(pod));
    // Why the pod ended when the kubelet ended it, kept once written.
    let (ended_reason, ended_message) = if deadline_reached(pod, pod.status.as_ref(), now) {
        (
            Some(DEADLINE_EXCEEDED.to_owned()),
            Some(DEADLINE_EXCEEDED_MESSAGE.to_owned()),
        )
    } else if is_terminal(phase) {
        (old.reason.clone(), old.message.clone())
    } else {
        (None, None)
    };
    // A sidecar's status is an app container's (probed, ready, restarted
    // whatever the pod's policy); it is initialized once started.
    let sidecar = |name: &str| {
        spec.init_containers
            .iter()
            .flatten()
            .any(|c| c.name == name && super::pod_spec::is_sidecar(c))
    };
    let init_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            if super::pod_spec::is_sidecar(c) {
                let always = policy.map(|_| RestartPolicy::Always);
                container_status(c, runtime, extra, always, false, "PodInitializing")
            } else {
                container_status(c, runtime, extra, policy, true, "PodInitializing")
            }
        })
        .collect();
    let unready_init: Vec<&str> = init_statuses
        .iter()
        .filter(|s| {
            if sidecar(&s.name) {
                s.started != Some(true)
            } else {
                !s.ready
            }
        })
        .map(|s| s.name.as_str())
        .collect();
    let initializing = phase == "Pending" && !unready_init.is_empty();
    let app_default = if initializing {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, runtime, extra, policy, false, app_default))
        .collect();
    // Ephemeral containers are never restarted, never probed and never
    // ready; they do not count towards the pod's readiness.
    let ephemeral_statuses: Vec<ContainerStatus> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|e| {
            let c = super::pod_spec::ephemeral_as_container(e);
            ContainerStatus {
                ready: false,
                started: None,
                ..container_status(&c, runtime, extra, None, false, app_default)
            }
        })
        .collect();

    let sandbox = runtime.sandbox().filter(|s| s.ready);
    let pod_ip =
        super::pod_spec::pod_ip(pod, sandbox.and_then(|s| s.ip.as_deref()), &extra.host_ip);
    // Sidecars first, then app containers (`GenerateContainersReadyCondition`).
    let unready: Vec<&str> = init_statuses
        .iter()
        .filter(|s| sidecar(&s.name))
        .chain(&statuses)
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let terminal = is_terminal(phase);
    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    // An app container that has run means the pod was initialized, also
    // while a sidecar restarts (`HasAnyRegularContainerStarted`).
    let app_started = statuses.iter().any(|s| {
        s.state
            .as_ref()
            .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
    });
    let mut conditions = vec![
        condition("PodReadyToStartContainers", sandbox.is_some(), None, None),
        if unready_init.is_empty() || phase == "Succeeded" || app_started {
            condition("Initialized", true, None, None)
        } else {
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!(
                    "containers with incomplete status: {}",
                    list(&unready_init)
                )),
            )
        },
    ];
    let (ready, reason, message) = if phase == "Succeeded" {
        (false, Some("PodCompleted"), None)
    } else if phase == "Failed" {
        // Not ready, also while its containers are still being stopped.
        (false, Some("PodFailed"), None)
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                list(&unready)
            )),
        )
    };
    conditions.push(condition("ContainersReady", ready, reason, message.clone()));
    let others = others_conditions(Some(&old));
    let gates = if ready {
        unready_gates(pod, &others)
    } else {
        Vec::new()
    };
    conditions.push(if gates.is_empty() {
        condition("Ready", ready, reason, message)
    } else {
        condition(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(gates.join(", ")),
        )
    });
    // PodScheduled is the scheduler's; kept as it is, added if missing.
    let scheduled = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition("PodScheduled", true, None, None));
    conditions.insert(0, scheduled);
    for c in &mut conditions {
        let previous = old.conditions.iter().flatten().find(|o| o.type_ == c.type_);
        c.last_transition_time = match previous {
            Some(p) if p.status == c.status && p.last_transition_time.is_some() => {
                p.last_transition_time.clone()
            }
            _ => Some(Time(now)),
        };
    }
    // Others' conditions first, as the kubelet keeps them.
    conditions.splice(0..0, others);
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: (!extra.host_ip.is_empty()).then(|| extra.host_ip.clone()),
        host_ips: (!extra.host_ip.is_empty()).then(|| {
            vec![HostIP {
                ip: extra.host_ip.clone(),
            }]
        }),
        pod_ip: pod_ip
            .clone()
            .or_else(|| if terminal { old.pod_ip.clone() } else { None }),
        pod_ips: pod_ip
            .map(|ip| vec![PodIP { ip }])
            .or_else(|| if terminal { old.pod_ips.clone() } else { None }),
        start_time: old.start_time.clone().or(Some(Time(now))),
        qos_class: Some(Qos::of(pod).as_str().to_owned()),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        ephemeral_container_statuses: (!ephemeral_statuses.is_empty())
            .then_some(ephemeral_statuses),
        nominated_node_name: old.nominated_node_name.clone(),
        reason: ended_reason,
        message: ended_message,
        ..Default::default()
    }
}

/// Whether two statuses differ in anything but condition times (to skip
/// writes that change nothing).
#[must_use]
pub fn differs(a: &PodStatus, b: &PodStatus) -> bool {
    let strip = |s: &PodStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
            c.last_probe_time = None;
        }
        s.start_time = None;
        serde_json::to_value(&s).unwrap_or_default()
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests {
    use super::super::runtime_view::observed::Sandbox;
    use super::*;

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": "img"}]},
        }))
        .unwrap()
    }

    fn c(id: &str, attempt: u32, state: State, exit_code: i32) -> Container {
        Container {
            id: id.into(),
            sandbox_id: "s".into(),
            name: "app".into(),
            attempt,
            init: false,
            state,
            created_at: 10 + i64::from(attempt),
            started_at: 1_700_000_000_000_000_000,
            finished_at: if state == State::Exited {
                1_700_000_001_000_000_000
            } else {
                0
            },
            exit_code,
            reason: String::new(),
            message: String::new(),
            hash: String::new(),
            image: "img".into(),
            image_ref: "sha256:abc".into(),
            log_path: String::new(),
            grace_period: None,
        }
    }

    fn runtime(containers: Vec<Container>) -> PodRuntime {
        PodRuntime {
            sandboxes: vec![Sandbox {
                id: "s".into(),
                ready: true,
                attempt: 0,
                created_at: 1,
                ip: Some("10.244.1.9".into()),
            }],
            containers,
        }
    }

    fn cond<'a>(s: &'a PodStatus, kind: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == kind)
            .unwrap()
    }

    #[test]
    fn a_new_pod_is_pending_and_creating() {
        let s = compute(
            &pod("Always"),
            &PodRuntime::default(),
            &Extra::default(),
            Timestamp::now(),
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "PodScheduled").status, "True");
        assert!(s.pod_ip.is_none());
    }

    #[test]
    fn readiness_drives_ready_and_the_ip_is_reported() {
        let rt = runtime(vec![c("c1", 0, State::Running, 0)]);
        let mut extra = Extra {
            host_ip: "172.28.1.11".into(),
            ..Extra::default()
        };
        let s = compute(&pod("Always"), &rt, &extra, Timestamp::now());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.9"));
        assert_eq!(s.host_ip.as_deref(), Some("172.28.1.11"));
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(
            cond(&s, "ContainersReady").message.as_deref(),
            Some("containers with unready status: [app]")
        );
        extra.ready.insert("c1".into(), true);
        let s = compute(&pod("Always"), &rt, &extra, Timestamp::now());
        assert_eq!(cond(&s, "Ready").status, "True");
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("containerd://c1"));
    }

    #[test]
    fn readiness_gates_hold_ready_until_their_conditions_are_true() {
        let rt = runtime(vec![c("c1", 0, State::Running, 0)]);
        let extra = Extra {
            ready: HashMap::from([("c1".into(), true)]),
            ..Extra::default()
        };
        let gated = |conditions: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "uid": "u"},
                "spec": {
                    "containers": [{"name": "app", "image": "img"}],
                    "readinessGates": [
                        {"conditionType": "example.com/lb"},
                        {"conditionType": "example.com/dns"},
                    ],
                },
                "status": {"conditions": conditions},
            }))
            .unwrap()
        };
        let s = compute(&gated(serde_json::json!([])), &rt, &extra, Timestamp::now());
        assert_eq!(cond(&s, "ContainersReady").status, "True");
        let ready = cond(&s, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("ReadinessGatesNotReady"))
        );
        assert_eq!(
            ready.message.as_deref(),
            Some(
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist., \
                 corresponding condition of pod readiness gate \"example.com/dns\" does not exist."
            )
        );
        let half = gated(serde_json::json!([
            {"type": "example.com/lb", "status": "True"},
            {"type": "example.com/dns", "status": "False"},
        ]));
        let s = compute(&half, &rt, &extra, Timestamp::now());
        assert_eq!(
            cond(&s, "Ready").message.as_deref(),
            Some("the status of pod readiness gate \"example.com/dns\" is not \"True\", but False")
        );
        let all = gated(serde_json::json!([
            {"type": "example.com/lb", "status": "True", "reason": "Registered"},
            {"type": "example.com/dns", "status": "True"},
        ]));
        let s = compute(&all, &rt, &extra, Timestamp::now());
        assert_eq!(cond(&s, "Ready").status, "True");
        // The gates' conditions stay as their owner wrote them, first.
        let kinds: Vec<&str> = s
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(&kinds[..2], ["example.com/lb", "example.com/dns"]);
        assert_eq!(
            cond(&s, "example.com/lb").reason.as_deref(),
            Some("Registered")
        );
    }

    #[test]
    fn the_last_write_takes_others_conditions_from_the_api() {
        let last: PodStatus = serde_json::from_value(serde_json::json!({
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "example.com/lb", "status": "False"},
            ],
        }))
        .unwrap();
        let api: PodStatus = serde_json::from_value(serde_json::json!({
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "example.com/lb", "status": "True"},
                {"type": "DisruptionTarget", "status": "True"},
            ],
        }))
        .unwrap();
        let merged = with_others_conditions(&last, Some(&api));
        let got: Vec<(&str, &str)> = merged
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("example.com/lb", "True"),
                ("DisruptionTarget", "True"),
                ("Ready", "True")
            ]
        );
    }

    #[test]
    fn ephemeral_containers_have_their_own_statuses_and_leave_the_pod_ready() {
        let mut p = pod("Always");
        p.spec.as_mut().unwrap().ephemeral_containers = Some(vec![
            serde_json::from_value(serde_json::json!(
                {"name": "dbg", "image": "tools", "targetContainerName": "app"}
            ))
            .unwrap(),
        ]);
        let app = c("c1", 0, State::Running, 0);
        let extra = Extra {
            ready: HashMap::from([("c1".into(), true)]),
            ..Extra::default()
        };
        let s = compute(&p, &runtime(vec![app.clone()]), &extra, Timestamp::now());
        let dbg = &s.ephemeral_container_statuses.as_ref().unwrap()[0];
        assert_eq!(dbg.name, "dbg");
        assert!(dbg.state.as_ref().unwrap().waiting.is_some());
        assert_eq!(s.container_statuses.as_ref().unwrap().len(), 1);

        // It exited with an error: terminated, not waiting for a restart,
        // and the pod stays Running and Ready.
        let mut exited = c("d1", 0, State::Exited, 1);
        exited.name = "dbg".into();
        let s = compute(&p, &runtime(vec![exited, app]), &extra, Timestamp::now());
        let dbg = &s.ephemeral_container_statuses.as_ref().unwrap()[0];
        let term = dbg.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(term.exit_code, 1);
        assert!(!dbg.ready && dbg.started.is_none());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready").status, "True");
    }

    #[test]
    fn a_sidecar_initializes_once_started_and_counts_for_readiness() {
        let mut p = pod("Never");
        p.spec.as_mut().unwrap().init_containers = Some(vec![
            serde_json::from_value(serde_json::json!(
                {"name": "proxy", "image": "img", "restartPolicy": "Always"}
            ))
            .unwrap(),
        ]);
        let mut sc = c("s1", 0, State::Running, 0);
        sc.name = "proxy".into();
        // Running, its startup probe not passed yet: not initialized.
        let extra = Extra {
            started: HashMap::from([("s1".into(), false)]),
            ..Extra::default()
        };
        let s = compute(&p, &runtime(vec![sc.clone()]), &extra, Timestamp::now());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let init = cond(&s, "Initialized");
        assert_eq!(
            (init.status.as_str(), init.message.as_deref()),
            ("False", Some("containers with incomplete status: [proxy]"))
        );
        // Started, the app running and ready, the sidecar not ready.
        let app = c("a1", 0, State::Running, 0);
        let extra = Extra {
            ready: HashMap::from([("a1".into(), true), ("s1".into(), false)]),
            ..Extra::default()
        };
        let rt = runtime(vec![app.clone(), sc.clone()]);
        let s = compute(&p, &rt, &extra, Timestamp::now());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Initialized").status, "True");
        let ready = cond(&s, "ContainersReady");
        assert_eq!(
            (ready.status.as_str(), ready.message.as_deref()),
            ("False", Some("containers with unready status: [proxy]"))
        );
        let sc_status = &s.init_container_statuses.as_ref().unwrap()[0];
        assert!(sc_status.state.as_ref().unwrap().running.is_some());
        // A sidecar restarting beside the running app: still initialized.
        let mut restarting = c("s0", 0, State::Exited, 1);
        restarting.name = "proxy".into();
        let s = compute(
            &p,
            &runtime(vec![app.clone(), restarting]),
            &extra,
            Timestamp::now(),
        );
        assert_eq!(cond(&s, "Initialized").status, "True");
        // The app done: Running while the sidecar runs, Succeeded once it
        // is stopped.
        let done = c("a1", 0, State::Exited, 0);
        let s = compute(
            &p,
            &runtime(vec![done.clone(), sc]),
            &extra,
            Timestamp::now(),
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let mut stopped = c("s1", 0, State::Exited, 137);
        stopped.name = "proxy".into();
        let s = compute(&p, &runtime(vec![done, stopped]), &extra, Timestamp::now());
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn a_host_network_pod_has_the_nodes_address() {
        let mut p = pod("Always");
        p.spec.as_mut().unwrap().host_network = Some(true);
        let mut rt = runtime(vec![c("c1", 0, State::Running, 0)]);
        rt.sandboxes[0].ip = Some(String::new());
        let extra = Extra {
            host_ip: "172.28.0.11".into(),
            ..Extra::default()
        };
        let s = compute(&p, &rt, &extra, Timestamp::now());
        assert_eq!(s.pod_ip.as_deref(), Some("172.28.0.11"));
        assert_eq!(s.pod_ips.unwrap()[0].ip, "172.28.0.11");
        // Not for a pod of the pod network.
        p.spec.as_mut().unwrap().host_network = None;
        let s = compute(&p, &rt, &extra, Timestamp::now());
        assert_eq!(s.pod_ip, None);
    }

    #[test]
    fn a_crash_looping_container_waits_with_its_last_state() {
        let rt = runtime(vec![
            c("c2", 2, State::Exited, 1),
            c("c1", 1, State::Exited, 1),
        ]);
        let extra = Extra {
            waiting: HashMap::from([(
                "app".into(),
                (
                    "CrashLoopBackOff".into(),
                    "back-off 20s restarting failed container=app".into(),
                ),
            )]),
            ..Extra::default()
        };
        let s = compute(&pod("Always"), &rt, &extra, Timestamp::now());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 2);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    }

    #[test]
    fn a_pod_past_its_active_deadline_fails_and_stays_failed() {
        let mut p = pod("Always");
        p.spec.as_mut().unwrap().active_deadline_seconds = Some(30);
        let running = runtime(vec![c("c1", 0, State::Running, 0)]);
        let start: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let at = |s| {
            start
                .checked_add(jiff::SignedDuration::from_secs(s))
                .unwrap()
        };
        let old = PodStatus {
            phase: Some("Running".into()),
            start_time: Some(Time(start)),
            ..Default::default()
        };
        assert_eq!(
            active_deadline_left(&p, Some(&old), at(10)),
            Some(Duration::from_secs(20))
        );
        assert_eq!(phase(&p, Some(&old), &running, at(29)), "Running");
        assert!(!deadline_reached(&p, Some(&old), at(29)));
        assert_eq!(phase(&p, Some(&old), &running, at(30)), "Failed");
        assert!(deadline_reached(&p, Some(&old), at(30)));
        // Before it started, or without a deadline, nothing is counted.
        assert_eq!(active_deadline_left(&p, None, at(100)), None);
        assert_eq!(
            active_deadline_left(&pod("Always"), Some(&old), at(100)),
            None
        );

        // The status written at the deadline, its container still running.
        p.status = Some(old);
        let failed = compute(&p, &running, &Extra::default(), at(31));
        assert_eq!(failed.phase.as_deref(), Some("Failed"));
        assert_eq!(failed.reason.as_deref(), Some(DEADLINE_EXCEEDED));
        assert_eq!(failed.message.as_deref(), Some(DEADLINE_EXCEEDED_MESSAGE));
        for kind in ["Ready", "ContainersReady"] {
            let c = cond(&failed, kind);
            assert_eq!(
                (c.status.as_str(), c.reason.as_deref()),
                ("False", Some("PodFailed"))
            );
        }
        // Once its container is stopped (which restartPolicy Always would
        // otherwise call Running), it stays Failed for the same reason.
        p.status = Some(failed);
        assert!(!deadline_reached(&p, p.status.as_ref(), at(40)));
        let stopped = runtime(vec![c("c1", 0, State::Exited, 143)]);
        let after = compute(&p, &stopped, &Extra::default(), at(40));
        assert_eq!(after.phase.as_deref(), Some("Failed"));
        assert_eq!(after.reason.as_deref(), Some(DEADLINE_EXCEEDED));
        // Its container is terminated for good, not waiting for a restart.
        let state = after.container_statuses.unwrap()[0].state.clone().unwrap();
        assert_eq!(state.terminated.map(|t| t.exit_code), Some(143));
    }

    #[test]
    fn phases_of_finished_pods() {
        let done = runtime(vec![c("c1", 0, State::Exited, 0)]);
        let failed = runtime(vec![c("c1", 0, State::Exited, 2)]);
        let phase = |pod: &Pod, runtime: &PodRuntime| phase(pod, None, runtime, Timestamp::now());
        assert_eq!(phase(&pod("Never"), &done), "Succeeded");
        assert_eq!(phase(&pod("Never"), &failed), "Failed");
        assert_eq!(phase(&pod("OnFailure"), &done), "Succeeded");
        assert_eq!(phase(&pod("OnFailure"), &failed), "Running");
        assert_eq!(phase(&pod("Always"), &done), "Running");
        let s = compute(&pod("Never"), &done, &Extra::default(), Timestamp::now());
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
        let term = s.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(term.reason.as_deref(), Some("Completed"));
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_times() {
        let rt = runtime(vec![c("c1", 0, State::Running, 0)]);
        let mut p = pod("Always");
        let first = compute(
            &p,
            &rt,
            &Extra::default(),
            Timestamp::from_second(1000).unwrap(),
        );
        p.status = Some(first.clone());
        let second = compute(
            &p,
            &rt,
            &Extra::default(),
            Timestamp::from_second(2000).unwrap(),
        );
        assert_eq!(first.conditions, second.conditions);
        assert!(!differs(&first, &second));
    }
}
