//! The load generator: `wrk` (HTTP/1.1, epoll, one thread), started in a
//! namespace (and cgroup) of the cluster with `nsenter`, bounded in time,
//! its result read from a Lua `done` hook that prints the totals and exact
//! latency percentiles as one JSON line (instead of parsing the rounded
//! human-readable report).
//!
//! Two modes: keep-alive (requests/s and latency of established
//! connections) and `Connection: close` (every request opens a new TCP
//! connection, so requests/s is new connections/s).

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::super::report::{Proc, round2};

/// The Lua hook: one JSON line with the run's totals and percentiles (µs).
const DONE_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"max_us\":%d,\"connect_errors\":%d,\"read_errors\":%d,\"write_errors\":%d,\"timeouts\":%d,\"status_errors\":%d}\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status))
end
"#;

/// How connections are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Persistent connections: requests/s and latency.
    KeepAlive,
    /// One request per connection: new connections/s.
    NewConnections,
}

impl Mode {
    pub fn id(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keepalive",
            Mode::NewConnections => "new_connections",
        }
    }
}

/// What one wrk run measured.
#[derive(Debug, Clone)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Connect, read, write errors, timeouts and non-2xx answers.
    pub errors: u64,
    /// SYNs the client's namespace sent again during the run (each one a
    /// connection that waited for the retransmission timer, 1 s at first).
    pub syn_retransmits: u64,
}

impl WrkResult {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "seconds": round2(self.seconds),
            "rate": round2(self.rate()),
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "errors": self.errors,
            "syn_retransmits": self.syn_retransmits,
        })
    }
}

/// A wrk invocation.
pub struct Wrk<'a> {
    /// The Lua hook's file.
    pub script: &'a Path,
    pub threads: usize,
    pub connections: usize,
    pub duration: Duration,
}

/// Writes the Lua hook into `dir` and returns its path.
pub fn write_script(dir: &Path) -> Result<std::path::PathBuf> {
    let path = dir.join("wrk-done.lua");
    std::fs::write(&path, DONE_SCRIPT).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

impl Wrk<'_> {
    /// wrk's arguments for `url` in `mode`.
    pub fn args(&self, url: &str, mode: Mode) -> Vec<String> {
        let mut args = vec![
            format!("-t{}", self.threads),
            format!("-c{}", self.connections),
            format!("-d{}s", self.duration.as_secs().max(1)),
            "--timeout".into(),
            "2s".into(),
            "-s".into(),
            self.script.display().to_string(),
        ];
        if mode == Mode::NewConnections {
            args.push("-H".into());
            args.push("Connection: close".into());
        }
        args.push(url.to_owned());
        args
    }

    /// Runs `cmd` (wrk, wrapped by the caller to enter a namespace and
    /// cgroup) and returns its result; killed if it overruns.
    pub fn run(&self, cmd: Command) -> Result<WrkResult> {
        let shown = format!("{cmd:?}");
        let stdout = run_bounded(cmd, self.duration + Duration::from_secs(20))?;
        parse(&stdout).with_context(|| format!("reading the output of {shown}:\n{stdout}"))
    }
}

/// Runs a load generator's `cmd` for at most `limit` (then it is killed)
/// and returns its standard output; an error carries its output when it
/// fails.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Result<String> {
    let shown = format!("{cmd:?}");
    let mut child = Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {shown}"))?,
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            bail!("{shown} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.0.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    if let Some(mut err) = child.0.stderr.take() {
        err.read_to_string(&mut stderr)?;
    }
    if !status.success() {
        bail!(
            "{shown} failed ({status}): {}{}",
            stdout.trim(),
            stderr.trim()
        );
    }
    Ok(stdout)
}

