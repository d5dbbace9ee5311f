//! What to do for a pod, decided from its spec and what the runtime has —
//! the kubelet's `computePodActions` — as a pure function, so every rule
//! (sandbox recreation, init containers in order, sidecars, ephemeral
//! containers, restart policies, liveness kills, spec changes, garbage
//! collection) is tested without a runtime.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container as SpecContainer, Pod, PodSpec};

use super::pod_spec;
use super::runtime_view::observed::{Container, PodRuntime, State};

/// A container to create and start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub name: String,
    pub init: bool,
    /// The CRI attempt (and so the restart count) of the new container.
    pub attempt: u32,
    /// How long the previous attempt ran, when this is a restart (for
    /// CrashLoopBackOff).
    pub restart_after: Option<Duration>,
}

/// A running container to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub id: String,
    pub name: String,
    /// Why, for the `Killing` event.
    pub message: String,
}

/// Everything one sync does to the runtime, in order: kill, (stop old
/// sandboxes,) create a sandbox, start containers, remove dead ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop every container and the sandbox (pod finished, or its sandbox
    /// is to be replaced).
    pub kill_pod: bool,
    pub create_sandbox: bool,
    /// The attempt number of the new sandbox.
    pub sandbox_attempt: u32,
    pub kill: Vec<Kill>,
    pub start: Vec<Start>,
    /// Dead containers to remove (older attempts).
    pub remove_containers: Vec<String>,
    /// Dead sandboxes to remove (not the current one).
    pub remove_sandboxes: Vec<String>,
}

/// Restart policies of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    #[must_use]
    pub fn of(pod: &Pod) -> Self {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("OnFailure") => Self::OnFailure,
            Some("Never") => Self::Never,
            _ => Self::Always,
        }
    }

    /// Whether an exited container with `exit_code` is started again.
    #[must_use]
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

fn ran_for(c: &Container) -> Option<Duration> {
    (c.started_at > 0 && c.finished_at >= c.started_at)
        .then(|| Duration::from_nanos(u64::try_from(c.finished_at - c.started_at).unwrap_or(0)))
}

/// A start of container `name` that is no restart: its attempt follows the
/// newest the runtime has of it (in any sandbox), without a back-off.
fn fresh_start(runtime: &PodRuntime, name: &str, init: bool) -> Start {
    Start {
        name: name.to_owned(),
        init,
        attempt: runtime.latest_any(name).map_or(0, |c| c.attempt + 1),
        restart_after: None,
    }
}

/// What the probes say about the pod's running containers, by container ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probes {
    /// Containers whose liveness (or startup) probe has failed: killed.
    pub failed: HashSet<String>,
    /// Containers whose startup probe has not passed yet: a sidecar among
    /// them does not let the next init container start.
    pub not_started: HashSet<String>,
}

impl Probes {
    /// Only `id`'s liveness probe failed.
    #[must_use]
    pub fn failed(id: &str) -> Self {
        Self {
            failed: HashSet::from([id.to_owned()]),
            ..Self::default()
        }
    }
}

