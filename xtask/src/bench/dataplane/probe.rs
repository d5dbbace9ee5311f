//! A probe process inside a node: socket-level load balancing acts on the
//! sockets of processes in the node's cgroup subtree, so the client that
//! watches the datapath must be a process of its own there (and in the
//! node's network namespace). xtask starts itself again as
//! `cargo xtask bench dataplane-probe` with `nsenter`, moving into the
//! cgroup first, and drives it over stdin/stdout, one command and one
//! answer per line:
//!
//! - `get <addr>` → `ok <podIP>` / `err <message>`: one HTTP GET on a new
//!   connection.
//! - `switch <addr> <podIP> <timeout ms>` → `ok <unix ns> <probes>` /
//!   `timeout <probes>`: new connections with one GET each, back to back,
//!   until one is answered by `<podIP>`; the time is when that answer
//!   arrived (wall clock, comparable with the parent's).
//! - `serve <timeout ms> <addr>…` → `ok <unix ns> <rounds>` /
//!   `timeout <left>`: GETs over the list, round after round, until every
//!   address has answered once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use baton_e2e::Netns;
use baton_e2e::node_cgroup::cgroup_exec_args;

use super::super::report::Proc;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

fn unix_ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// One GET on a new connection; the answering pod's IP.
fn get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_nodelay(true)?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    body.split("\"podIP\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .ok_or_else(|| std::io::Error::other(format!("no podIP in {body:?}")))
}

/// The probe process (`cargo xtask bench dataplane-probe`).
pub fn child_main() -> Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["get", addr] => match addr.parse().map_err(std::io::Error::other).and_then(get) {
                Ok(ip) => format!("ok {ip}"),
                Err(err) => format!("err {err}"),
            },
            ["switch", addr, want, timeout_ms] => {
                let addr: SocketAddr = addr.parse()?;
                let deadline = Instant::now() + Duration::from_millis(timeout_ms.parse()?);
                let mut probes = 0u64;
                loop {
                    probes += 1;
                    if get(addr).is_ok_and(|ip| ip == *want) {
                        break format!("ok {} {probes}", unix_ns(SystemTime::now()));
                    }
                    if Instant::now() > deadline {
                        break format!("timeout {probes}");
                    }
                }
            }
            ["serve", timeout_ms, addrs @ ..] => {
                let deadline = Instant::now() + Duration::from_millis(timeout_ms.parse()?);
                let mut left: Vec<SocketAddr> =
                    addrs.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
                let mut rounds = 0u64;
                loop {
                    rounds += 1;
                    left.retain(|addr| get(*addr).is_err());
                    if left.is_empty() {
                        break format!("ok {} {rounds}", unix_ns(SystemTime::now()));
                    }
                    if Instant::now() > deadline {
                        break format!("timeout {}", left.len());
                    }
                }
            }
            _ => format!("err unknown command {line:?}"),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}

/// The parent's handle on a probe process; killed on drop.
pub struct Probe {
    _proc: Proc,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Probe {
    /// Starts a probe in `netns`, inside cgroup v2 directory `cgroup`.
    pub fn spawn(netns: &Netns, cgroup: &Path) -> Result<Self> {
        let exe = std::env::current_exe().context("finding xtask's binary")?;
        let args = cgroup_exec_args(cgroup, &exe, &["bench".into(), "dataplane-probe".into()]);
        let mut cmd: Command = netns.command("sh");
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the probe")?;
        let stdin = child.stdin.take().context("probe stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("probe stdout")?);
        Ok(Self {
            _proc: Proc(child),
            stdin,
            stdout,
        })
    }

    fn send(&mut self, command: &str) -> Result<()> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        Ok(())
    }

    fn answer(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the probe exited");
        }
        Ok(line.trim().to_owned())
    }

    /// One GET: the answering pod's IP.
    pub fn get(&mut self, addr: SocketAddr) -> Result<String> {
        self.send(&format!("get {addr}"))?;
        let answer = self.answer()?;
        match answer.strip_prefix("ok ") {
            Some(ip) => Ok(ip.to_owned()),
            None => bail!("GET {addr}: {answer}"),
        }
    }

    /// Waits until `get` answers, up to `within`.
    pub fn wait_get(&mut self, addr: SocketAddr, within: Duration) -> Result<String> {
        let deadline = Instant::now() + within;
        loop {
            match self.get(addr) {
                Ok(ip) => return Ok(ip),
                Err(err) if Instant::now() > deadline => return Err(err),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Starts probing `addr` until `pod_ip` answers; [`Probe::seen`]
    /// collects the answer.
    pub fn start_switch(
        &mut self,
        addr: SocketAddr,
        pod_ip: &str,
        timeout: Duration,
    ) -> Result<()> {
        self.send(&format!("switch {addr} {pod_ip} {}", timeout.as_millis()))
    }

    /// When the awaited answer came (wall clock, ns since the epoch), and
    /// how many probes it took; `None` on timeout.
    pub fn seen(&mut self) -> Result<Option<(u128, u64)>> {
        let answer = self.answer()?;
        let words: Vec<&str> = answer.split_whitespace().collect();
        match words.as_slice() {
            ["ok", at, probes] => Ok(Some((at.parse()?, probes.parse()?))),
            ["timeout", _] => Ok(None),
            _ => bail!("probe: {answer}"),
        }
    }

    /// Starts probing `addrs` until each answered once.
    pub fn start_serve(&mut self, addrs: &[SocketAddr], timeout: Duration) -> Result<()> {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        self.send(&format!("serve {} {}", timeout.as_millis(), list.join(" ")))
    }
}

/// Wall-clock nanoseconds of `t`, for comparing with a probe's answers.
pub fn wall_ns(t: SystemTime) -> u128 {
    unix_ns(t)
}
