//! A client process for service tests: HTTP GETs, TCP connections (held
//! or not, plain or to backends that greet with their name), and UDP
//! request/response, with the errno and time of every attempt.
//!
//! Socket-level load balancing acts on sockets of processes in the cgroup
//! its programs are attached to, so a client "on a node" must be a process
//! of its own inside that cgroup (and network namespace): the test binary
//! re-executes itself — running only its `probe_child` test, which must
//! call [`child_main`] — with `nsenter --net`, moving into the cgroup
//! first. The parent drives it over stdin/stdout, one JSON command and one
//! JSON answer per line (answers prefixed `PROBE `, since the test harness
//! prints lines of its own). Held connections stay open across commands,
//! so a connection can outlive a restart of the programs or of baton-node.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect as connect_fd, setsockopt, socket,
    sockopt,
};
use serde_json::{Value, json};

use crate::netns::Netns;
use crate::node_cgroup::cgroup_exec_args;

/// Name of the test function that calls [`child_main`].
pub const CHILD_TEST: &str = "probe_child";
const CHILD_ENV: &str = "BATON_E2E_PROBE";
const PREFIX: &str = "PROBE ";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
const ECONNREFUSED: i32 = 111;

/// Connections the probe holds open, by id.
type Held = HashMap<u64, BufReader<TcpStream>>;

/// The probe loop, when this process was started as a probe; returns at
/// once otherwise (the `probe_child` test then passes trivially).
pub fn child_main() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut held: Held = HashMap::new();
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
            "greet" => greet(&command, timeout).map(|(mut reader, peer)| {
                let greeting = read_greeting(&mut reader);
                next += 1;
                if command["hold"].as_bool().unwrap_or(false) {
                    held.insert(next, reader);
                }
                json!({"id": next, "backend": greeting, "peer": peer})
            }),
            "echo" => echo(&command, &mut held),
            "peer" => peer(&command, &held),
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

/// A blocking `connect(2)` with send and receive timeouts, from the fixed
/// local port `bind_port` when given: the errno is the one `connect`
/// itself returns (socket programs answer at that call).
fn greet(command: &Value, timeout: Duration) -> std::io::Result<(BufReader<TcpStream>, String)> {
    let addr = match addr_of(command)? {
        SocketAddr::V4(addr) => addr,
        SocketAddr::V6(addr) => {
            return Err(std::io::Error::other(format!("{addr} is not IPv4")));
        }
    };
    let errno = |error: nix::errno::Errno| std::io::Error::from_raw_os_error(error as i32);
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(errno)?;
    let timeout =
        nix::sys::time::TimeVal::new(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX), 0);
    setsockopt(&fd, sockopt::SendTimeout, &timeout).map_err(errno)?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(errno)?;
    if let Some(port) = command["bind_port"].as_u64() {
        let port = u16::try_from(port).map_err(std::io::Error::other)?;
        // A fixed client port, reused across runs: close with RST so no
        // TIME_WAIT keeps the next run from binding it again.
        setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(errno)?;
        setsockopt(
            &fd,
            sockopt::Linger,
            &nix::libc::linger {
                l_onoff: 1,
                l_linger: 0,
            },
        )
        .map_err(errno)?;
        bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, port)).map_err(errno)?;
    }
    connect_fd(fd.as_raw_fd(), &SockaddrIn::from(addr)).map_err(errno)?;
    let stream = TcpStream::from(fd);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    Ok((BufReader::new(stream), peer))
}

/// The first line a backend sends (`<name> <client address>`), or `None`
/// if the connection ends or fails before a whole line.
fn read_greeting(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(_) if line.ends_with('\n') => {
            line.pop();
            Some(line)
        }
        _ => None,
    }
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

fn echo(command: &Value, held: &mut Held) -> std::io::Result<Value> {
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

fn peer(command: &Value, held: &Held) -> std::io::Result<Value> {
    let id = command["id"].as_u64().unwrap_or_default();
    let reader = held
        .get(&id)
        .ok_or_else(|| std::io::Error::other(format!("no connection {id}")))?;
    Ok(json!({"peer": reader.get_ref().peer_addr()?.to_string()}))
}

/// One datagram out and one back, from a `connect`ed socket when the
/// command says `connected` (its `getpeername` is then reported too).
fn udp(command: &Value, timeout: Duration) -> std::io::Result<Value> {
    let addr = addr_of(command)?;
    let payload = command["payload"].as_str().unwrap_or_default().as_bytes();
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(timeout))?;
    if command["connected"].as_bool().unwrap_or(false) {
        socket.connect(addr)?;
        socket.send(payload)?;
    } else {
        socket.send_to(payload, addr)?;
    }
    let peer = socket.peer_addr().map(|a| a.to_string()).ok();
    let mut buf = [0u8; 2048];
    let (len, from) = socket.recv_from(&mut buf)?;
    Ok(json!({
        "reply": String::from_utf8_lossy(&buf[..len]),
        "from": from.to_string(),
        "peer": peer,
    }))
}

