//! The control plane of a harness cluster: etcd and `baton-control` in the
//! control namespace. Used by `cargo xtask up` (persistent cluster, where a
//! second run keeps what already runs) and by end-to-end tests.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::addressing;
use crate::binaries::{Binaries, MissingBinary};
use crate::cluster::{Cluster, ClusterError};
use crate::exec::{self, CommandError};
use crate::kubectl::Kubectl;
use crate::process::ProcessSpec;

/// etcd's client port; it listens on the control namespace's loopback only:
/// the API server is the one component that talks to it.
pub const ETCD_CLIENT_PORT: u16 = 2379;
const ETCD_PEER_PORT: u16 = 2380;
/// The API server's secure port, as kube-apiserver's default.
pub const APISERVER_PORT: u16 = 6443;

const ETCD: &str = "etcd";
const APISERVER: &str = "apiserver";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the control plane did not come up.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    MissingBinary(#[from] MissingBinary),
    #[error("creating {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("issuing a kubeconfig for {user}: {source}")]
    IssueKubeconfig { user: String, source: CommandError },
    #[error("creating the PKI (baton-control certs): {0}")]
    Certs(CommandError),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{component} did not take its leader Lease within {timeout:?}: {last}")]
    NotLeading {
        component: &'static str,
        timeout: Duration,
        last: String,
    },
    #[error("the API server at {server} was not ready within {timeout:?}: {last}")]
    NotReady {
        server: String,
        timeout: Duration,
        last: String,
    },
}

/// Where the control plane keeps its files and how to reach it.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    /// Everything below: certificates, etcd data, component kubeconfigs.
    pub state_dir: PathBuf,
    /// `https://<control address>:6443`
    pub server: String,
    /// The admin kubeconfig the API server wrote.
    pub kubeconfig: PathBuf,
    /// The cluster CA, serving and client certificates.
    pub cert_dir: PathBuf,
    /// etcd's data directory.
    pub etcd_dir: PathBuf,
}

impl ControlPlane {
    /// The layout under `state_dir`, with the admin kubeconfig at
    /// `kubeconfig`.
    pub fn layout(cluster: &Cluster, state_dir: &Path, kubeconfig: PathBuf) -> Self {
        Self {
            state_dir: state_dir.to_path_buf(),
            server: format!("https://{}:{APISERVER_PORT}", cluster.control().address()),
            kubeconfig,
            cert_dir: state_dir.join("pki"),
            etcd_dir: state_dir.join("etcd"),
        }
    }

    /// The API server's flags to reach etcd over mutual TLS.
    fn etcd_client_flags(&self) -> Vec<String> {
        etcd_client_flags(
            &self.cert_dir,
            &format!("https://127.0.0.1:{ETCD_CLIENT_PORT}"),
        )
    }

    /// The real kubectl with the admin kubeconfig.
    #[must_use]
    pub fn kubectl_runner(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig)
    }

    /// A `kubectl` command using the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        self.kubectl_runner().command()
    }
}

/// What an `ensure_*` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// It was running already and was left alone.
    AlreadyRunning { pid: u32 },
    /// It was started.
    Started { pid: u32 },
}

impl std::fmt::Display for Ensured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ensured::AlreadyRunning { pid } => write!(f, "already running (pid {pid}), kept"),
            Ensured::Started { pid } => write!(f, "started (pid {pid})"),
        }
    }
}

/// Creates the PKI in the cert dir (`baton-control certs`, like `kubeadm
/// init phase certs`): the cluster CA, etcd's CA and serving certificate,
/// and the API server's etcd client certificate. Existing files are kept.
pub fn ensure_pki(binaries: &Binaries, plane: &ControlPlane) -> Result<(), ControlPlaneError> {
    create_dir(&plane.cert_dir)?;
    let mut cmd = Command::new(binaries.path("baton-control")?);
    cmd.arg("certs")
        .arg("--cert-dir")
        .arg(&plane.cert_dir)
        .args(["--etcd-san", "127.0.0.1"]);
    exec::run(&mut cmd, Duration::from_secs(30))
        .and_then(exec::Output::check)
        .map_err(ControlPlaneError::Certs)?;
    Ok(())
}

