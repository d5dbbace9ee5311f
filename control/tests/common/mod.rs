//! Test harness: a real etcd and the real `baton-control apiserver` on
//! loopback (random free ports, temp dirs), driven by the real `kubectl`
//! and by kube-rs. Processes are killed by PID when the guards drop.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use baton_control::apiserver::etcd_pki::EtcdPki;
use baton_control::storage::EtcdTls;
use baton_e2e::Kubectl;
#[allow(unused_imports, reason = "each test binary uses a different part")]
pub use baton_e2e::kubectl::{stderr, stdout};
use tempfile::TempDir;

/// The lowest port of the kernel's ephemeral range, from which outgoing
/// connections get their local ports.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A free loopback TCP port for a server a test starts (released before
/// returning). It lies below the ephemeral range: a port the kernel hands
/// out (`127.0.0.1:0`) can be taken by any outgoing connection's socket
/// before the server binds it, which then fails with "Address already in
/// use". Ports given out are remembered, so tests running together in one
/// binary never get the same one.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    const FIRST: u16 = 10000;
    let span = u32::from(ephemeral_low().saturating_sub(FIRST).max(1));
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    (0..span)
        // A prime step: the walk visits every port unless the span is a
        // multiple of it.
        .map(|i| {
            FIRST + u16::try_from((seed.wrapping_add(i.wrapping_mul(7919))) % span).unwrap_or(0)
        })
        .find(|port| !given.contains(port) && TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .inspect(|port| {
            given.insert(*port);
        })
        .expect("a free port below the ephemeral range")
}

fn wait_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub fn kill(child: &mut Child) {
    // Only the process we started, by its PID.
    let _ = child.kill();
    let _ = child.wait();
}