/// A failed attempt: the errno (e.g. 111 ECONNREFUSED, 101 ENETUNREACH,
/// or -1 when the failure carried none, as a connect that timed out) and
/// how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub errno: i32,
    pub kind: String,
    pub error: String,
    pub elapsed: Duration,
    /// [`Failure::elapsed`] in milliseconds.
    pub ms: f64,
}

impl Failure {
    /// Refused at once (ECONNREFUSED), as a service without endpoints must be.
    #[must_use]
    pub fn refused(&self) -> bool {
        self.errno == ECONNREFUSED
    }
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

/// A TCP connection to a backend that greets with `<name> <client seen>`.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The connection's id, for [`Probe::echo`], [`Probe::peer`] and
    /// [`Probe::close`] while it is held.
    pub id: u64,
    /// The name the backend greeted with.
    pub backend: String,
    /// The client address the backend saw.
    pub seen_client: String,
    /// `getpeername` of the socket.
    pub peer: SocketAddr,
    pub elapsed: Duration,
}

/// A UDP exchange, with the addresses the client's socket reports.
#[derive(Debug, Clone)]
pub struct Exchanged {
    /// What the backend answered.
    pub reply: String,
    /// Source of the answer as `recvfrom` reported it.
    pub from: SocketAddr,
    /// `getpeername` of a connected socket.
    pub peer: Option<SocketAddr>,
}

fn ms_of(answer: &Value) -> f64 {
    answer["ms"].as_f64().unwrap_or_default()
}

fn parse_addr(answer: &Value, key: &str) -> Result<SocketAddr, Failure> {
    answer[key]
        .as_str()
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| Failure {
            errno: -1,
            kind: "InvalidData".to_owned(),
            error: format!("no {key} address in the probe's answer {answer}"),
            elapsed: Duration::from_secs_f64(ms_of(answer) / 1e3),
            ms: ms_of(answer),
        })
}

