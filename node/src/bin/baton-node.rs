//! `baton-node`: the per-node agent. `baton-node run` starts the kubelet
//! (CRI to the node's containerd) after installing the CNI plugin and,
//! once the node's podCIDR is known, writing the CNI configuration; with
//! `--pin-dir` it also loads the eBPF dataplane and runs the service proxy
//! beside it. `baton-node proxy` runs the proxy alone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use baton_node::agent;
use baton_node::cni::{self, Plugin, link::Netlink, types::NetConf};
use baton_node::cri::Cri;
use baton_node::kubelet::{self, KubeletError};
use baton_node::proxy::{self, cli::ProxyArgs};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "baton-node", version, about = "baton node agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size difference between variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the node agent: kubelet (and the dataplane parts).
    Run(RunArgs),
    /// Run only the eBPF service proxy (and the pod endpoints of baton-cni's
    /// records, with --cni-data-dir): for nodes whose kubelet is another.
    Proxy(ProxyOnlyArgs),
    /// Find the cluster from a bootstrap token and the CA's public key hash
    /// (as `kubeadm join` does) and write the bootstrap kubeconfig that
    /// `run --bootstrap-kubeconfig` requests the node's certificate with.
    Join(JoinArgs),
    /// Inspect the node's eBPF dataplane.
    #[command(subcommand)]
    Dataplane(DataplaneCommand),
}

#[derive(Subcommand)]
enum DataplaneCommand {
    /// Print services, backends, conntrack, pod endpoints and counters as
    /// the kernel's maps hold them (read from the node's pinned maps; no
    /// program is loaded).
    Dump {
        /// The node's bpffs pin directory.
        #[arg(long, default_value = "/sys/fs/bpf/baton")]
        pin_dir: PathBuf,
        /// The proxy's state directory, for the services' names.
        #[arg(long, default_value = "/var/lib/baton/node/proxy")]
        proxy_state_dir: PathBuf,
    },
}

/// Flags of `baton-node join`.
#[derive(Args, Debug, Clone)]
struct JoinArgs {
    /// The API server (`https://host:port`) to discover the cluster from.
    #[arg(long)]
    server: String,
    /// A bootstrap token (`<id>.<secret>`, from `baton-control token create`).
    #[arg(long)]
    token: String,
    /// The cluster CA's public key hash (`sha256:<hex>`); repeatable.
    #[arg(long = "discovery-token-ca-cert-hash", required = true)]
    ca_cert_hashes: Vec<String>,
    /// Where the bootstrap kubeconfig is written.
    #[arg(long, default_value = "/var/lib/baton/node/bootstrap-kubeconfig")]
    bootstrap_kubeconfig: PathBuf,
}

/// Flags of `baton-node proxy`.
#[derive(Args, Debug, Clone)]
struct ProxyOnlyArgs {
    /// The Kubernetes Node name (endpoints with this nodeName are local).
    #[arg(long)]
    node_name: String,
    /// The node's InternalIP: SNAT address of forwarded NodePort traffic.
    #[arg(long)]
    node_ip: std::net::Ipv4Addr,
    /// Kubeconfig with the node's credentials.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// baton-cni's data directory: register the pods of its endpoint
    /// records in the dataplane (what `run` does for its own pods).
    #[arg(long)]
    cni_data_dir: Option<PathBuf>,
    #[command(flatten)]
    proxy: ProxyArgs,
}