/// Starts etcd in the control namespace unless it runs, and waits until it
/// accepts clients. It serves clients over mutual TLS only (kubeadm's
/// flags): a client needs a certificate signed by etcd's CA, which the PKI
/// made first holds.
pub fn ensure_etcd(
    cluster: &Cluster,
    binaries: &Binaries,
    plane: &ControlPlane,
) -> Result<Ensured, ControlPlaneError> {
    if let Some(pid) = running(cluster, ETCD) {
        return Ok(Ensured::AlreadyRunning { pid });
    }
    ensure_pki(binaries, plane)?;
    create_dir(&plane.etcd_dir)?;
    let peer = format!("http://127.0.0.1:{ETCD_PEER_PORT}");
    let client = format!("https://127.0.0.1:{ETCD_CLIENT_PORT}");
    let spec = ProcessSpec::new(ETCD, "etcd")
        .arg("--name=control")
        .arg(format!("--data-dir={}", plane.etcd_dir.display()))
        .args(etcd_tls_flags(&plane.cert_dir))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=control={peer}"));
    let record = cluster.spawn(cluster.control().netns(), spec)?;
    cluster.wait_for_process_tcp(
        ETCD,
        SocketAddr::from((Ipv4Addr::LOCALHOST, ETCD_CLIENT_PORT)),
        START_TIMEOUT,
    )?;
    Ok(Ensured::Started { pid: record.pid })
}

/// Starts the API server in the control namespace unless it runs, and waits
/// until `/readyz` answers ok to the real kubectl through the admin
/// kubeconfig it writes.
pub fn ensure_apiserver(
    cluster: &Cluster,
    binaries: &Binaries,
    plane: &ControlPlane,
) -> Result<Ensured, ControlPlaneError> {
    let ensured = match running(cluster, APISERVER) {
        Some(pid) => Ensured::AlreadyRunning { pid },
        None => {
            create_dir(&plane.cert_dir)?;
            let address = cluster.control().address();
            let ports = addressing::node_port_range();
            let spec = ProcessSpec::new(APISERVER, binaries.path("baton-control")?)
                .arg("apiserver")
                .args(plane.etcd_client_flags())
                .arg(format!("--bind-address={address}"))
                .arg(format!("--advertise-address={address}"))
                .arg(format!("--secure-port={APISERVER_PORT}"))
                .arg(format!("--cert-dir={}", plane.cert_dir.display()))
                .arg(format!("--admin-kubeconfig={}", plane.kubeconfig.display()))
                .arg(format!(
                    "--encryption-provider-config={}",
                    encryption_config(plane)?.display()
                ))
                .arg(format!(
                    "--audit-policy-file={}",
                    audit_policy(plane)?.display()
                ))
                .arg(format!(
                    "--audit-log-path={}",
                    plane.state_dir.join("audit").join("audit.log").display()
                ))
                .arg("--audit-log-maxsize=100")
                .arg("--audit-log-maxbackup=3")
                .arg(format!(
                    "--service-cluster-ip-range={}",
                    addressing::service_cidr()
                ))
                .arg(format!(
                    "--service-node-port-range={}-{}",
                    ports.start(),
                    ports.end()
                ))
                .env("RUST_LOG", "info");
            let record = cluster.spawn(cluster.control().netns(), spec)?;
            cluster.wait_for_process_tcp(
                APISERVER,
                SocketAddr::from((address, APISERVER_PORT)),
                START_TIMEOUT,
            )?;
            Ensured::Started { pid: record.pid }
        }
    };
    wait_ready(plane, START_TIMEOUT)?;
    Ok(ensured)
}

/// Issues a client certificate from the cluster CA for `user` in `groups`
/// and writes a kubeconfig for it to `out` (`baton-control kubeconfig`,
/// like `kubeadm kubeconfig user`). Kept if `out` was issued under the
/// current CA.
pub fn issue_kubeconfig(
    binaries: &Binaries,
    plane: &ControlPlane,
    user: &str,
    groups: &[&str],
    out: &Path,
) -> Result<(), ControlPlaneError> {
    // Kept only if issued under the current CA: a cluster brought down and
    // up again has a new one, and old credentials would fail TLS.
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(issued), Some(ca)) = (modified(out), modified(&plane.cert_dir.join("ca.crt")))
        && issued >= ca
    {
        return Ok(());
    }
    let mut cmd = Command::new(binaries.path("baton-control")?);
    cmd.arg("kubeconfig")
        .arg("--cert-dir")
        .arg(&plane.cert_dir)
        .args(["--server", &plane.server, "--user", user]);
    for group in groups {
        cmd.args(["--group", group]);
    }
    cmd.arg("--out").arg(out);
    exec::run(&mut cmd, Duration::from_secs(30))
        .and_then(exec::Output::check)
        .map_err(|source| ControlPlaneError::IssueKubeconfig {
            user: user.to_owned(),
            source,
        })?;
    Ok(())
}