/// Reads the hook's line from wrk's output.
fn parse(stdout: &str) -> Result<WrkResult> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_RESULT "))
        .context("no result line")?;
    let v: Value = serde_json::from_str(line)?;
    let n = |key: &str| v[key].as_u64().unwrap_or(0);
    let ms = |key: &str| n(key) as f64 / 1000.0;
    Ok(WrkResult {
        requests: n("requests"),
        seconds: n("duration_us") as f64 / 1e6,
        p50_ms: ms("p50_us"),
        p90_ms: ms("p90_us"),
        p99_ms: ms("p99_us"),
        max_ms: ms("max_us"),
        errors: n("connect_errors")
            + n("read_errors")
            + n("write_errors")
            + n("timeouts")
            + n("status_errors"),
        syn_retransmits: 0,
    })
}

/// The value of the `TcpExt` counter `name` in a `/proc/net/netstat`
/// text (a header line of names followed by a line of values).
pub fn tcp_ext_counter(netstat: &str, name: &str) -> Option<u64> {
    let mut lines = netstat.lines();
    while let Some(header) = lines.next() {
        let values = lines.next()?;
        if !header.starts_with("TcpExt:") {
            continue;
        }
        let at = header.split_whitespace().position(|n| n == name)?;
        return values.split_whitespace().nth(at)?.parse().ok();
    }
    None
}

/// The median of `values` (upper median for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Median of each measure over repeated runs, with the spread of the
/// rate ((max − min) / median).
pub fn aggregate(runs: &[WrkResult]) -> Value {
    let rates: Vec<f64> = runs.iter().map(WrkResult::rate).collect();
    let rate = median(&rates);
    let spread = if rate > 0.0 {
        let max = rates.iter().copied().fold(f64::MIN, f64::max);
        let min = rates.iter().copied().fold(f64::MAX, f64::min);
        (max - min) / rate
    } else {
        0.0
    };
    let pick = |f: fn(&WrkResult) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    json!({
        "rate": round2(rate),
        "p50_ms": round3(pick(|r| r.p50_ms)),
        "p90_ms": round3(pick(|r| r.p90_ms)),
        "p99_ms": round3(pick(|r| r.p99_ms)),
        "rate_spread": round3(spread),
        "errors": runs.iter().map(|r| r.errors).sum::<u64>(),
        "syn_retransmits": runs.iter().map(|r| r.syn_retransmits).sum::<u64>(),
        "runs": runs.iter().map(WrkResult::to_json).collect::<Vec<_>>(),
    })
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_line_is_read_in_milliseconds() {
        let out = "Running 5s test @ http://10.96.0.10/\nWRK_RESULT {\"requests\":5000,\"duration_us\":5000000,\"p50_us\":250,\"p90_us\":400,\"p99_us\":1234,\"max_us\":9000,\"connect_errors\":1,\"read_errors\":0,\"write_errors\":0,\"timeouts\":2,\"status_errors\":0}\n";
        let r = parse(out).unwrap();
        assert_eq!(r.requests, 5000);
        assert_eq!(r.rate(), 1000.0);
        assert_eq!(r.p50_ms, 0.25);
        assert_eq!(r.p99_ms, 1.234);
        assert_eq!(r.errors, 3);
        assert!(parse("nothing").is_err());
    }

    #[test]
    fn syn_retransmissions_are_read_from_netstat() {
        let netstat = "TcpExt: SyncookiesSent TCPSynRetrans TCPOrigDataSent\nTcpExt: 0 17 123\n\
                       IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(tcp_ext_counter(netstat, "TCPSynRetrans"), Some(17));
        assert_eq!(tcp_ext_counter(netstat, "Missing"), None);
    }

    #[test]
    fn medians_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[]), 0.0);
        let run = |requests| WrkResult {
            requests,
            seconds: 1.0,
            p50_ms: 1.0,
            p90_ms: 1.0,
            p99_ms: 2.0,
            max_ms: 3.0,
            errors: 0,
            syn_retransmits: 1,
        };
        let agg = aggregate(&[run(90), run(100), run(110)]);
        assert_eq!(agg["rate"], 100.0);
        assert_eq!(agg["rate_spread"], 0.2);
        assert_eq!(agg["syn_retransmits"], 3);
    }
}