/// Flags of `baton-node run`.
#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// The Kubernetes Node name.
    #[arg(long)]
    node_name: String,
    /// The node's InternalIP (its address on the cluster network).
    #[arg(long)]
    node_ip: String,
    /// Kubeconfig with the node's credentials (user system:node:<name>);
    /// written by the TLS bootstrap when it holds no valid certificate.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Kubeconfig with a bootstrap token (`baton-node join` writes it): a
    /// client certificate is requested with it when `--kubeconfig` has
    /// none, and rotated before it expires.
    #[arg(long)]
    bootstrap_kubeconfig: Option<PathBuf>,
    /// containerd's CRI socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_socket: PathBuf,
    /// Root of the node's state: pod volumes, container logs, IPAM.
    #[arg(long, default_value = "/var/lib/baton/node")]
    root_dir: PathBuf,
    /// Where containerd looks for CNI plugins; `baton-cni` is installed here.
    #[arg(long, default_value = "/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// Where containerd reads the CNI configuration; `10-baton.conflist` is written here.
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// The `baton-cni` binary to install (default: next to this binary).
    #[arg(long)]
    cni_plugin: Option<PathBuf>,
    /// podCIDR to register the Node with if it has none (otherwise the
    /// controller's allocation in the Node's spec.podCIDR is used).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// cgroupfs parent of all pods (`<root>/kubepods/...`).
    #[arg(long, default_value = "/baton")]
    cgroup_root: String,
    /// Cluster DNS server for ClusterFirst pods (repeatable).
    #[arg(long)]
    cluster_dns: Vec<String>,
    /// Cluster domain for DNS search paths.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Port of the HTTPS kubelet server: logs, exec, metrics (the Node's kubelet endpoint).
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// Cluster CA certificate: verifies the kubelet server's clients
    /// (default: the CA `--kubeconfig` trusts, kept in
    /// `<root-dir>/pki/ca.crt`).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Cluster CA key (with --ca-cert).
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// MTU of pod interfaces.
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    #[command(flatten)]
    proxy: ProxyArgs,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_runtime=warn,kube_client=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run(args)),
        Command::Proxy(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_proxy(args)),
        Command::Join(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(join(args)),
        Command::Dataplane(DataplaneCommand::Dump {
            pin_dir,
            proxy_state_dir,
        }) => {
            let mut dump = baton_node::dataplane::observe::dump::from_pins(&pin_dir)
                .with_context(|| format!("reading the maps pinned in {}", pin_dir.display()))?;
            let names = proxy::sync_loop::read_names(&proxy_state_dir);
            for service in &mut dump.services {
                service.name = names.get(&service.value.service_id).cloned();
            }
            print!("{dump}");
            Ok(())
        }
    }
}

async fn kube_client(path: &Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).context("reading the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .context("loading the kubeconfig")?;
    kube::Client::try_from(config).context("building the API client")
}

async fn join(args: JoinArgs) -> Result<()> {
    use baton_node::credentials::{discovery, files, kubeconfig};
    let found = discovery::discover(&args.server, &args.token, &args.ca_cert_hashes).await?;
    let text = kubeconfig::render(
        &found.server,
        &found.ca_pem,
        &kubeconfig::Credential::Token(&args.token),
    );
    files::write_atomic(&args.bootstrap_kubeconfig, &text, 0o600)?;
    println!(
        "cluster {} found; bootstrap kubeconfig written to {}",
        found.server,
        args.bootstrap_kubeconfig.display()
    );
    Ok(())
}

/// The kubelet's API client: its certificate bootstrapped if needed, and
/// rotated in the background when the node keeps it.
async fn node_client(args: &RunArgs) -> Result<kube::Client> {
    use baton_node::credentials::client_cert::{self, Paths};
    let paths = Paths {
        node_name: args.node_name.clone(),
        kubeconfig: args.kubeconfig.clone(),
        bootstrap_kubeconfig: args.bootstrap_kubeconfig.clone(),
        pem: Paths::pem_in(&args.root_dir),
    };
    client_cert::ensure(&paths)
        .await
        .context("the node's client certificate")?;
    match client_cert::kept_identity(&paths) {
        Some((identity, pem)) => {
            let client = client_cert::client(&args.kubeconfig, identity.clone()).await?;
            tokio::spawn(client_cert::rotate(client.clone(), paths, identity, pem));
            Ok(client)
        }
        None => kube_client(&args.kubeconfig).await,
    }
}

