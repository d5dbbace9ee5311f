//! Flags of `baton-control scheduler`, named like kube-scheduler's.

use std::path::PathBuf;
use std::time::Duration;

use super::Config;
use super::queue::Backoff;

/// Scheduling flags (also accepted by `baton-control all`).
#[derive(clap::Args, Debug, Clone)]
pub struct SchedulerFlags {
    /// Pods with this spec.schedulerName are scheduled here.
    #[arg(long, default_value = "default-scheduler")]
    pub scheduler_name: String,
    /// Share of nodes to find feasible before scoring (0 = adaptive, as
    /// kube-scheduler's percentageOfNodesToScore).
    #[arg(long, default_value_t = 0)]
    pub percentage_of_nodes_to_score: u32,
    /// Bindings written concurrently.
    #[arg(long, default_value_t = 16)]
    pub parallelism: usize,
    /// Initial backoff of a pod that failed to schedule, seconds.
    #[arg(long, default_value_t = 1)]
    pub pod_initial_backoff_seconds: u64,
    /// Maximum backoff, seconds.
    #[arg(long, default_value_t = 10)]
    pub pod_max_backoff_seconds: u64,
}

/// `baton-control scheduler`.
#[derive(clap::Args, Debug, Clone)]
pub struct SchedulerArgs {
    /// kubeconfig with the scheduler's credentials and the server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Elect a leader through the kube-system/kube-scheduler Lease.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    #[command(flatten)]
    pub flags: SchedulerFlags,
}

impl SchedulerFlags {
    /// The configuration for a kubeconfig.
    pub fn config(&self, kubeconfig: PathBuf, leader_elect: bool) -> Config {
        Config {
            kubeconfig,
            scheduler_name: self.scheduler_name.clone(),
            leader_elect,
            percentage_of_nodes_to_score: (self.percentage_of_nodes_to_score > 0)
                .then_some(self.percentage_of_nodes_to_score),
            parallelism: self.parallelism,
            backoff: Backoff {
                initial: Duration::from_secs(self.pod_initial_backoff_seconds),
                max: Duration::from_secs(
                    self.pod_max_backoff_seconds
                        .max(self.pod_initial_backoff_seconds),
                ),
            },
            ..Config::default()
        }
    }
}

impl SchedulerArgs {
    pub fn config(&self) -> Config {
        self.flags
            .config(self.kubeconfig.clone(), self.leader_elect)
    }
}
