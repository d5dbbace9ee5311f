//! What the nodes did during a burst, step by step: how many CRI calls of
//! each kind and volume set-ups there were, and how long one took on
//! average. Read from the kubelets' metrics
//! (`kubelet_runtime_operations_duration_seconds`,
//! `storage_operation_duration_seconds`) before and after the burst; for
//! the runtime alone, from the benchmark's own CRI clients, which keep the
//! same metrics. So a step that takes longer under baton than alone, or a
//! call baton makes that the runtime alone does not, shows.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

const RUNTIME: &str = "kubelet_runtime_operations_duration_seconds";
const STORAGE: &str = "storage_operation_duration_seconds";

/// Each step's summed seconds and count, by step name: a CRI call's
/// operation type, or `volume_mount <plugin>`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Steps(BTreeMap<String, (f64, f64)>);

impl Steps {
    /// The steps in Prometheus text `text` (several scrapes add up).
    pub fn add_scrape(&mut self, text: &str) {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let (metric, field) = match name.rsplit_once('_') {
                Some((metric, "sum")) => (metric, 0),
                Some((metric, "count")) => (metric, 1),
                _ => continue,
            };
            let step = match metric {
                RUNTIME => label(labels, "operation_type").map(str::to_owned),
                STORAGE => label(labels, "volume_plugin").map(|p| format!("volume_mount {p}")),
                _ => None,
            };
            if let Some(step) = step {
                let entry = self.0.entry(step).or_default();
                if field == 0 {
                    entry.0 += value;
                } else {
                    entry.1 += value;
                }
            }
        }
    }

    /// What happened between `self` and the later `after`, as the report
    /// has it: `{step: {calls, mean_seconds}}` for each step that ran.
    pub fn until(&self, after: &Self) -> serde_json::Value {
        let mut steps = serde_json::Map::new();
        for (step, (sum, count)) in &after.0 {
            let (sum_before, count_before) = self.0.get(step).copied().unwrap_or_default();
            let calls = count - count_before;
            if calls > 0.0 {
                steps.insert(
                    step.clone(),
                    serde_json::json!({
                        "calls": calls,
                        "mean_seconds": (sum - sum_before) / calls,
                    }),
                );
            }
        }
        serde_json::Value::Object(steps)
    }
}

/// The value of label `key` in `labels` (`a="x",b="y"`, unescaped values).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels
        .trim_end_matches('}')
        .split("\",")
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix("=\""))
        .map(|value| value.trim_end_matches('"'))
}

/// Every node's kubelet metrics, scraped through the API server.
pub async fn scrape_nodes(client: &kube::Client) -> Steps {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut steps = Steps::default();
    for node in nodes
        .list(&ListParams::default())
        .await
        .expect("listing the nodes")
    {
        let name = node.metadata.name.unwrap_or_default();
        let request = http::Request::get(format!("/api/v1/nodes/{name}/proxy/metrics"))
            .body(Vec::new())
            .expect("a metrics request");
        let text = client
            .request_text(request)
            .await
            .unwrap_or_else(|err| panic!("scraping {name}'s kubelet metrics: {err}"));
        steps.add_scrape(&text);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_the_calls_and_mounts_made_between_two_scrapes() {
        let before = "\
# HELP kubelet_runtime_operations_duration_seconds Duration.
kubelet_runtime_operations_duration_seconds_sum{operation_type=\"run_podsandbox\"} 1.0
kubelet_runtime_operations_duration_seconds_count{operation_type=\"run_podsandbox\"} 2
kubelet_runtime_operations_duration_seconds_bucket{le=\"0.005\",operation_type=\"run_podsandbox\"} 0
kubelet_runtime_operations_duration_seconds_sum{operation_type=\"version\"} 0.5
kubelet_runtime_operations_duration_seconds_count{operation_type=\"version\"} 5
";
        let after = "\
kubelet_runtime_operations_duration_seconds_sum{operation_type=\"run_podsandbox\"} 4.0
kubelet_runtime_operations_duration_seconds_count{operation_type=\"run_podsandbox\"} 4
kubelet_runtime_operations_duration_seconds_sum{operation_type=\"version\"} 0.5
kubelet_runtime_operations_duration_seconds_count{operation_type=\"version\"} 5
kubelet_runtime_operations_total{operation_type=\"run_podsandbox\"} 4
storage_operation_duration_seconds_sum{volume_plugin=\"kubernetes.io/projected\",operation_name=\"volume_mount\",status=\"success\",migrated=\"false\"} 0.5
storage_operation_duration_seconds_count{volume_plugin=\"kubernetes.io/projected\",operation_name=\"volume_mount\",status=\"success\",migrated=\"false\"} 2
storage_operation_duration_seconds_sum{volume_plugin=\"kubernetes.io/projected\",operation_name=\"volume_mount\",status=\"fail-unknown\",migrated=\"false\"} 0.1
storage_operation_duration_seconds_count{volume_plugin=\"kubernetes.io/projected\",operation_name=\"volume_mount\",status=\"fail-unknown\",migrated=\"false\"} 2
";
        let (mut a, mut b) = (Steps::default(), Steps::default());
        a.add_scrape(before);
        b.add_scrape(after);
        assert_eq!(
            a.until(&b),
            serde_json::json!({
                "run_podsandbox": {"calls": 2.0, "mean_seconds": 1.5},
                "volume_mount kubernetes.io/projected": {"calls": 4.0, "mean_seconds": 0.15},
            })
        );
    }
}