/// The CA `--kubeconfig` trusts, written to `<root-dir>/pki/ca.crt`.
async fn kubeconfig_ca(args: &RunArgs) -> Result<PathBuf> {
    use baton_node::credentials::{files, kubeconfig};
    let (_, ca_pem) = kubeconfig::server_and_ca(&args.kubeconfig).await?;
    anyhow::ensure!(
        !ca_pem.is_empty(),
        "{} names no CA certificate; give --ca-cert",
        args.kubeconfig.display()
    );
    let path = args.root_dir.join("pki").join("ca.crt");
    files::write_atomic(&path, &ca_pem, 0o644)?;
    Ok(path)
}

/// Loads the dataplane from `--pin-dir` and returns the proxy to run, after
/// starting pod networking on it (the pod endpoints of `cni_data_dir`'s
/// records, the routes to the other nodes).
fn start_dataplane(
    args: &ProxyArgs,
    pin_dir: &Path,
    client: kube::Client,
    config: proxy::Config,
    cni_data_dir: Option<PathBuf>,
) -> Result<impl std::future::Future<Output = Result<(), proxy::ProxyError>> + use<>> {
    let dataplane = args
        .load_dataplane(pin_dir)
        .with_context(|| format!("loading the eBPF dataplane (pins in {})", pin_dir.display()))?;
    Ok(agent::start(dataplane, client, config, cni_data_dir)?)
}

async fn run_proxy(args: ProxyOnlyArgs) -> Result<()> {
    let pin_dir = args
        .proxy
        .pin_dir
        .clone()
        .context("baton-node proxy needs --pin-dir")?;
    let client = kube_client(&args.kubeconfig).await?;
    let config = args.proxy.config(
        &args.node_name,
        args.node_ip,
        None,
        PathBuf::from("/var/lib/baton/node/proxy"),
    )?;
    let proxy = start_dataplane(
        &args.proxy,
        &pin_dir,
        client,
        config,
        args.cni_data_dir.clone(),
    )?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = proxy => result.context("proxy")?,
        _ = term.recv() => tracing::info!("SIGTERM: exiting; the pinned dataplane keeps serving"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: exiting; the pinned dataplane keeps serving"),
    }
    Ok(())
}

async fn connect_cri(socket: &Path) -> Result<Cri> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match Cri::connect(socket).await {
            Ok(cri) if cri.version().await.is_ok() => return Ok(cri),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(cri) => {
                cri.version().await.context("CRI Version")?;
                return Ok(cri);
            }
            Err(err) => return Err(err).context("connecting to containerd"),
        }
    }
}

/// Links the plugin into the CNI bin dir under its own type and as
/// `loopback`, which containerd runs for every sandbox's `lo` (atomically:
/// a new link renamed over the old one).
fn install_plugin(args: &RunArgs) -> Result<()> {
    let plugin = match &args.cni_plugin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the binary has no directory")?
            .join(cni::types::PLUGIN_TYPE),
    };
    anyhow::ensure!(
        plugin.exists(),
        "the CNI plugin {} does not exist",
        plugin.display()
    );
    std::fs::create_dir_all(&args.cni_bin_dir)?;
    for name in [cni::types::PLUGIN_TYPE, cni::loopback::PLUGIN_TYPE] {
        let target = args.cni_bin_dir.join(name);
        let tmp = args.cni_bin_dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&plugin, &tmp)?;
        std::fs::rename(&tmp, &target)?;
    }
    Ok(())
}

fn net_conf(args: &RunArgs, cidr: &str) -> Result<NetConf, KubeletError> {
    Ok(NetConf {
        cni_version: cni::types::CNI_VERSION.into(),
        name: cni::types::NETWORK_NAME.into(),
        plugin_type: cni::types::PLUGIN_TYPE.into(),
        pod_cidr: cidr.parse().map_err(|_| KubeletError::PodCidr {
            cidr: cidr.to_owned(),
        })?,
        data_dir: args.root_dir.join("cni"),
        mtu: args.mtu,
        endpoint_socket: None,
        prev_result: None,
    })
}