/// The probe process. Dropping it closes its stdin, which ends it (and
/// every connection it holds); it is killed if it does not end at once.
#[derive(Debug)]
pub struct Probe {
    child: Child,
    stdin: Option<ChildStdin>,
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
            stdin: Some(stdin),
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
        let what = &self.what;
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{what}: stopped"));
        writeln!(stdin, "{command}").unwrap_or_else(|e| panic!("{what}: {e}"));
        stdin.flush().unwrap_or_else(|e| panic!("{what}: {e}"));
        loop {
            let mut line = String::new();
            let read = self
                .stdout
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(read > 0, "{what} exited while running {command}");
            // The harness may have printed `test probe_child ... ` on the
            // same line before the first answer.
            if let Some(at) = line.find(PREFIX) {
                return serde_json::from_str(line[at + PREFIX.len()..].trim_end())
                    .unwrap_or(Value::Null);
            }
        }
    }

    fn failure(answer: &Value) -> Failure {
        let ms = ms_of(answer);
        Failure {
            errno: answer["errno"]
                .as_i64()
                .and_then(|e| i32::try_from(e).ok())
                .unwrap_or(-1),
            kind: answer["kind"].as_str().unwrap_or_default().to_owned(),
            error: answer["error"].as_str().unwrap_or_default().to_owned(),
            elapsed: Duration::from_secs_f64(ms / 1e3),
            ms,
        }
    }

    /// The answer if it says `ok`, else the failure it reports.
    fn answer(&mut self, command: &Value) -> Result<Value, Failure> {
        let answer = self.request(command);
        if answer["ok"].as_bool() == Some(true) {
            Ok(answer)
        } else {
            Err(Self::failure(&answer))
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
        let answer = self.answer(&json!({
            "op": "http", "addr": addr.to_string(), "path": path,
            "timeout_ms": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }))?;
        Ok(HttpReply {
            status: u16::try_from(answer["status"].as_u64().unwrap_or_default()).unwrap_or(0),
            body: answer["body"].as_str().unwrap_or_default().to_owned(),
            peer: answer["peer"].as_str().unwrap_or_default().to_owned(),
            ms: ms_of(&answer),
        })
    }

    /// Opens and holds a TCP connection to `addr`; returns its id and the
    /// peer address `getpeername` shows.
    pub fn connect(&mut self, addr: SocketAddrV4) -> Result<(u64, String), Failure> {
        let answer = self.answer(&json!({"op": "connect", "addr": addr.to_string()}))?;
        Ok((
            answer["id"].as_u64().unwrap_or_default(),
            answer["peer"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    /// Connects to `addr` with a blocking `connect(2)` (so the errno is
    /// the one that call returns) and reads the backend's greeting; `hold`
    /// keeps the connection open (see [`Probe::close`]).
    pub fn connect_greeted(
        &mut self,
        addr: SocketAddrV4,
        hold: bool,
    ) -> Result<Connected, Failure> {
        self.greet(addr, hold, None)
    }

    /// [`Probe::connect_greeted`] from the fixed local port `port`, not
    /// held.
    pub fn connect_greeted_from(
        &mut self,
        addr: SocketAddrV4,
        port: u16,
    ) -> Result<Connected, Failure> {
        self.greet(addr, false, Some(port))
    }

    fn greet(
        &mut self,
        addr: SocketAddrV4,
        hold: bool,
        bind_port: Option<u16>,
    ) -> Result<Connected, Failure> {
        let answer = self.answer(&json!({"op": "greet", "addr": addr.to_string(),
                                          "hold": hold, "bind_port": bind_port}))?;
        let greeting = answer["backend"].as_str().unwrap_or_default();
        let (backend, seen_client) = greeting.split_once(' ').unwrap_or((greeting, ""));
        Ok(Connected {
            id: answer["id"].as_u64().unwrap_or_default(),
            backend: backend.to_owned(),
            seen_client: seen_client.to_owned(),
            peer: parse_addr(&answer, "peer")?,
            elapsed: Duration::from_secs_f64(ms_of(&answer) / 1e3),
        })
    }

    /// Sends a line on held connection `id` and returns the line echoed.
    pub fn echo(&mut self, id: u64, text: &str) -> Result<String, Failure> {
        let answer = self.answer(&json!({"op": "echo", "id": id, "text": text}))?;
        Ok(answer["text"].as_str().unwrap_or_default().to_owned())
    }

    /// `getpeername` of held connection `id`; panics if the probe holds no
    /// such connection.
    pub fn peer(&mut self, id: u64) -> SocketAddr {
        self.answer(&json!({"op": "peer", "id": id}))
            .and_then(|answer| parse_addr(&answer, "peer"))
            .unwrap_or_else(|failure| panic!("{}: peer of {id}: {failure:?}", self.what))
    }

    /// Closes held connection `id`.
    pub fn close(&mut self, id: u64) {
        self.request(&json!({"op": "close", "id": id}));
    }

    /// Sends `payload` in one datagram to `addr` and waits for one answer.
    pub fn udp(&mut self, addr: SocketAddrV4, payload: &str) -> Result<UdpReply, Failure> {
        let answer =
            self.answer(&json!({"op": "udp", "addr": addr.to_string(), "payload": payload}))?;
        Ok(UdpReply {
            reply: answer["reply"].as_str().unwrap_or_default().to_owned(),
            from: answer["from"].as_str().unwrap_or_default().to_owned(),
            ms: ms_of(&answer),
        })
    }

    /// Sends `payload` in one datagram to `addr` — from a `connect`ed
    /// socket if `connected` — and waits for one answer, with the
    /// addresses the socket reports.
    pub fn udp_exchange(
        &mut self,
        addr: SocketAddrV4,
        payload: &str,
        connected: bool,
    ) -> Result<Exchanged, Failure> {
        let answer = self.answer(&json!({"op": "udp", "addr": addr.to_string(),
                                          "payload": payload, "connected": connected}))?;
        Ok(Exchanged {
            reply: answer["reply"].as_str().unwrap_or_default().to_owned(),
            from: parse_addr(&answer, "from")?,
            peer: answer["peer"].as_str().and_then(|peer| peer.parse().ok()),
        })
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // Closing stdin ends the child's loop; kill it if it hangs.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
