//! How fast the API reaches the datapath:
//!
//! - **bursts**: filler Services + EndpointSlices written (or deleted) as
//!   fast as the API takes them; the baton node's
//!   `baton_proxy_services_programmed` gauge is scraped every 10 ms from
//!   its metrics endpoint, and afterwards a sample of the new cluster IPs
//!   is probed through socket LB until every one answers.
//! - **endpoint changes**: the propagation service's EndpointSlice is
//!   rewritten to name the other echo pod, and a probe inside the node
//!   opens connection after connection to the service until the new pod
//!   answers: the time from the write request to that answer.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use baton_e2e::Netns;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::super::report::{round2, summary};
use super::probe::{Probe, wall_ns};
use super::services::{self, Batch, SERVICE_PORT};
use super::topology::METRICS_ADDR;

/// The metric counting programmed service ports.
const PROGRAMMED: &str = "baton_proxy_services_programmed";

/// One scrape of the baton node's metrics (from inside its namespace).
fn scrape_once() -> Result<String> {
    let addr: SocketAddr = METRICS_ADDR.parse()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// The node's metrics text.
pub fn scrape(netns: &Netns) -> Result<String> {
    netns.enter(scrape_once)?
}

/// The value of the first sample of `name` (with labels matching every
/// `label="value"` in `labels`).
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                && labels.iter().all(|want| l.contains(want))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Samples of the scraped value, each with when it was read.
type Samples = Vec<(Instant, f64)>;

/// Scrapes `PROGRAMMED` every `every` until stopped.
pub struct Poller {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Samples>>>,
}

impl Poller {
    pub fn start(netns: &Netns, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let netns = netns.clone();
        let handle = std::thread::spawn(move || -> Result<Samples> {
            Ok(netns.enter(move || {
                let mut samples = Vec::new();
                loop {
                    // Read before sampling: the sample taken after the stop
                    // is the one that sees what the caller waited for.
                    let stopping = flag.load(Ordering::Relaxed);
                    let at = Instant::now();
                    if let Some(v) = scrape_once()
                        .ok()
                        .and_then(|text| sample(&text, PROGRAMMED, &[]))
                    {
                        samples.push((at, v));
                    }
                    if stopping {
                        break;
                    }
                    std::thread::sleep(every.saturating_sub(at.elapsed()));
                }
                samples
            })?)
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> Result<Samples> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| anyhow::anyhow!("the poller panicked"))?,
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits until `PROGRAMMED` satisfies `done`, scraping every 10 ms.
pub fn wait_programmed(netns: &Netns, within: Duration, done: impl Fn(f64) -> bool) -> Result<f64> {
    let deadline = Instant::now() + within;
    loop {
        let value = scrape(netns)
            .ok()
            .and_then(|text| sample(&text, PROGRAMMED, &[]));
        if let Some(v) = value
            && done(v)
        {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{PROGRAMMED} is {value:?} after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ms(d: Duration) -> f64 {
    round2(d.as_secs_f64() * 1000.0)
}

fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        later.duration_since(earlier).as_secs_f64() * 1000.0
    } else {
        -(earlier.duration_since(later).as_secs_f64() * 1000.0)
    }
}

/// A burst's report: the timeline of the gauge against the writes.
/// `target` is the gauge's value once everything is programmed; `before`
/// its value at the start; positive `step` for creations, negative for
/// deletions.
pub fn burst_report(batch: &Batch, samples: &[(Instant, f64)], before: f64, target: f64) -> Value {
    let n = batch.done_at.len();
    let reached = |k: usize| {
        let want = if target >= before {
            before + k as f64
        } else {
            before - k as f64
        };
        samples
            .iter()
            .find(|(_, v)| {
                if target >= before {
                    *v >= want
                } else {
                    *v <= want
                }
            })
            .map(|(at, _)| *at)
    };
    let all = reached(n);
    // Lag of the k-th service: gauge counts it − its write completed
    // (sampled: every 10th service and the last).
    let lags: Vec<f64> = (1..=n)
        .filter(|k| k % 10 == 0 || *k == n)
        .filter_map(|k| reached(k).map(|at| signed_ms(at, batch.done_at[k - 1]).max(0.0)))
        .collect();
    let last = batch.last();
    json!({
        "services": n,
        "api_write_seconds": round2(last.duration_since(batch.started_at).as_secs_f64()),
        "api_writes_per_second": round2(n as f64 / last.duration_since(batch.started_at).as_secs_f64().max(1e-9)),
        "programmed_after_first_write_ms": all.map(|at| ms(at.duration_since(batch.started_at))),
        "programmed_after_last_write_ms": all.map(|at| round2(signed_ms(at, last).max(0.0))),
        "lag_behind_api_ms": summary(lags),
        "gauge_samples": samples.len(),
    })
}

/// Rewrites the propagation service's slice between two endpoints and
/// times each change until the probe sees it.
pub struct Propagation<'a> {
    pub api: Api<EndpointSlice>,
    pub slice: String,
    pub service: String,
    pub vip: SocketAddr,
    pub node: String,
    pub probe: &'a mut Probe,
}

impl Propagation<'_> {
    /// `changes` changes alternating between `a` and `b` (the slice names
    /// `a` now), with a pause of 20–60 ms between them.
    pub async fn run(
        &mut self,
        a: std::net::Ipv4Addr,
        b: std::net::Ipv4Addr,
        changes: usize,
    ) -> Result<Value> {
        let mut current = self
            .api
            .get(&self.slice)
            .await
            .with_context(|| format!("reading EndpointSlice {}", self.slice))?;
        let mut latencies = Vec::new();
        let mut write_ms = Vec::new();
        let mut probes = Vec::new();
        let mut missed = 0usize;
        for i in 0..changes {
            let target = if i % 2 == 0 { b } else { a };
            let mut slice =
                services::slice_json(&self.slice, &self.service, &[target], &self.node, false);
            slice.metadata.resource_version = current.metadata.resource_version.clone();
            self.probe
                .start_switch(self.vip, &target.to_string(), Duration::from_secs(5))?;
            let t0 = SystemTime::now();
            let i0 = Instant::now();
            current = self
                .api
                .replace(&self.slice, &PostParams::default(), &slice)
                .await
                .with_context(|| format!("replacing EndpointSlice {}", self.slice))?;
            write_ms.push(ms(i0.elapsed()));
            match self.probe.seen()? {
                Some((at, n)) => {
                    latencies.push((at.saturating_sub(wall_ns(t0))) as f64 / 1e6);
                    probes.push(n as f64);
                }
                None => missed += 1,
            }
            let pause = 20 + (i as u64 * 7919) % 41;
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Ok(json!({
            "changes": changes,
            "missed": missed,
            "latency_ms": summary(latencies.clone()),
            "api_write_ms": summary(write_ms),
            "probes_per_change": summary(probes),
            "samples_ms": latencies.iter().map(|v| round2(*v)).collect::<Vec<_>>(),
        }))
    }
}

/// The probe sample for a burst: the last `tail` services created and
/// up to `spread` others spread over the batch.
pub fn sample_addrs(batch: &Batch, tail: usize, spread: usize) -> Vec<SocketAddr> {
    let mut created = batch.created.clone();
    created.sort_by_key(|(i, _)| *i);
    let n = created.len();
    let mut picked: Vec<usize> = (n.saturating_sub(tail)..n).collect();
    if n > 0 {
        let step = (n / spread.max(1)).max(1);
        picked.extend((0..n).step_by(step));
    }
    picked.sort_unstable();
    picked.dedup();
    picked
        .into_iter()
        .map(|i| SocketAddr::from((created[i].1.cluster_ip, SERVICE_PORT)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_by_name_and_labels() {
        let text = "# HELP x\nbaton_proxy_services_programmed 10004\n\
                    baton_service_packets_total{namespace=\"default\",service=\"bench-baton\",port=\"http\"} 42\n";
        assert_eq!(sample(text, PROGRAMMED, &[]), Some(10004.0));
        assert_eq!(
            sample(
                text,
                "baton_service_packets_total",
                &["service=\"bench-baton\""]
            ),
            Some(42.0)
        );
        assert_eq!(sample(text, "baton_proxy_services", &[]), None);
    }

    #[test]
    fn a_burst_reports_when_the_gauge_caught_up() {
        let t = Instant::now();
        let at = |ms| t + Duration::from_millis(ms);
        let batch = Batch {
            started: SystemTime::now(),
            started_at: t,
            done_at: (1..=20).map(|k| at(k * 10)).collect(),
            created: Vec::new(),
        };
        let samples: Vec<(Instant, f64)> = (0..30)
            .map(|k| (at(k * 10 + 5), (4 + k.min(20)) as f64))
            .collect();
        let r = burst_report(&batch, &samples, 4.0, 24.0);
        assert_eq!(r["services"], 20);
        assert_eq!(r["programmed_after_first_write_ms"], 205.0);
        assert_eq!(r["programmed_after_last_write_ms"], 5.0);
    }
}
