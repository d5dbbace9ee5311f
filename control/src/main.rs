//! `baton-control`: the control-plane binary.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use baton_control::apiserver::{self, certs, etcd_pki, kubeconfig};
use baton_control::{controllers, scheduler};

#[derive(Parser)]
#[command(name = "baton-control", version, about = "baton control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The Kubernetes API server on etcd.
    Apiserver(Box<ApiserverArgs>),
    /// Every control-plane component in one process (API server, scheduler,
    /// controller manager), still talking to each other over HTTPS.
    All(Box<AllArgs>),
    /// The scheduler (kube-scheduler's job).
    Scheduler(scheduler::cli::SchedulerArgs),
    /// The controller manager (kube-controller-manager's job).
    Controllers(controllers::cli::ControllersArgs),
    /// Issue a client certificate from the cluster CA and write a kubeconfig
    /// (like `kubeadm kubeconfig user`).
    Kubeconfig(KubeconfigArgs),
    /// Create the PKI ahead of etcd's and the API server's start (like
    /// `kubeadm init phase certs`): the cluster CA, the service-account
    /// key, etcd's CA and serving certificate, and the API server's etcd
    /// client certificate. Existing files are kept.
    Certs(CertsArgs),
    /// Bootstrap tokens for joining nodes (like `kubeadm token`).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token that authenticates a joining node's certificate
    /// request and signs the cluster information it discovers; print it
    /// (or the join command).
    Create(TokenCreateArgs),
}

#[derive(Args, Debug)]
struct TokenCreateArgs {
    /// Kubeconfig of a user who may create Secrets in kube-system.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Lifetime of the token (`24h`, `30m`, `0` never expires).
    #[arg(long, default_value = "24h")]
    ttl: String,
    /// A note on what the token is for.
    #[arg(long)]
    description: Option<String>,
    /// Extra groups of the token's user (each `system:bootstrappers:…`).
    #[arg(long, value_delimiter = ',', default_value = baton_control::client::bootstrap_token::DEFAULT_GROUP)]
    groups: Vec<String>,
    /// Print the whole `baton-node join` command, not only the token.
    #[arg(long)]
    print_join_command: bool,
}

/// Flags named like kube-apiserver's.
#[derive(Args, Debug)]
struct ApiserverArgs {
    /// etcd endpoints, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd_servers: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// HTTPS port.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Address advertised to clients and pods (kubernetes Service endpoint).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Directory of the cluster CA and serving certificate (created on first start).
    #[arg(long, default_value = "/var/lib/baton/pki")]
    cert_dir: PathBuf,
    /// Where to write the admin kubeconfig (CN=kubernetes-admin, O=system:masters).
    #[arg(long)]
    admin_kubeconfig: Option<PathBuf>,
    /// CIDR of Service ClusterIPs.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// Range of NodePorts.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Deadline of every etcd request, in seconds.
    #[arg(long, default_value_t = 5)]
    etcd_request_timeout: u64,
    /// Interval of etcd compaction, in seconds (0 disables it).
    #[arg(long, default_value_t = 300)]
    etcd_compaction_interval: u64,
    /// Node address types tried, in order, to reach a kubelet.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "InternalIP,ExternalIP,Hostname"
    )]
    kubelet_preferred_address_types: Vec<String>,
    /// Admission plugins to turn off, comma separated (`ServiceAccount`:
    /// for an API server that runs without the controller manager, which
    /// creates the `default` ServiceAccounts).
    #[arg(long, value_delimiter = ',')]
    disable_admission_plugins: Vec<String>,
    /// Serve requests without credentials as `system:anonymous` in
    /// `system:unauthenticated` (the authorizers decide what they may do).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// Authorizers asked in order, comma separated: `Node`, `RBAC`,
    /// `AlwaysAllow`, `AlwaysDeny`.
    #[arg(long, value_delimiter = ',', default_value = "Node,RBAC")]
    authorization_mode: Vec<apiserver::auth::authorizer::Mode>,
    /// EncryptionConfiguration file: the resources encrypted at rest in
    /// etcd and their providers and keys.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// CA that signed etcd's serving certificate.
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// Client certificate presented to etcd.
    #[arg(long)]
    etcd_certfile: Option<PathBuf>,
    /// Key of the client certificate presented to etcd.
    #[arg(long)]
    etcd_keyfile: Option<PathBuf>,
    /// The audit policy (`audit.k8s.io/v1` `Policy`); with
    /// `--audit-log-path`, requests are audited as it says.
    #[arg(long)]
    audit_policy_file: Option<PathBuf>,
    /// The audit log: JSON lines of `audit.k8s.io/v1` events; `-` is
    /// standard output.
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// Megabytes the audit log reaches before it is rotated (0: 100).
    #[arg(long, default_value_t = 0)]
    audit_log_maxsize: u64,
    /// Rotated audit logs kept (0: all).
    #[arg(long, default_value_t = 0)]
    audit_log_maxbackup: usize,
    /// Days a rotated audit log is kept (0: forever).
    #[arg(long, default_value_t = 0)]
    audit_log_maxage: u64,
    /// Overrides the URI for the JSON Web Key Set in the discovery document
    /// served at /.well-known/openid-configuration, for relying parties
    /// that fetch the keys from elsewhere than the API server's external
    /// address. Must be https.
    #[arg(long)]
    service_account_jwks_uri: Option<String>,
}

