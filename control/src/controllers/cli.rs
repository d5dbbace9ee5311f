//! Flags of `baton-control controllers`, named like
//! kube-controller-manager's.

use std::path::PathBuf;
use std::time::Duration;

use super::Config;

/// Controller flags (also accepted by `baton-control all`).
#[derive(clap::Args, Debug, Clone)]
pub struct ManagerFlags {
    /// Controllers to run: `*` for all, a name to enable, `-name` to
    /// disable (deployment, replicaset, job, cronjob, ttl-after-finished,
    /// disruption, endpointslice, endpoints, nodelifecycle, nodeipam, garbagecollector,
    /// namespace, serviceaccount, root-ca-cert-publisher,
    /// clusterrole-aggregation, csrapproving, csrsigning, tokencleaner).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Pod address range the node IPAM cuts node ranges from.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// Prefix length of each node's podCIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Give nodes a podCIDR.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub allocate_node_cidrs: bool,
    /// How long a node may go without a heartbeat before it is Unknown.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// How often nodes are checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// Objects of one kind synced at once.
    #[arg(long, default_value_t = 5)]
    pub concurrent_syncs: u16,
    /// CA bundle published to every namespace as the `kube-root-ca.crt`
    /// ConfigMap (default: the CA the kubeconfig trusts for the API server).
    #[arg(long)]
    pub root_ca_file: Option<PathBuf>,
    /// The CA certificate the CSR signer issues from (PEM).
    #[arg(long)]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// The CA's private key (PEM).
    #[arg(long)]
    pub cluster_signing_key_file: Option<PathBuf>,
    /// The longest validity of an issued certificate.
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    pub cluster_signing_duration: Duration,
    /// Terminated pods kept before the pod garbage collector deletes the
    /// oldest (0: all kept).
    #[arg(long, default_value_t = 12500)]
    pub terminated_pod_gc_threshold: usize,
}

/// `baton-control controllers`.
#[derive(clap::Args, Debug, Clone)]
pub struct ControllersArgs {
    /// kubeconfig with the controller manager's credentials and the server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Elect a leader through the kube-system/kube-controller-manager Lease.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    #[command(flatten)]
    pub flags: ManagerFlags,
}

/// Go-style durations: `40s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

impl ManagerFlags {
    pub fn config(&self, kubeconfig: PathBuf, leader_elect: bool) -> Config {
        Config {
            kubeconfig,
            leader_elect,
            controllers: self.controllers.clone(),
            cluster_cidr: self.cluster_cidr.clone(),
            node_cidr_mask_size: self.node_cidr_mask_size,
            allocate_node_cidrs: self.allocate_node_cidrs,
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_monitor_period: self.node_monitor_period,
            concurrent_syncs: self.concurrent_syncs,
            root_ca_file: self.root_ca_file.clone(),
            cluster_signing_cert_file: self.cluster_signing_cert_file.clone(),
            cluster_signing_key_file: self.cluster_signing_key_file.clone(),
            cluster_signing_duration: self.cluster_signing_duration,
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
            ..Config::default()
        }
    }
}

impl ControllersArgs {
    pub fn config(&self) -> Config {
        self.flags
            .config(self.kubeconfig.clone(), self.leader_elect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("40s").unwrap(), Duration::from_secs(40));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn bool_flags_take_go_forms() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ControllersArgs,
        }
        let parse = |extra: &[&str]| {
            let mut argv = vec!["controllers", "--kubeconfig", "k"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).unwrap().args
        };
        // kube-controller-manager's `--allocate-node-cidrs` is a bare flag.
        assert!(parse(&["--allocate-node-cidrs"]).flags.allocate_node_cidrs);
        assert!(
            !parse(&["--allocate-node-cidrs=false"])
                .flags
                .allocate_node_cidrs
        );
        assert!(parse(&[]).leader_elect);
        assert!(!parse(&["--leader-elect=false"]).leader_elect);
    }
}
