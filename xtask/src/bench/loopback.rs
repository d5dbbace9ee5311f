//! etcd and the API server on loopback, for the benchmarks that measure the
//! control plane alone (no namespaces, no nodes).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use baton_e2e::control_plane;

use super::report::{Proc, free_port, wait_port};

/// A running etcd + `baton-control apiserver`, stopped on drop.
pub struct LoopbackControlPlane {
    pub apiserver: Proc,
    _etcd: Proc,
    pub port: u16,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    pub cert_dir: PathBuf,
    binary: PathBuf,
}

impl LoopbackControlPlane {
    /// Starts etcd (data in `etcd_dir`) and the API server `binary` (certs,
    /// kubeconfig and logs in `dir`) on free loopback ports, and waits until
    /// the API server accepts connections.
    pub fn start(binary: &Path, dir: &Path, etcd_dir: &Path) -> Result<Self> {
        Self::start_with(binary, dir, etcd_dir, &[])
    }

    /// [`Self::start`] with `extra` flags for the API server.
    pub fn start_with(binary: &Path, dir: &Path, etcd_dir: &Path, extra: &[&str]) -> Result<Self> {
        let log = |name: &str| -> Result<Stdio> {
            let path = dir.join(name);
            Ok(Stdio::from(
                std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ))
        };
        // The PKI first, as a cluster is made: etcd serves clients over
        // mutual TLS and the API server presents its etcd client
        // certificate.
        let cert_dir = dir.join("pki");
        let st = Command::new(binary)
            .arg("certs")
            .arg("--cert-dir")
            .arg(&cert_dir)
            .args(["--etcd-san", "127.0.0.1"])
            .status()
            .context("running baton-control certs")?;
        ensure!(st.success(), "creating the PKI failed");
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let url = format!("https://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let etcd = Proc(
            Command::new("etcd")
                .arg("--name=bench")
                .arg(format!("--data-dir={}", etcd_dir.display()))
                .args(control_plane::etcd_tls_flags(&cert_dir))
                .arg(format!("--listen-client-urls={url}"))
                .arg(format!("--advertise-client-urls={url}"))
                .arg(format!("--listen-peer-urls={peer}"))
                .arg(format!("--initial-advertise-peer-urls={peer}"))
                .arg(format!("--initial-cluster=bench={peer}"))
                .arg("--log-level=error")
                // 10,000-object benchmarks outgrow etcd's 2 GiB default.
                .arg("--quota-backend-bytes=8589934592")
                .stdout(Stdio::null())
                .stderr(log("etcd.log")?)
                .spawn()
                .context("starting etcd")?,
        );
        wait_port(client_port, Duration::from_secs(20))?;
        let port = free_port()?;
        let kubeconfig = dir.join("admin.conf");
        let apiserver = Proc(
            Command::new(binary)
                .arg("apiserver")
                .args(control_plane::etcd_client_flags(&cert_dir, &url))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={port}"))
                .arg(format!("--cert-dir={}", cert_dir.display()))
                .arg(format!("--admin-kubeconfig={}", kubeconfig.display()))
                // No controller manager creates the `default` ServiceAccount.
                .arg("--disable-admission-plugins=ServiceAccount")
                .args(extra)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log("apiserver.log")?)
                .spawn()
                .context("starting the API server")?,
        );
        wait_port(port, Duration::from_secs(30))?;
        Ok(Self {
            apiserver,
            _etcd: etcd,
            port,
            kubeconfig,
            cert_dir,
            binary: binary.to_path_buf(),
        })
    }

    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Issues a kubeconfig for `user` (like `kubeadm kubeconfig user`).
    pub fn issue_kubeconfig(&self, user: &str, out: &Path) -> Result<()> {
        let st = Command::new(&self.binary)
            .arg("kubeconfig")
            .arg("--cert-dir")
            .arg(&self.cert_dir)
            .args(["--server", &self.server(), "--user", user])
            .arg("--out")
            .arg(out)
            .status()
            .context("running baton-control kubeconfig")?;
        ensure!(st.success(), "issuing a kubeconfig for {user} failed");
        Ok(())
    }

    /// An admin kube client without retries (a benchmark wants to see every
    /// failure), once the API server answers `/readyz`.
    pub async fn client(&self) -> Result<kube::Client> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(client) = self.try_client().await {
                let req = http::Request::get("/readyz").body(Vec::new())?;
                if client.request_text(req).await.is_ok() {
                    return Ok(client);
                }
            }
            ensure!(
                Instant::now() < deadline,
                "the API server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn try_client(&self) -> Result<kube::Client> {
        self.client_from(&self.kubeconfig).await
    }

    /// A kube client without retries for the kubeconfig at `path`.
    pub async fn client_from(&self, path: &Path) -> Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(path)?;
        let mut cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?;
        cfg.default_retry = false;
        Ok(kube::Client::try_from(cfg)?)
    }
}