/// Decides the actions for `pod`. `terminal` says the pod has reached
/// Succeeded or Failed (see `status::phase`).
#[must_use]
pub fn compute(pod: &Pod, runtime: &PodRuntime, terminal: bool, probes: &Probes) -> PodActions {
    let mut actions = PodActions::default();
    let Some(spec) = pod.spec.as_ref() else {
        return actions;
    };
    let policy = RestartPolicy::of(pod);
    actions.remove_containers = garbage(runtime);
    actions.remove_sandboxes = runtime
        .sandboxes
        .iter()
        .skip(1)
        .filter(|s| !s.ready)
        .map(|s| s.id.clone())
        .collect();

    if terminal {
        actions.kill_pod = runtime.anything_running();
        return actions;
    }

    let init_containers = spec.init_containers.as_deref().unwrap_or_default();
    let sandbox_ok = runtime.sandbox().is_some_and(|s| s.ready);
    if !sandbox_ok {
        // A sandbox that died takes its containers with it. With
        // restartPolicy Never, a pod whose containers already ran is not
        // started again (the kubelet's rule); its phase says why.
        let ran_before = !runtime.containers.is_empty();
        if policy == RestartPolicy::Never && ran_before {
            actions.kill_pod = runtime.anything_running();
            return actions;
        }
        actions.kill_pod = runtime.anything_running();
        actions.create_sandbox = true;
        actions.sandbox_attempt = runtime.sandbox().map_or(0, |s| s.attempt + 1);
        // The old sandbox is replaced: it can go once stopped.
        actions
            .remove_sandboxes
            .extend(runtime.sandboxes.iter().take(1).map(|s| s.id.clone()));
        match init_containers.first() {
            Some(first) => actions.start.push(fresh_start(runtime, &first.name, true)),
            None => {
                for c in &spec.containers {
                    actions.start.push(fresh_start(runtime, &c.name, false));
                }
            }
        }
        return actions;
    }

    // Ephemeral containers, once each and never again, even while the
    // pod's init containers still run.
    for e in spec.ephemeral_containers.iter().flatten() {
        if runtime.latest_any(&e.name).is_none() {
            actions.start.push(fresh_start(runtime, &e.name, false));
        }
    }

    if !initialize(spec, runtime, policy, probes, &mut actions) {
        return actions;
    }

    // App containers, all at once.
    for c in &spec.containers {
        decide_app(c, runtime, policy, &probes.failed, &mut actions);
    }
    // Sidecars do not keep a pod alive: once no app container runs or is
    // to run again, the pod is stopped, sidecars included
    // (`computePodActions`' `keepCount == 0`).
    let app = |name: &str| spec.containers.iter().any(|c| c.name == name);
    let app_alive = spec.containers.iter().any(|c| {
        runtime
            .latest(&c.name)
            .is_some_and(|l| l.state != State::Exited)
    }) || actions.start.iter().any(|s| app(&s.name));
    if !app_alive && init_containers.iter().any(pod_spec::is_sidecar) {
        actions.kill_pod = runtime.anything_running();
        actions.kill.clear();
        actions.start.clear();
    }
    actions
}

/// The init containers, as `computeInitContainerActions`: one at a time in
/// order; an init container must exit 0 before the next starts, a sidecar
/// only has to have started (its startup probe passed). Sidecars are
/// restarted whenever they exit, whatever the pod's restart policy. Returns
/// whether the pod is initialized, so its app containers may run.
fn initialize(
    spec: &PodSpec,
    runtime: &PodRuntime,
    policy: RestartPolicy,
    probes: &Probes,
    actions: &mut PodActions,
) -> bool {
    // Once an app container runs in this sandbox, initialization is over:
    // only the sidecars are kept running.
    let initialized_before = spec.containers.iter().any(|c| {
        runtime
            .latest(&c.name)
            .is_some_and(|l| l.state != State::Exited)
    });
    for c in spec.init_containers.iter().flatten() {
        let sidecar = pod_spec::is_sidecar(c);
        if initialized_before && !sidecar {
            continue;
        }
        // Whether this container holds back the ones after it.
        let blocks = !initialized_before;
        let Some(latest) = runtime.latest(&c.name) else {
            actions.start.push(fresh_start(runtime, &c.name, true));
            if blocks {
                return false;
            }
            continue;
        };
        let restart = |actions: &mut PodActions, restart_after: Option<Duration>| {
            actions.start.push(Start {
                name: c.name.clone(),
                init: true,
                attempt: latest.attempt + 1,
                restart_after,
            });
        };
        match latest.state {
            State::Running if !sidecar => {
                if probes.failed.contains(&latest.id) {
                    actions.kill.push(kill(latest, "failed probe"));
                }
                return false;
            }
            State::Running => {
                if probes.failed.contains(&latest.id) {
                    actions.kill.push(kill(
                        latest,
                        &format!(
                            "Container {} failed liveness probe, will be restarted",
                            c.name
                        ),
                    ));
                    restart(actions, Some(ran_for(latest).unwrap_or_default()));
                } else if !latest.hash.is_empty() && latest.hash != pod_spec::container_hash(c) {
                    actions.kill.push(kill(
                        latest,
                        &format!("Container {} definition changed, will be restarted", c.name),
                    ));
                    restart(actions, None);
                } else if !probes.not_started.contains(&latest.id) {
                    // Started: the next init container may run.
                    continue;
                }
                if blocks {
                    return false;
                }
            }
            State::Created | State::Unknown => {
                actions
                    .kill
                    .push(kill(latest, "was created but not started"));
                if sidecar {
                    restart(actions, None);
                }
                if blocks {
                    return false;
                }
            }
            State::Exited if sidecar => {
                restart(actions, Some(ran_for(latest).unwrap_or_default()));
                if blocks {
                    return false;
                }
            }
            State::Exited if latest.exit_code == 0 => {}
            State::Exited => {
                if policy != RestartPolicy::Never {
                    restart(actions, Some(ran_for(latest).unwrap_or_default()));
                }
                return false;
            }
        }
    }
    true
}