/// A control-plane component other than the API server, run as its own
/// process with its own credentials, as kube-scheduler and
/// kube-controller-manager are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Scheduler,
    Controllers,
}

impl Component {
    /// Its process name and `baton-control` subcommand.
    pub fn name(self) -> &'static str {
        match self {
            Component::Scheduler => "scheduler",
            Component::Controllers => "controllers",
        }
    }

    /// The user its certificate names, as Kubernetes' own components.
    fn user(self) -> &'static str {
        match self {
            Component::Scheduler => "system:kube-scheduler",
            Component::Controllers => "system:kube-controller-manager",
        }
    }

    /// The kube-system Lease it leads through.
    fn lease(self) -> &'static str {
        match self {
            Component::Scheduler => "kube-scheduler",
            Component::Controllers => "kube-controller-manager",
        }
    }

    fn args(self, plane: &ControlPlane) -> Vec<String> {
        match self {
            Component::Scheduler => Vec::new(),
            Component::Controllers => vec![
                format!("--cluster-cidr={}", addressing::pod_cidr()),
                "--allocate-node-cidrs".to_owned(),
                // The CSR signer issues from the cluster CA, which stays
                // on the control plane.
                format!(
                    "--cluster-signing-cert-file={}",
                    plane.cert_dir.join("ca.crt").display()
                ),
                format!(
                    "--cluster-signing-key-file={}",
                    plane.cert_dir.join("ca.key").display()
                ),
            ],
        }
    }
}

/// Starts `component` in the control namespace unless it runs, with a
/// kubeconfig of its own, and waits until it holds its leader Lease.
pub fn ensure_component(
    cluster: &Cluster,
    binaries: &Binaries,
    plane: &ControlPlane,
    component: Component,
) -> Result<Ensured, ControlPlaneError> {
    let name = component.name();
    let ensured = match running(cluster, name) {
        Some(pid) => Ensured::AlreadyRunning { pid },
        None => {
            let kubeconfig = plane.state_dir.join(format!("{name}.kubeconfig"));
            issue_kubeconfig(binaries, plane, component.user(), &[], &kubeconfig)?;
            let spec = ProcessSpec::new(name, binaries.path("baton-control")?)
                .arg(name)
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args(component.args(plane))
                .env("RUST_LOG", "info,kube_runtime=warn,kube_client=warn");
            Ensured::Started {
                pid: cluster.spawn(cluster.control().netns(), spec)?.pid,
            }
        }
    };
    wait_leading(cluster, plane, component, START_TIMEOUT)?;
    Ok(ensured)
}