/// Writes the conflist and reclaims addresses and veths of sandboxes the
/// runtime no longer has.
fn configure_network(
    args: &RunArgs,
    cidr: &str,
    live: &HashSet<String>,
) -> Result<(), KubeletError> {
    let conf = net_conf(args, cidr)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KubeletError::Io {
            action: "writing",
            path,
            source,
        }
    };
    let released = Plugin::new(Netlink)
        .reclaim(&conf, live)
        .map_err(|e| KubeletError::Io {
            action: "reclaiming addresses in",
            path: conf.data_dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    if !released.is_empty() {
        tracing::info!(?released, "reclaimed addresses of sandboxes that are gone");
    }
    std::fs::create_dir_all(&args.cni_conf_dir).map_err(io(&args.cni_conf_dir))?;
    let path = args.cni_conf_dir.join("10-baton.conflist");
    let tmp = args.cni_conf_dir.join(".10-baton.conflist.tmp");
    let text = serde_json::to_string_pretty(&cni::types::conflist(&conf)).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    tracing::info!(%cidr, path = %path.display(), "CNI configuration written");
    Ok(())
}

async fn run(args: RunArgs) -> Result<()> {
    std::fs::create_dir_all(&args.root_dir)
        .with_context(|| format!("creating {}", args.root_dir.display()))?;
    install_plugin(&args).context("installing the CNI plugin")?;
    let cri = connect_cri(&args.containerd_socket).await?;
    let live: HashSet<String> = cri
        .list_pod_sandboxes(None)
        .await
        .context("listing sandboxes")?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let client = node_client(&args).await?;
    let ca_cert = match &args.ca_cert {
        Some(path) => path.clone(),
        None => kubeconfig_ca(&args).await?,
    };
    let proxy = match &args.proxy.pin_dir {
        Some(pin_dir) => {
            let node_ip = args
                .node_ip
                .parse()
                .with_context(|| format!("--node-ip {:?} is not an IPv4 address", args.node_ip))?;
            let pods_cgroup =
                proxy::node_setup::cgroup2_mount().join(args.cgroup_root.trim_start_matches('/'));
            let config = args.proxy.config(
                &args.node_name,
                node_ip,
                Some(pods_cgroup),
                args.root_dir.join("proxy"),
            )?;
            Some(start_dataplane(
                &args.proxy,
                pin_dir,
                client.clone(),
                config,
                Some(args.root_dir.join("cni")),
            )?)
        }
        None => {
            tracing::warn!("no --pin-dir: running without the eBPF dataplane and service proxy");
            None
        }
    };
    let proxy = async move {
        match proxy {
            Some(proxy) => proxy.await,
            None => std::future::pending().await,
        }
    };
    let kubelet_config = kubelet::Config {
        node_name: args.node_name.clone(),
        node_ip: args.node_ip.clone(),
        pod_cidr: args.pod_cidr.clone(),
        root_dir: args.root_dir.clone(),
        cgroup_root: args.cgroup_root.clone(),
        cluster_dns: args.cluster_dns.clone(),
        cluster_domain: args.cluster_domain.clone(),
        port: args.port,
        ca_cert: Some(ca_cert),
        ca_key: args.ca_key.clone(),
    };
    let net_args = args.clone();
    let kubelet = kubelet::run(kubelet_config, client, cri, move |cidr| {
        configure_network(&net_args, cidr, &live)
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = kubelet => result.context("kubelet")?,
        result = proxy => result.context("proxy")?,
        _ = term.recv() => tracing::info!("SIGTERM: exiting; pods keep running"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: exiting; pods keep running"),
    }
    Ok(())
}