/// `all`: the API server's flags plus the scheduler's and the controller
/// manager's; each component gets its own client certificate.
#[derive(Args, Debug)]
struct AllArgs {
    #[command(flatten)]
    api: ApiserverArgs,
    #[command(flatten)]
    scheduler: scheduler::cli::SchedulerFlags,
    #[command(flatten)]
    controllers: controllers::cli::ManagerFlags,
    /// Leader election for the scheduler and the controller manager.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    leader_elect: bool,
}

#[derive(Args, Debug)]
struct KubeconfigArgs {
    /// Directory holding ca.crt and ca.key.
    #[arg(long)]
    cert_dir: PathBuf,
    /// API server URL written into the kubeconfig.
    #[arg(long)]
    server: String,
    /// User name (certificate CN).
    #[arg(long)]
    user: String,
    /// Groups (certificate O), repeatable.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Output path.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct CertsArgs {
    /// Directory of the PKI (the API server's --cert-dir).
    #[arg(long)]
    cert_dir: PathBuf,
    /// Extra SAN of etcd's serving certificate (an address or DNS name),
    /// repeatable; localhost, 127.0.0.1, ::1 and the host name are always
    /// there.
    #[arg(long = "etcd-san")]
    etcd_sans: Vec<String>,
}

impl ApiserverArgs {
    fn config(self) -> apiserver::Config {
        apiserver::Config {
            etcd_servers: self.etcd_servers,
            bind_address: self.bind_address,
            secure_port: self.secure_port,
            advertise_address: self.advertise_address,
            cert_dir: self.cert_dir,
            admin_kubeconfig: self.admin_kubeconfig,
            service_cluster_ip_range: self.service_cluster_ip_range,
            service_node_port_range: self.service_node_port_range,
            etcd_request_timeout: Duration::from_secs(self.etcd_request_timeout.max(1)),
            etcd_compaction_interval: Duration::from_secs(self.etcd_compaction_interval),
            kubelet_preferred_address_types: self.kubelet_preferred_address_types,
            disabled_admission_plugins: self.disable_admission_plugins,
            authorization_modes: self.authorization_mode,
            anonymous_auth: self.anonymous_auth,
            encryption_provider_config: self.encryption_provider_config,
            etcd_cafile: self.etcd_cafile,
            etcd_certfile: self.etcd_certfile,
            etcd_keyfile: self.etcd_keyfile,
            audit_policy_file: self.audit_policy_file,
            audit_log: self
                .audit_log_path
                .map(|path| apiserver::audit::log::LogConfig {
                    path,
                    max_size_mb: self.audit_log_maxsize,
                    max_backups: self.audit_log_maxbackup,
                    max_age_days: self.audit_log_maxage,
                }),
            service_account_jwks_uri: self.service_account_jwks_uri,
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

async fn run_apiserver(args: ApiserverArgs) -> anyhow::Result<()> {
    let running = apiserver::start(args.config())
        .await
        .context("starting the API server")?;
    tokio::select! {
        _ = running.wait() => {}
        _ = shutdown_signal() => {}
    }
    Ok(())
}

/// Runs a scheduler or controller manager until it ends or a signal. When
/// it loses its leader lease (`lost`), it stops acting at once and
/// campaigns again: the process executes itself anew with the same
/// arguments and PID, so nothing of the old leader's state or tasks
/// survives, as an exit and a supervisor's restart would give.
async fn run_component<E: std::error::Error + Send + Sync + 'static>(
    f: impl std::future::Future<Output = Result<(), E>>,
    lost: fn(&E) -> bool,
) -> anyhow::Result<()> {
    tokio::select! {
        r = f => match r {
            Err(e) if lost(&e) => campaign_again(&e),
            r => r.map_err(anyhow::Error::from),
        },
        _ = shutdown_signal() => Ok(()),
    }
}

fn campaign_again(lost: &dyn std::error::Error) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    tracing::error!(error = %lost, "stopped acting; starting again to campaign for the lease");
    let exe = std::env::current_exe().context("finding this executable")?;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(err).context("executing again to campaign for the lease")
}

/// A kubeconfig for one component, signed by the cluster CA.
fn component_kubeconfig(
    cert_dir: &std::path::Path,
    server: &str,
    user: &str,
    file: &str,
) -> anyhow::Result<PathBuf> {
    let ca = certs::Ca::load_or_create(cert_dir).context("loading the cluster CA")?;
    let pair = ca
        .issue_client(user, &[])
        .context("issuing a client certificate")?;
    let path = cert_dir.join(file);
    kubeconfig::write(
        &path,
        &kubeconfig::render(server, &ca.cert_pem, user, &pair)?,
    )?;
    Ok(path)
}

async fn run_all(a: AllArgs) -> anyhow::Result<()> {
    let cert_dir = a.api.cert_dir.clone();
    let running = apiserver::start(a.api.config())
        .await
        .context("starting the API server")?;
    let host = if running.addr.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        running.addr.ip()
    };
    let server = format!(
        "https://{}",
        std::net::SocketAddr::new(host, running.addr.port())
    );
    let sched_kc = component_kubeconfig(
        &cert_dir,
        &server,
        "system:kube-scheduler",
        "scheduler.conf",
    )?;
    let ctrl_kc = component_kubeconfig(
        &cert_dir,
        &server,
        "system:kube-controller-manager",
        "controller-manager.conf",
    )?;
    let sched = scheduler::run(a.scheduler.config(sched_kc, a.leader_elect));
    let mut ctrl_config = a.controllers.config(ctrl_kc, a.leader_elect);
    // The controller manager beside the API server signs with its CA.
    ctrl_config
        .cluster_signing_cert_file
        .get_or_insert_with(|| cert_dir.join("ca.crt"));
    ctrl_config
        .cluster_signing_key_file
        .get_or_insert_with(|| cert_dir.join("ca.key"));
    let ctrl = controllers::run(ctrl_config);
    tokio::select! {
        _ = running.wait() => Ok(()),
        r = sched => r.context("scheduler"),
        r = ctrl => r.context("controller manager"),
        _ = shutdown_signal() => Ok(()),
    }
}

