//! A client process for service tests: HTTP GETs, held TCP connections
//! and UDP request/response, with the errno and time of every attempt.
//!
//! Socket-level load balancing acts on sockets of processes in the cgroup
//! its programs are attached to, so a client "on a node" must be a process
//! of its own inside that node's cgroup subtree (and network namespace):
//! the test binary re-executes itself — running only its `probe_child`
//! test, which must call [`child_main`] — with `nsenter --net`, moving into
//! the cgroup first. The parent drives it over stdin/stdout, one JSON
//! command and one JSON answer per line (answers prefixed `PROBE `, since
//! the test harness prints lines of its own). Held connections stay open
//! across commands, so a connection can outlive a restart of baton-node.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::netns::Netns;
use crate::node_cgroup::cgroup_exec_args;

/// Name of the test function that calls [`child_main`].
pub const CHILD_TEST: &str = "probe_child";
const CHILD_ENV: &str = "BATON_E2E_PROBE";
const PREFIX: &str = "PROBE ";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The probe loop, when this process was started as a probe; returns at
/// once otherwise (the `probe_child` test then passes trivially).
pub fn child_main() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut held: HashMap<u64, BufReader<TcpStream>> = HashMap::new();
    let mut next = 0u64;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(command) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let timeout = command["timeout_ms"]
            .as_u64()
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let start = Instant::now();
        let result = match command["op"].as_str().unwrap_or_default() {
            "http" => http(&command, timeout),
            "connect" => connect(&command, timeout).map(|stream| {
                next += 1;
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                held.insert(next, BufReader::new(stream));
                json!({"id": next, "peer": peer})
            }),
            "echo" => echo(&command, &mut held),
            "close" => {
                held.remove(&command["id"].as_u64().unwrap_or_default());
                Ok(json!({}))
            }
            "udp" => udp(&command, timeout),
            other => Err(std::io::Error::other(format!("unknown op {other:?}"))),
        };
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let answer = match result {
            Ok(mut value) => {
                value["ok"] = json!(true);
                value["ms"] = json!(ms);
                value
            }
            Err(error) => json!({
                "ok": false,
                "errno": error.raw_os_error(),
                "kind": format!("{:?}", error.kind()),
                "error": error.to_string(),
                "ms": ms,
            }),
        };
        let _ = writeln!(stdout, "{PREFIX}{answer}");
        let _ = stdout.flush();
    }
    std::process::exit(0);
}

fn addr_of(command: &Value) -> std::io::Result<SocketAddr> {
    command["addr"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(std::io::Error::other)
}

fn connect(command: &Value, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr_of(command)?, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

fn http(command: &Value, timeout: Duration) -> std::io::Result<Value> {
    let mut stream = connect(command, timeout)?;
    let peer = stream.peer_addr()?.to_string();
    let path = command["path"].as_str().unwrap_or("/");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        command["addr"].as_str().unwrap_or_default()
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok(json!({"status": status, "head": head, "body": body, "peer": peer}))
}

fn echo(command: &Value, held: &mut HashMap<u64, BufReader<TcpStream>>) -> std::io::Result<Value> {
    let id = command["id"].as_u64().unwrap_or_default();
    let reader = held
        .get_mut(&id)
        .ok_or_else(|| std::io::Error::other(format!("no connection {id}")))?;
    let text = command["text"].as_str().unwrap_or_default();
    reader.get_mut().write_all(format!("{text}\n").as_bytes())?;
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
    }
    Ok(json!({"text": line.trim_end()}))
}

fn udp(command: &Value, timeout: Duration) -> std::io::Result<Value> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send_to(
        command["payload"].as_str().unwrap_or_default().as_bytes(),
        addr_of(command)?,
    )?;
    let mut buf = [0u8; 2048];
    let (len, from) = socket.recv_from(&mut buf)?;
    Ok(json!({
        "reply": String::from_utf8_lossy(&buf[..len]),
        "from": from.to_string(),
    }))
}

/// A failed attempt: the errno (e.g. 111 ECONNREFUSED, 110 ETIMEDOUT, or
/// none for a timeout reading) and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub errno: Option<i32>,
    pub kind: String,
    pub error: String,
    pub ms: f64,
}

impl Failure {
    /// Refused at once (ECONNREFUSED), as a service without endpoints must be.
    #[must_use]
    pub fn refused(&self) -> bool {
        self.errno == Some(libc_econnrefused())
    }
}

const fn libc_econnrefused() -> i32 {
    111
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    pub status: u16,
    pub body: String,
    /// The address the socket is connected to, as `getpeername` shows it.
    pub peer: String,
    pub ms: f64,
}