/// Waits until the component's Lease names a holder and the process runs.
fn wait_leading(
    cluster: &Cluster,
    plane: &ControlPlane,
    component: Component,
    timeout: Duration,
) -> Result<(), ControlPlaneError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match exec::run(
            plane.kubectl().args([
                "get",
                "lease",
                "-n",
                "kube-system",
                component.lease(),
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ]),
            Duration::from_secs(10),
        ) {
            Ok(out) if out.success() && !out.stdout.trim().is_empty() => return Ok(()),
            Ok(out) => out.stderr.trim().to_owned(),
            Err(err) => err.to_string(),
        };
        if running(cluster, component.name()).is_none() || Instant::now() >= deadline {
            return Err(ControlPlaneError::NotLeading {
                component: component.name(),
                timeout,
                last,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls `/readyz` with the real kubectl until it answers `ok`.
pub fn wait_ready(plane: &ControlPlane, timeout: Duration) -> Result<(), ControlPlaneError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = if plane.kubeconfig.is_file() {
            match exec::run(
                plane.kubectl().args(["get", "--raw=/readyz"]),
                Duration::from_secs(10),
            ) {
                Ok(out) if out.success() && out.stdout.trim() == "ok" => return Ok(()),
                Ok(out) => format!("{} {}", out.stdout.trim(), out.stderr.trim()),
                Err(CommandError::Spawn { source, .. }) => format!("kubectl: {source}"),
                Err(err) => err.to_string(),
            }
        } else {
            format!("{} not written yet", plane.kubeconfig.display())
        };
        if Instant::now() >= deadline {
            return Err(ControlPlaneError::NotReady {
                server: plane.server.clone(),
                timeout,
                last,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn running(cluster: &Cluster, name: &str) -> Option<u32> {
    cluster
        .process(name)
        .filter(|p| p.is_running())
        .map(|p| p.pid)
}

/// etcd's flags to serve clients over mutual TLS only, with the PKI
/// `baton-control certs` made in `cert_dir` (kubeadm's layout).
pub fn etcd_tls_flags(cert_dir: &Path) -> Vec<String> {
    let etcd_pki = cert_dir.join("etcd");
    vec![
        "--client-cert-auth".to_owned(),
        format!("--trusted-ca-file={}", etcd_pki.join("ca.crt").display()),
        format!("--cert-file={}", etcd_pki.join("server.crt").display()),
        format!("--key-file={}", etcd_pki.join("server.key").display()),
    ]
}

/// The API server's flags to reach etcd at `url` with its client
/// certificate from `cert_dir`.
pub fn etcd_client_flags(cert_dir: &Path, url: &str) -> Vec<String> {
    vec![
        format!("--etcd-servers={url}"),
        format!(
            "--etcd-cafile={}",
            cert_dir.join("etcd").join("ca.crt").display()
        ),
        format!(
            "--etcd-certfile={}",
            cert_dir.join("apiserver-etcd-client.crt").display()
        ),
        format!(
            "--etcd-keyfile={}",
            cert_dir.join("apiserver-etcd-client.key").display()
        ),
    ]
}

/// The EncryptionConfiguration the API server encrypts Secrets at rest
/// with: aesgcm with a random key made on first use, identity to read
/// what was written before. Kept beside the PKI, readable by root only.
fn encryption_config(plane: &ControlPlane) -> Result<PathBuf, ControlPlaneError> {
    use base64::Engine as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = plane.cert_dir.join("encryption-config.yaml");
    if path.is_file() {
        return Ok(path);
    }
    let key: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::STANDARD.encode(key);
    let text = [
        "apiVersion: apiserver.config.k8s.io/v1",
        "kind: EncryptionConfiguration",
        "resources:",
        "- resources: [secrets]",
        "  providers:",
        "  - aesgcm:",
        "      keys:",
        "      - name: key1",
        &format!("        secret: {secret}"),
        "  - identity: {}",
        "",
    ]
    .join("\n");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(text.as_bytes())
    };
    write().map_err(|source| ControlPlaneError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The audit policy of harness clusters: who did what, at the Metadata
/// level, for every request but the health checks and the kubelets'
/// leases and events (the noise of a running cluster), without the
/// RequestReceived stage.
fn audit_policy(plane: &ControlPlane) -> Result<PathBuf, ControlPlaneError> {
    let path = plane.state_dir.join("audit-policy.yaml");
    let text = [
        "apiVersion: audit.k8s.io/v1",
        "kind: Policy",
        "omitStages: [RequestReceived]",
        "rules:",
        "- level: None",
        "  nonResourceURLs: [/healthz*, /livez*, /readyz*, /version]",
        "- level: None",
        "  userGroups: [system:nodes]",
        "  verbs: [get, update, patch]",
        "  resources:",
        "  - group: coordination.k8s.io",
        "    resources: [leases]",
        "- level: None",
        "  resources:",
        "  - group: \"\"",
        "    resources: [events]",
        "  - group: events.k8s.io",
        "    resources: [events]",
        "- level: Metadata",
        "",
    ]
    .join("\n");
    std::fs::write(&path, text).map_err(|source| ControlPlaneError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn create_dir(path: &Path) -> Result<(), ControlPlaneError> {
    std::fs::create_dir_all(path).map_err(|source| ControlPlaneError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}