fn kubeconfig_cmd(a: KubeconfigArgs) -> anyhow::Result<()> {
    let ca = certs::Ca::load_or_create(&a.cert_dir).context("loading the cluster CA")?;
    let pair = ca
        .issue_client(&a.user, &a.groups)
        .context("issuing the client certificate")?;
    let text = kubeconfig::render(&a.server, &ca.cert_pem, &a.user, &pair)?;
    kubeconfig::write(&a.out, &text)?;
    Ok(())
}

fn certs_cmd(a: CertsArgs) -> anyhow::Result<()> {
    certs::Ca::load_or_create(&a.cert_dir).context("creating the cluster CA")?;
    certs::service_account_key(&a.cert_dir).context("creating sa.key")?;
    etcd_pki::ensure(&a.cert_dir, &a.etcd_sans).context("creating etcd's PKI")?;
    Ok(())
}

async fn token_create(a: TokenCreateArgs) -> anyhow::Result<()> {
    let ttl = parse_ttl(&a.ttl).with_context(|| format!("--ttl {:?}", a.ttl))?;
    let request = baton_control::client::bootstrap_token::Request {
        ttl,
        description: a.description,
        extra_groups: a.groups.into_iter().filter(|g| !g.is_empty()).collect(),
    };
    let created = baton_control::client::bootstrap_token::create(&a.kubeconfig, &request).await?;
    if a.print_join_command {
        println!("{}", created.join_command());
    } else {
        println!("{}", created.token);
    }
    Ok(())
}

/// A token's lifetime as kubeadm's `--ttl` takes it (`24h`, `1h30m`);
/// zero never expires.
fn parse_ttl(text: &str) -> anyhow::Result<Option<Duration>> {
    if text == "0" {
        return Ok(None);
    }
    let ttl: jiff::SignedDuration = text.parse()?;
    let ttl = Duration::try_from(ttl).context("a negative lifetime")?;
    Ok((!ttl.is_zero()).then_some(ttl))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Kubeconfig(a) => kubeconfig_cmd(a),
        Command::Certs(a) => certs_cmd(a),
        Command::Token(TokenCommand::Create(a)) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(token_create(a)),
        Command::Apiserver(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_apiserver(*a)),
        Command::All(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_all(*a)),
        Command::Scheduler(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_component(scheduler::run(a.config()), |e| {
                matches!(e, scheduler::SchedulerError::Leader(_))
            })),
        Command::Controllers(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_component(controllers::run(a.config()), |e| {
                matches!(e, controllers::ManagerError::Leader(_))
            })),
    }
}