/// Creates the PKI in `dir` with `baton-control certs`, as a cluster does
/// before etcd starts.
fn make_pki(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_baton-control"))
        .args(["certs", "--cert-dir", dir.to_str().unwrap()])
        .args(["--etcd-san", "127.0.0.1"])
        .output()
        .expect("baton-control runs");
    assert!(
        out.status.success(),
        "baton-control certs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real etcd 3.4 on loopback, serving clients over mutual TLS (client
/// certificates signed by its own CA).
pub struct Etcd {
    pub dir: TempDir,
    pub client_port: u16,
    pub peer_port: u16,
    child: Option<Child>,
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = tempfile::Builder::new()
            .prefix("baton-etcd-")
            .tempdir()
            .expect("tempdir");
        let mut e = Etcd {
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        e.resume();
        e
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.client_port)
    }

    /// The PKI directory: etcd's CA and certificates, and the API server's
    /// etcd client certificate.
    pub fn pki_dir(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    pub fn pki(&self) -> EtcdPki {
        EtcdPki::paths(&self.pki_dir())
    }

    /// The API server's flags for this etcd.
    pub fn apiserver_flags(&self) -> Vec<String> {
        let pki = self.pki();
        vec![
            format!("--etcd-servers={}", self.url()),
            format!("--etcd-cafile={}", pki.ca.display()),
            format!("--etcd-certfile={}", pki.client_cert.display()),
            format!("--etcd-keyfile={}", pki.client_key.display()),
        ]
    }

    /// The storage layer's TLS settings for this etcd.
    pub fn storage_tls(&self) -> EtcdTls {
        let pki = self.pki();
        EtcdTls::load(&pki.ca, &pki.client_cert, &pki.client_key).expect("etcd PKI")
    }

    /// Starts (again) on the same data dir and ports.
    pub fn resume(&mut self) {
        if !self.pki().ca.exists() {
            make_pki(&self.pki_dir());
        }
        let pki = self.pki();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .args([
                "--client-cert-auth",
                "--trusted-ca-file",
                pki.ca.to_str().unwrap(),
                "--cert-file",
                pki.server_cert.to_str().unwrap(),
                "--key-file",
                pki.server_key.to_str().unwrap(),
                "--name",
                "t",
                "--data-dir",
                self.dir.path().join("data").to_str().unwrap(),
                "--listen-client-urls",
                &self.url(),
                "--advertise-client-urls",
                &self.url(),
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &format!("t={peer}"),
                "--log-level",
                "error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.path().join("etcd.log")).expect("log"),
            ))
            .spawn()
            .expect("etcd is installed");
        self.child = Some(child);
        assert!(
            wait_port(self.client_port, Duration::from_secs(20)),
            "etcd did not start"
        );
    }

    /// Stops etcd (keeps its data).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    /// A direct etcd client with the API server's client certificate, to
    /// check what is stored.
    pub async fn client(&self) -> etcd_client::Client {
        let pki = self.pki();
        let read = |p: &Path| std::fs::read(p).expect("etcd PKI");
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(&pki.ca)))
            .identity(etcd_client::Identity::from_pem(
                read(&pki.client_cert),
                read(&pki.client_key),
            ));
        etcd_client::Client::connect(
            [self.url()],
            Some(etcd_client::ConnectOptions::new().with_tls(tls)),
        )
        .await
        .expect("etcd client")
    }

    /// The raw value stored at `key`.
    pub async fn read(&self, key: &str) -> Option<Vec<u8>> {
        let mut c = self.client().await;
        let r = c.get(key, None).await.expect("etcd get");
        r.kvs().first().map(|kv| kv.value().to_vec())
    }

    /// Every key under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut c = self.client().await;
        let r = c
            .get(
                prefix,
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_keys_only(),
                ),
            )
            .await
            .expect("etcd get");
        r.kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect()
    }

    /// The store's current revision.
    pub async fn revision(&self) -> i64 {
        let mut c = self.client().await;
        let r = c.get("/", None).await.expect("etcd get");
        r.header().map(|h| h.revision()).unwrap_or(0)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The real API server binary.
pub struct ApiServer {
    pub dir: TempDir,
    pub port: u16,
    /// `--etcd-servers` and the etcd TLS flags.
    pub etcd_flags: Vec<String>,
    pub extra: Vec<String>,
    child: Option<Child>,
}

impl ApiServer {
    pub fn start(etcd: &Etcd) -> ApiServer {
        Self::start_with(etcd, &[])
    }

    pub fn start_with(etcd: &Etcd, extra: &[&str]) -> ApiServer {
        let dir = tempfile::Builder::new()
            .prefix("baton-api-")
            .tempdir()
            .expect("tempdir");
        let mut a = ApiServer {
            dir,
            port: free_port(),
            etcd_flags: etcd.apiserver_flags(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        a.resume();
        a
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.conf")
    }

    pub fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Starts (again) with the same ports and certificates, and waits for
    /// /readyz.
    pub fn resume(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("apiserver.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_baton-control"))
            .arg("apiserver")
            .args(&self.etcd_flags)
            .args(["--bind-address", "127.0.0.1"])
            .args(["--secure-port", &self.port.to_string()])
            .args(["--cert-dir", self.cert_dir().to_str().unwrap()])
            .args(["--admin-kubeconfig", self.kubeconfig().to_str().unwrap()])
            // As upstream's integration tests: no controller manager need
            // create `default` ServiceAccounts before pods can be written.
            .arg("--disable-admission-plugins=ServiceAccount")
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("baton-control runs");
        self.child = Some(child);
        assert!(
            wait_port(self.port, Duration::from_secs(20)),
            "API server did not listen"
        );
        self.wait_ready(Duration::from_secs(20));
    }

    pub fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let out = self.kubectl(&["get", "--raw", "/readyz"]);
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("API server not ready: {}", self.log());
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default()
    }

    /// The real kubectl for this server, with its caches in the server's
    /// temp dir.
    pub fn kubectl_runner(&self) -> Kubectl {
        let kubeconfig = self.kubeconfig();
        let home = kubeconfig.parent().unwrap().to_owned();
        Kubectl::new(kubeconfig).with_home(home)
    }

    /// Runs the real kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_runner().run(args, None)
    }

    /// kubectl with input on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.kubectl_runner().run(args, Some(stdin))
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl_runner().run_ok(args, None)
    }

    /// A kube-rs client with the admin credentials.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        let mut cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("config");
        // Errors are asserted as the server sends them: no client retries.
        cfg.default_retry = false;
        kube::Client::try_from(cfg).expect("client")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The repository's examples/ directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// An etcd and an API server.
pub struct Cluster {
    // The API server stops before etcd.
    pub api: ApiServer,
    pub etcd: Etcd,
}

impl Cluster {
    pub fn start() -> Cluster {
        let etcd = Etcd::start();
        let api = ApiServer::start(&etcd);
        Cluster { api, etcd }
    }
}
