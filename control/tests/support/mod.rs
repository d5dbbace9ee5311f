//! Control-plane test support on top of `common` (real etcd + the real API
//! server): the real `baton-control scheduler` and `baton-control
//! controllers` processes with their own kubeconfigs, and Node objects
//! without kubelets whose status, leases and pods the test drives
//! ([`kubelet`]). Processes are killed by PID when the guards drop.
#![allow(dead_code)]

pub mod kubelet;
pub mod users;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Cluster, kill, stderr};

/// A scheduler or controller-manager process.
pub struct Component {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Component {
    /// Starts `baton-control <kind> --kubeconfig <kc> <extra…>`.
    pub fn start(kind: &str, kubeconfig: &Path, extra: &[&str], log: PathBuf) -> Component {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_baton-control"))
            .arg(kind)
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args(extra)
            .env("RUST_LOG", "info,baton_control=debug,kube=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("baton-control runs");
        Component {
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the process (SIGKILL, by PID) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process acquired its leader lease.
    pub fn is_leader(&self) -> bool {
        self.log_text().contains("successfully acquired lease")
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.kill();
    }
}

/// etcd, the API server, and the components started so far.
pub struct Plane {
    pub components: Vec<Component>,
    pub cluster: Cluster,
}

impl Plane {
    /// etcd and the API server only.
    pub fn new() -> Plane {
        Plane {
            components: Vec::new(),
            cluster: Cluster::start(),
        }
    }

    /// etcd, the API server, one scheduler and one controller manager
    /// (`controller_args` are extra flags of the latter).
    pub fn start(controller_args: &[&str]) -> Plane {
        let mut p = Plane::new();
        p.add_scheduler(&[]);
        p.add_controllers(controller_args);
        p
    }

    /// A kubeconfig for `user`, issued by the cluster CA with the real
    /// `baton-control kubeconfig`.
    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        self.kubeconfig_in(user, &[])
    }

    /// A kubeconfig for `user` in `groups`.
    pub fn kubeconfig_in(&self, user: &str, groups: &[&str]) -> PathBuf {
        let api = &self.cluster.api;
        let out = api
            .dir
            .path()
            .join(format!("{}.conf", user.replace(':', "_")));
        let group_args = groups.iter().flat_map(|g| ["--group", g]);
        let o = Command::new(env!("CARGO_BIN_EXE_baton-control"))
            .args([
                "kubeconfig",
                "--cert-dir",
                api.cert_dir().to_str().unwrap(),
                "--server",
                &api.url(),
                "--user",
                user,
                "--out",
                out.to_str().unwrap(),
            ])
            .args(group_args)
            .output()
            .expect("kubeconfig");
        assert!(o.status.success(), "kubeconfig: {}", stderr(&o));
        out
    }

    pub fn add_scheduler(&mut self, extra: &[&str]) -> usize {
        let kc = self.kubeconfig("system:kube-scheduler");
        let log = self
            .cluster
            .api
            .dir
            .path()
            .join(format!("scheduler-{}.log", self.components.len()));
        self.components
            .push(Component::start("scheduler", &kc, extra, log));
        self.components.len() - 1
    }

    pub fn add_controllers(&mut self, extra: &[&str]) -> usize {
        let kc = self.kubeconfig("system:kube-controller-manager");
        let pki = self.cluster.api.cert_dir();
        let signing = [
            format!(
                "--cluster-signing-cert-file={}",
                pki.join("ca.crt").display()
            ),
            format!(
                "--cluster-signing-key-file={}",
                pki.join("ca.key").display()
            ),
        ];
        let extra: Vec<&str> = extra
            .iter()
            .copied()
            .chain(signing.iter().map(String::as_str))
            .collect();
        let extra = extra.as_slice();
        let log = self
            .cluster
            .api
            .dir
            .path()
            .join(format!("controllers-{}.log", self.components.len()));
        self.components
            .push(Component::start("controllers", &kc, extra, log));
        self.components.len() - 1
    }

    /// Every component's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for c in &self.components {
            let text = c.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            s.push_str(&format!(
                "==== {}\n{}\n",
                c.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        s
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.cluster.api.kubectl_ok(args)
    }

    pub async fn client(&self) -> kube::Client {
        self.cluster.api.client().await
    }
}

/// Polls `f` until it returns Some or `within` passes.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