fn decide_app(
    c: &SpecContainer,
    runtime: &PodRuntime,
    policy: RestartPolicy,
    liveness_failed: &HashSet<String>,
    actions: &mut PodActions,
) {
    let Some(latest) = runtime.latest(&c.name) else {
        actions.start.push(fresh_start(runtime, &c.name, false));
        return;
    };
    let restart = |actions: &mut PodActions, exit_code: i32| {
        if policy.restarts(exit_code) {
            actions.start.push(Start {
                name: c.name.clone(),
                init: false,
                attempt: latest.attempt + 1,
                restart_after: Some(ran_for(latest).unwrap_or_default()),
            });
        }
    };
    match latest.state {
        State::Running => {
            if liveness_failed.contains(&latest.id) {
                actions.kill.push(kill(
                    latest,
                    &format!(
                        "Container {} failed liveness probe, will be restarted",
                        c.name
                    ),
                ));
                // Killed by the kubelet: counts as a failure.
                restart(actions, 137);
            } else if !latest.hash.is_empty() && latest.hash != pod_spec::container_hash(c) {
                actions.kill.push(kill(
                    latest,
                    &format!("Container {} definition changed, will be restarted", c.name),
                ));
                actions.start.push(Start {
                    name: c.name.clone(),
                    init: false,
                    attempt: latest.attempt + 1,
                    restart_after: None,
                });
            }
        }
        State::Created | State::Unknown => {
            actions
                .kill
                .push(kill(latest, "was created but not started"));
            actions.start.push(Start {
                name: c.name.clone(),
                init: false,
                attempt: latest.attempt + 1,
                restart_after: None,
            });
        }
        State::Exited => restart(actions, latest.exit_code),
    }
}

fn kill(c: &Container, message: &str) -> Kill {
    Kill {
        id: c.id.clone(),
        name: c.name.clone(),
        message: message.to_owned(),
    }
}