impl HttpReply {
    /// The body as JSON (the echo server's answers).
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A UDP answer.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpReply {
    pub reply: String,
    /// Where the answer came from, as `recvfrom` shows it.
    pub from: String,
    pub ms: f64,
}

/// The probe process.
#[derive(Debug)]
pub struct Probe {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    what: String,
}

impl Probe {
    /// Starts a probe in `netns`, inside the cgroup v2 directory `cgroup`
    /// when given (else in the test's own cgroup).
    pub fn spawn(netns: &Netns, cgroup: Option<&Path>) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let test_args: Vec<OsString> = ["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"]
            .iter()
            .map(OsString::from)
            .collect();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", netns.path().display()))
            .arg("--");
        match cgroup {
            Some(dir) => {
                cmd.arg("sh").args(cgroup_exec_args(dir, &exe, &test_args));
            }
            None => {
                cmd.arg(&exe).args(&test_args);
            }
        }
        cmd.env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            what: format!(
                "probe in {}{}",
                netns.name(),
                cgroup
                    .map(|c| format!(" ({})", c.display()))
                    .unwrap_or_default()
            ),
        })
    }

    /// Sends one command and returns the answer (with `ok`, `ms`, and
    /// `errno`/`error` on failure).
    pub fn request(&mut self, command: &Value) -> Value {
        writeln!(self.stdin, "{command}").unwrap_or_else(|e| panic!("{}: {e}", self.what));
        self.stdin
            .flush()
            .unwrap_or_else(|e| panic!("{}: {e}", self.what));
        loop {
            let mut line = String::new();
            let read = self
                .stdout
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("{}: {e}", self.what));
            assert!(read > 0, "{} exited", self.what);
            // The harness may have printed `test probe_child ... ` on the
            // same line before the first answer.
            if let Some(at) = line.find(PREFIX) {
                return serde_json::from_str(line[at + PREFIX.len()..].trim_end())
                    .unwrap_or(Value::Null);
            }
        }
    }

    fn failure(answer: &Value) -> Failure {
        Failure {
            errno: answer["errno"].as_i64().and_then(|e| i32::try_from(e).ok()),
            kind: answer["kind"].as_str().unwrap_or_default().to_owned(),
            error: answer["error"].as_str().unwrap_or_default().to_owned(),
            ms: answer["ms"].as_f64().unwrap_or_default(),
        }
    }

    /// `GET path` from `addr`.
    pub fn http_get(&mut self, addr: SocketAddrV4, path: &str) -> Result<HttpReply, Failure> {
        self.http_get_within(addr, path, DEFAULT_TIMEOUT)
    }

    /// `GET path` from `addr`, giving up after `timeout`.
    pub fn http_get_within(
        &mut self,
        addr: SocketAddrV4,
        path: &str,
        timeout: Duration,
    ) -> Result<HttpReply, Failure> {
        let answer = self.request(&json!({
            "op": "http", "addr": addr.to_string(), "path": path,
            "timeout_ms": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }));
        if answer["ok"].as_bool() != Some(true) {
            return Err(Self::failure(&answer));
        }
        Ok(HttpReply {
            status: u16::try_from(answer["status"].as_u64().unwrap_or_default()).unwrap_or(0),
            body: answer["body"].as_str().unwrap_or_default().to_owned(),
            peer: answer["peer"].as_str().unwrap_or_default().to_owned(),
            ms: answer["ms"].as_f64().unwrap_or_default(),
        })
    }

    /// Opens and holds a TCP connection to `addr`; returns its id and the
    /// peer address `getpeername` shows.
    pub fn connect(&mut self, addr: SocketAddrV4) -> Result<(u64, String), Failure> {
        let answer = self.request(&json!({"op": "connect", "addr": addr.to_string()}));
        if answer["ok"].as_bool() != Some(true) {
            return Err(Self::failure(&answer));
        }
        Ok((
            answer["id"].as_u64().unwrap_or_default(),
            answer["peer"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    /// Sends a line on held connection `id` and returns the line echoed.
    pub fn echo(&mut self, id: u64, text: &str) -> Result<String, Failure> {
        let answer = self.request(&json!({"op": "echo", "id": id, "text": text}));
        if answer["ok"].as_bool() != Some(true) {
            return Err(Self::failure(&answer));
        }
        Ok(answer["text"].as_str().unwrap_or_default().to_owned())
    }

    /// Closes held connection `id`.
    pub fn close(&mut self, id: u64) {
        self.request(&json!({"op": "close", "id": id}));
    }

    /// Sends `payload` in one datagram to `addr` and waits for one answer.
    pub fn udp(&mut self, addr: SocketAddrV4, payload: &str) -> Result<UdpReply, Failure> {
        let answer =
            self.request(&json!({"op": "udp", "addr": addr.to_string(), "payload": payload}));
        if answer["ok"].as_bool() != Some(true) {
            return Err(Self::failure(&answer));
        }
        Ok(UdpReply {
            reply: answer["reply"].as_str().unwrap_or_default().to_owned(),
            from: answer["from"].as_str().unwrap_or_default().to_owned(),
            ms: answer["ms"].as_f64().unwrap_or_default(),
        })
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
