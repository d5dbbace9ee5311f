//! The authorizer's cost, part of `cargo xtask bench api`: the same
//! one-at-a-time creates and gets of pods by a user without privileges,
//! against a fresh API server with `--authorization-mode=AlwaysAllow` and
//! one with its default `Node,RBAC`, one after the other in the same run.
//! Under `Node,RBAC` the user holds its rights through a RoleBinding among
//! a hundred others in the namespace, beside the bootstrap policy.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, PostParams};
use serde_json::json;

use super::loopback::LoopbackControlPlane;
use super::report::summary;

/// The modes compared, the baseline first.
const MODES: [&str; 2] = ["AlwaysAllow", "Node,RBAC"];
/// Bindings of other users beside the measured user's.
const OTHER_BINDINGS: usize = 100;
/// The most the authorizers may add to a p99 (as a fraction of it).
pub const TARGET_OVERHEAD: f64 = 0.10;

async fn policy(admin: &kube::Client) -> Result<()> {
    let pp = PostParams::default();
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "bench-pods"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "delete"]}],
    }))?;
    Api::<ClusterRole>::all(admin.clone())
        .create(&pp, &role)
        .await?;
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), "default");
    for i in 0..=OTHER_BINDINGS {
        let user = if i == OTHER_BINDINGS {
            "bench".to_owned()
        } else {
            format!("user-{i}")
        };
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("{user}-pods")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench-pods"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }))?;
        bindings.create(&pp, &binding).await?;
    }
    Ok(())
}

/// Creates then gets `samples` pods one at a time as the user `bench`
/// under each mode.
pub async fn measure(
    bin: &Path,
    dir: &Path,
    etcd_base: &Path,
    samples: usize,
    pod: impl Fn(usize) -> Result<Pod>,
) -> Result<serde_json::Value> {
    let mut out = serde_json::Map::new();
    for mode in MODES {
        let tag = mode.replace(',', "-");
        let run_dir = dir.join(format!("authz-{tag}"));
        std::fs::create_dir_all(&run_dir)?;
        let etcd_dir = etcd_base.with_file_name(format!(
            "{}-authz-{tag}",
            etcd_base
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("etcd")
        ));
        let result = async {
            let plane = LoopbackControlPlane::start_with(
                bin,
                &run_dir,
                &etcd_dir,
                &[&format!("--authorization-mode={mode}")],
            )?;
            policy(&plane.client().await?).await?;
            let user_conf = run_dir.join("bench.conf");
            plane.issue_kubeconfig("bench", &user_conf)?;
            let pods: Api<Pod> = Api::namespaced(plane.client_from(&user_conf).await?, "default");
            let pp = PostParams::default();
            let mut creates = Vec::with_capacity(samples);
            let mut gets = Vec::with_capacity(samples);
            for i in 0..samples {
                let mut p = pod(i)?;
                p.metadata.name = Some(format!("authz-{i:05}"));
                let t = Instant::now();
                pods.create(&pp, &p).await?;
                creates.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            for i in 0..samples {
                let t = Instant::now();
                pods.get(&format!("authz-{:05}", (i * 7919) % samples))
                    .await?;
                gets.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(json!({"create_ms": summary(creates), "get_ms": summary(gets)}))
        }
        .await;
        let _ = std::fs::remove_dir_all(&etcd_dir);
        out.insert(mode.to_owned(), result?);
    }
    let p99 = |mode: &str, op: &str| out[mode][op]["p99"].as_f64().unwrap_or(0.0);
    let mut verdicts = serde_json::Map::new();
    for op in ["create_ms", "get_ms"] {
        let (base, rbac) = (p99(MODES[0], op), p99(MODES[1], op));
        let overhead = if base > 0.0 { rbac / base - 1.0 } else { 0.0 };
        verdicts.insert(
            op.to_owned(),
            json!({"p99_overhead": (overhead * 1000.0).round() / 1000.0, "met": overhead <= TARGET_OVERHEAD}),
        );
    }
    out.insert("verdict".to_owned(), serde_json::Value::Object(verdicts));
    out.insert("samples".to_owned(), json!(samples));
    out.insert("other_bindings".to_owned(), json!(OTHER_BINDINGS));
    Ok(serde_json::Value::Object(out))
}

/// The table of the API server section.
pub fn render(r: &serde_json::Value) -> String {
    let cell = |mode: &str, op: &str, q: &str| format!("{} ms", r[mode][op][q]);
    let verdict = |op: &str| {
        let v = &r["verdict"][op];
        let pct = v["p99_overhead"].as_f64().unwrap_or(0.0) * 100.0;
        let met = if v["met"].as_bool() == Some(true) {
            "met"
        } else {
            "missed"
        };
        format!("{pct:+.1}% at p99: {met}")
    };
    let mut s = format!(
        "Authorization's cost: {n} pods created then read one at a time by a user without privileges, against a fresh \
         API server with `--authorization-mode=AlwaysAllow` and one with the default `Node,RBAC` (the user bound \
         through one RoleBinding among {others}), in the same run.\n\n\
         | operation | AlwaysAllow p50 | AlwaysAllow p99 | Node,RBAC p50 | Node,RBAC p99 | target: ≤ {target}% more at p99 |\n\
         | --- | --- | --- | --- | --- | --- |\n",
        n = r["samples"],
        others = r["other_bindings"],
        target = (TARGET_OVERHEAD * 100.0).round(),
    );
    for (label, op) in [("create", "create_ms"), ("get", "get_ms")] {
        s.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} |\n",
            cell(MODES[0], op, "p50"),
            cell(MODES[0], op, "p99"),
            cell(MODES[1], op, "p50"),
            cell(MODES[1], op, "p99"),
            verdict(op),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_met_or_missed() {
        let r = json!({
            "AlwaysAllow": {"create_ms": {"p50": 2.0, "p99": 4.0}, "get_ms": {"p50": 1.0, "p99": 2.0}},
            "Node,RBAC": {"create_ms": {"p50": 2.1, "p99": 4.2}, "get_ms": {"p50": 1.0, "p99": 2.5}},
            "verdict": {"create_ms": {"p99_overhead": 0.05, "met": true}, "get_ms": {"p99_overhead": 0.25, "met": false}},
            "samples": 1000, "other_bindings": 100,
        });
        let table = render(&r);
        assert!(
            table.contains("| create | 2.0 ms | 4.0 ms | 2.1 ms | 4.2 ms | +5.0% at p99: met |"),
            "{table}"
        );
        assert!(
            table.contains("| get | 1.0 ms | 2.0 ms | 1.0 ms | 2.5 ms | +25.0% at p99: missed |"),
            "{table}"
        );
    }
}