/// Exited containers that are neither the newest nor the one before it of
/// their name (the newest dead one backs `lastState` and `logs --previous`).
fn garbage(runtime: &PodRuntime) -> Vec<String> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for c in &runtime.containers {
        let n = seen.entry(c.name.as_str()).or_default();
        *n += 1;
        if *n > 2 && c.state == State::Exited {
            out.push(c.id.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::runtime_view::observed::Sandbox;
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn simple_pod(policy: &str) -> Pod {
        pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": "i"}]},
        }))
    }

    /// The containers a plan starts, with their attempts.
    fn started(a: &PodActions) -> Vec<(&str, u32)> {
        a.start
            .iter()
            .map(|s| (s.name.as_str(), s.attempt))
            .collect()
    }

    fn sandbox(id: &str, ready: bool) -> Sandbox {
        Sandbox {
            id: id.into(),
            ready,
            attempt: 0,
            created_at: 1,
            ip: Some("10.244.1.2".into()),
        }
    }

    fn container(
        id: &str,
        name: &str,
        attempt: u32,
        state: State,
        exit_code: i32,
        pod: &Pod,
    ) -> Container {
        let spec = pod.spec.as_ref().unwrap();
        let all: Vec<&SpecContainer> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .collect();
        let hash = all
            .iter()
            .find(|c| c.name == name)
            .map(|c| pod_spec::container_hash(c))
            .unwrap_or_default();
        Container {
            id: id.into(),
            sandbox_id: "s1".into(),
            name: name.into(),
            attempt,
            init: false,
            state,
            created_at: i64::from(attempt) + 10,
            started_at: 1_000_000_000,
            finished_at: if state == State::Exited {
                3_000_000_000
            } else {
                0
            },
            exit_code,
            reason: String::new(),
            message: String::new(),
            hash,
            image: "i".into(),
            image_ref: "sha256:x".into(),
            log_path: String::new(),
            grace_period: Some(30),
        }
    }

    #[test]
    fn a_new_pod_gets_a_sandbox_and_its_containers() {
        let p = simple_pod("Always");
        let a = compute(&p, &PodRuntime::default(), false, &Probes::default());
        assert!(a.create_sandbox && !a.kill_pod);
        assert_eq!(a.start.len(), 1);
        assert_eq!((a.start[0].name.as_str(), a.start[0].attempt), ("app", 0));
    }

    #[test]
    fn a_running_healthy_container_is_left_alone() {
        let p = simple_pod("Always");
        let rt = PodRuntime {
            sandboxes: vec![sandbox("s1", true)],
            containers: vec![container("c1", "app", 0, State::Running, 0, &p)],
        };
        assert_eq!(
            compute(&p, &rt, false, &Probes::default()),
            PodActions::default()
        );
    }

    #[test]
    fn restart_policies_decide_what_exited_containers_do() {
        for (policy, exit, restarts) in [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 2, true),
            ("Never", 1, false),
        ] {
            let p = simple_pod(policy);
            let rt = PodRuntime {
                sandboxes: vec![sandbox("s1", true)],
                containers: vec![container("c1", "app", 3, State::Exited, exit, &p)],
            };
            let a = compute(&p, &rt, false, &Probes::default());
            assert_eq!(!a.start.is_empty(), restarts, "{policy} exit {exit}");
            if restarts {
                assert_eq!(a.start[0].attempt, 4);
                assert_eq!(a.start[0].restart_after, Some(Duration::from_secs(2)));
            }
        }
    }

    #[test]
    fn a_failed_liveness_probe_kills_and_restarts() {
        let p = simple_pod("Always");
        let rt = PodRuntime {
            sandboxes: vec![sandbox("s1", true)],
            containers: vec![container("c1", "app", 0, State::Running, 0, &p)],
        };
        let a = compute(&p, &rt, false, &Probes::failed("c1"));
        assert_eq!(a.kill.len(), 1);
        assert!(a.kill[0].message.contains("failed liveness probe"));
        assert_eq!(a.start[0].attempt, 1);
        // With Never, it is killed but not started again.
        let p = simple_pod("Never");
        let rt = PodRuntime {
            sandboxes: vec![sandbox("s1", true)],
            containers: vec![container("c1", "app", 0, State::Running, 0, &p)],
        };
        let a = compute(&p, &rt, false, &Probes::failed("c1"));
        assert_eq!(a.kill.len(), 1);
        assert!(a.start.is_empty());
    }

    #[test]
    fn a_changed_spec_restarts_the_container() {
        let p = simple_pod("Always");
        let mut c = container("c1", "app", 0, State::Running, 0, &p);
        c.hash = "stale".into();
        let rt = PodRuntime {
            sandboxes: vec![sandbox("s1", true)],
            containers: vec![c],
        };
        let a = compute(&p, &rt, false, &Probes::default());
        assert_eq!(a.kill.len(), 1);
        assert_eq!(a.start.len(), 1);
    }

    #[test]
    fn init_containers_run_one_at_a_time_before_the_app() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {
                "initContainers": [{"name": "i1", "image": "i"}, {"name": "i2", "image": "i"}],
                "containers": [{"name": "app", "image": "i"}],
            },
        }));
        let a = compute(&p, &PodRuntime::default(), false, &Probes::default());
        assert!(a.create_sandbox);
        assert_eq!(
            a.start.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["i1"]
        );
        let mut rt = PodRuntime {
            sandboxes: vec![sandbox("s1", true)],
            containers: vec![container("a", "i1", 0, State::Running, 0, &p)],
        };
        assert!(compute(&p, &rt, false, &Probes::default()).start.is_empty());
        rt.containers[0] = container("a", "i1", 0, State::Exited, 0, &p);
        let a = compute(&p, &rt, false, &Probes::default());
        assert_eq!(
            a.start.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["i2"]
        );
        rt.containers
            .insert(0, container("b", "i2", 0, State::Exited, 1, &p));
        let a = compute(&p, &rt, false, &Probes::default());
        // A failed init container is retried (restartPolicy Always).
        assert_eq!(
            a.start
                .iter()
                .map(|s| (s.name.as_str(), s.attempt))
                .collect::<Vec<_>>(),
            [("i2", 1)]
        );
        rt.containers[0] = container("b", "i2", 0, State::Exited, 0, &p);
        let a = compute(&p, &rt, false, &Probes::default());
        assert_eq!(
            a.start.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["app"]
        );
    }

    #[test]
    fn a_dead_sandbox_is_replaced_and_a_finished_pod_is_stopped() {
        let p = simple_pod("Always");
        let rt = PodRuntime {
            sandboxes: vec![sandbox("s1", false)],
            containers: vec![container("c1", "app", 2, State::Exited, 0, &p)],
        };
        let a = compute(&p, &rt, false, &Probes::default());
        assert!(a.create_sandbox);
        assert_eq!(a.sandbox_attempt, 1);
        assert_eq!(a.start[0].attempt, 3);
        assert_eq!(a.remove_sandboxes, ["s1"]);

        let rt = PodRuntime {
            sandboxes: vec![sandbox("s1", true)],
            containers: vec![container("c1", "app", 0, State::Exited, 0, &p)],
        };
        let a = compute(&p, &rt, true, &Probes::default());
        assert!(a.kill_pod && a.start.is_empty() && !a.create_sandbox);
    }

    #[test]
    fn an_ephemeral_container_starts_once_and_is_never_restarted() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {
                "initContainers": [{"name": "i1", "image": "i"}],
                "containers": [{"name": "app", "image": "i"}],
                "ephemeralContainers": [{"name": "dbg", "image": "i", "targetContainerName": "app"}],
            },
        }));
        // Not with a new sandbox: only once the pod has one.
        let a = compute(&p, &PodRuntime::default(), false, &Probes::default());
        assert_eq!(started(&a), [("i1", 0)]);
        // Started while the init container still runs.
        let mut rt = PodRuntime {
            sandboxes: vec![sandbox("s1", true)],
            containers: vec![container("a", "i1", 0, State::Running, 0, &p)],
        };
        let a = compute(&p, &rt, false, &Probes::default());
        assert_eq!(started(&a), [("dbg", 0)]);
        // Once it ran, whatever its exit code, it stays as it is.
        for exit in [0, 1] {
            rt.containers = vec![
                container("d", "dbg", 0, State::Exited, exit, &p),
                container("b", "app", 0, State::Running, 0, &p),
                container("a", "i1", 0, State::Exited, 0, &p),
            ];
            assert_eq!(
                compute(&p, &rt, false, &Probes::default()),
                PodActions::default()
            );
        }
        // A finished pod starts nothing.
        rt.containers.remove(0);
        let a = compute(&p, &rt, true, &Probes::default());
        assert!(a.start.is_empty());
    }

    #[test]
    fn sidecars_start_in_order_keep_running_and_stop_with_the_app() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {
                "restartPolicy": "Never",
                "initContainers": [
                    {"name": "proxy", "image": "i", "restartPolicy": "Always"},
                    {"name": "setup", "image": "i"},
                ],
                "containers": [{"name": "app", "image": "i"}],
            },
        }));
        let mut rt = PodRuntime {
            sandboxes: vec![sandbox("s1", true)],
            containers: vec![],
        };
        let none = Probes::default();
        assert_eq!(started(&compute(&p, &rt, false, &none)), [("proxy", 0)]);
        // Running, but its startup probe has not passed: wait.
        rt.containers = vec![container("sc", "proxy", 0, State::Running, 0, &p)];
        let starting = Probes {
            not_started: HashSet::from(["sc".to_owned()]),
            ..Probes::default()
        };
        assert_eq!(compute(&p, &rt, false, &starting), PodActions::default());
        // Started: the next init container runs beside it.
        assert_eq!(started(&compute(&p, &rt, false, &none)), [("setup", 0)]);
        rt.containers
            .insert(0, container("i", "setup", 0, State::Exited, 0, &p));
        assert_eq!(started(&compute(&p, &rt, false, &none)), [("app", 0)]);
        // With the app running, a sidecar that exits is started again,
        // whatever the pod's restart policy, and the app is left alone.
        rt.containers = vec![
            container("a", "app", 0, State::Running, 0, &p),
            container("i", "setup", 0, State::Exited, 0, &p),
            container("sc", "proxy", 0, State::Exited, 1, &p),
        ];
        let a = compute(&p, &rt, false, &none);
        assert_eq!(started(&a), [("proxy", 1)]);
        assert!(a.start[0].restart_after.is_some() && !a.kill_pod);
        // A failed liveness probe restarts it too.
        rt.containers[2] = container("sc", "proxy", 0, State::Running, 0, &p);
        let a = compute(&p, &rt, false, &Probes::failed("sc"));
        assert_eq!(a.kill.len(), 1);
        assert_eq!(started(&a), [("proxy", 1)]);
        // The app is done (restartPolicy Never): the sidecar does not keep
        // the pod alive.
        rt.containers[0] = container("a", "app", 0, State::Exited, 0, &p);
        let a = compute(&p, &rt, false, &none);
        assert!(a.kill_pod && a.start.is_empty() && a.kill.is_empty());
    }

    #[test]
    fn only_the_two_newest_attempts_are_kept() {
        let p = simple_pod("Always");
        let rt = PodRuntime {
            sandboxes: vec![sandbox("s1", true)],
            containers: vec![
                container("c3", "app", 3, State::Running, 0, &p),
                container("c2", "app", 2, State::Exited, 1, &p),
                container("c1", "app", 1, State::Exited, 1, &p),
                container("c0", "app", 0, State::Exited, 1, &p),
            ],
        };
        let a = compute(&p, &rt, false, &Probes::default());
        assert_eq!(a.remove_containers, ["c1", "c0"]);
    }
}
