//! A client process for socket-LB tests.
//!
//! Socket programs act on sockets of processes in the cgroup they are
//! attached to, so the client must be a process of its own: the test binary
//! re-executes itself (running only its `probe_child` test, which calls
//! [`child_main`]) inside the node's network namespace after moving into the
//! test cgroup. The parent drives it over stdin/stdout, one JSON command
//! and one JSON answer (prefixed `PROBE `, since the test harness prints
//! its own lines) per line. Sockets the child opens stay open across
//! commands until closed, so connections can be held.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, setsockopt, socket, sockopt,
};
use serde_json::{Value, json};

use super::{Netns, cgroup::Cgroup};

const CHILD_ENV: &str = "BATON_PROBE_CHILD";
const LINE_PREFIX: &str = "PROBE ";
const TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the probe loop if this process is a probe child; returns at once
/// otherwise (the `probe_child` test then passes trivially).
pub fn child_main() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut sockets: HashMap<u64, TcpStream> = HashMap::new();
    let mut next_id = 0u64;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let command: Value = serde_json::from_str(&line).expect("probe command");
        let answer = match command["op"].as_str().unwrap_or_default() {
            "connect" => match tcp_connect(&command) {
                Ok((mut stream, elapsed)) => {
                    let greeting = read_line(&mut stream);
                    let peer = stream.peer_addr().map(|addr| addr.to_string()).ok();
                    next_id += 1;
                    let id = next_id;
                    if command["hold"].as_bool().unwrap_or(false) {
                        sockets.insert(id, stream);
                    }
                    json!({"ok": true, "id": id, "backend": greeting, "peer": peer,
                           "ms": elapsed.as_secs_f64() * 1e3})
                }
                Err((errno, elapsed)) => {
                    json!({"ok": false, "errno": errno, "ms": elapsed.as_secs_f64() * 1e3})
                }
            },
            "echo" => {
                let id = command["id"].as_u64().unwrap();
                let stream = sockets.get_mut(&id).expect("held socket");
                let text = command["text"].as_str().unwrap();
                match stream.write_all(format!("{text}\n").as_bytes()) {
                    Ok(()) => json!({"ok": true, "reply": read_line(stream)}),
                    Err(error) => json!({"ok": false, "errno": error.raw_os_error()}),
                }
            }
            "peer" => {
                let id = command["id"].as_u64().unwrap();
                let peer = sockets[&id].peer_addr().map(|addr| addr.to_string()).ok();
                json!({"ok": true, "peer": peer})
            }
            "close" => {
                let id = command["id"].as_u64().unwrap();
                sockets.remove(&id);
                json!({"ok": true})
            }
            "udp" => udp_exchange(&command),
            other => json!({"ok": false, "error": format!("unknown op {other}")}),
        };
        println!("{LINE_PREFIX}{answer}");
        std::io::stdout().flush().unwrap();
    }
    std::process::exit(0);
}

fn tcp_connect(command: &Value) -> Result<(TcpStream, Duration), (i32, Duration)> {
    let addr: SocketAddrV4 = command["addr"].as_str().unwrap().parse().unwrap();
    let start = Instant::now();
    let errno = |error: nix::errno::Errno| (error as i32, start.elapsed());
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(errno)?;
    let timeout = nix::sys::time::TimeVal::new(TIMEOUT.as_secs() as i64, 0);
    setsockopt(&fd, sockopt::SendTimeout, &timeout).map_err(errno)?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(errno)?;
    if let Some(port) = command["bind_port"].as_u64() {
        // A fixed client port, reused across runs: close with RST so no
        // TIME_WAIT keeps the next run from binding it again.
        setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(errno)?;
        setsockopt(
            &fd,
            sockopt::Linger,
            &libc::linger {
                l_onoff: 1,
                l_linger: 0,
            },
        )
        .map_err(errno)?;
        bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, port as u16)).map_err(errno)?;
    }
    connect(fd.as_raw_fd(), &SockaddrIn::from(addr)).map_err(errno)?;
    Ok((TcpStream::from(fd), start.elapsed()))
}

fn read_line(stream: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(1) if byte[0] != b'\n' => line.push(byte[0]),
            Ok(1) => break,
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}

fn udp_exchange(command: &Value) -> Value {
    let addr: SocketAddrV4 = command["addr"].as_str().unwrap().parse().unwrap();
    let payload = command["payload"].as_str().unwrap_or("ping");
    let start = Instant::now();
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let sent = if command["connected"].as_bool().unwrap_or(false) {
        socket
            .connect(addr)
            .and_then(|()| socket.send(payload.as_bytes()))
    } else {
        socket.send_to(payload.as_bytes(), addr)
    };
    if let Err(error) = sent {
        return json!({"ok": false, "errno": error.raw_os_error(),
                      "ms": start.elapsed().as_secs_f64() * 1e3});
    }
    let peer = socket.peer_addr().map(|addr| addr.to_string()).ok();
    let mut buf = [0u8; 512];
    match socket.recv_from(&mut buf) {
        Ok((len, from)) => json!({"ok": true,
            "reply": String::from_utf8_lossy(&buf[..len]), "from": from.to_string(),
            "peer": peer, "ms": start.elapsed().as_secs_f64() * 1e3}),
        Err(error) => json!({"ok": false, "errno": error.raw_os_error(),
                             "ms": start.elapsed().as_secs_f64() * 1e3}),
    }
}

/// The parent's handle on a probe process.
pub struct Probe {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// A TCP connection a probe opened.
#[derive(Debug, Clone)]
pub struct Connected {
    pub id: u64,
    /// The name the backend greeted with.
    pub backend: String,
    /// The client address the backend saw.
    pub seen_client: String,
    /// `getpeername` of the socket.
    pub peer: SocketAddr,
    pub elapsed: Duration,
}

/// A failed call, with the errno and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Failed {
    pub errno: i32,
    pub elapsed: Duration,
}

/// A UDP exchange.
#[derive(Debug, Clone)]
pub struct Exchanged {
    /// What the backend answered (`<name> <client seen>`).
    pub reply: String,
    /// Source of the answer as `recvfrom` reported it.
    pub from: SocketAddr,
    /// `getpeername` of a connected socket.
    pub peer: Option<SocketAddr>,
}

fn elapsed(answer: &Value) -> Duration {
    Duration::from_secs_f64(answer["ms"].as_f64().unwrap_or(0.0) / 1e3)
}

fn failed(answer: &Value) -> Failed {
    Failed {
        errno: answer["errno"].as_i64().unwrap_or(-1) as i32,
        elapsed: elapsed(answer),
    }
}

impl Probe {
    /// Starts a probe in `netns`, inside `cgroup`.
    pub fn spawn(netns: &Netns, cgroup: &Cgroup) -> Self {
        let exe = std::env::current_exe().unwrap();
        let script = format!(
            "echo $$ > {} && exec ip netns exec {} \"$0\" \"$@\"",
            cgroup.procs().display(),
            netns.name()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(exe)
            .args([
                "--exact",
                "probe_child",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn probe");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, command: Value) -> Value {
        let stdin = self.stdin.as_mut().expect("probe running");
        writeln!(stdin, "{command}").expect("write to probe");
        stdin.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.stdout.read_line(&mut line).expect("read from probe");
            assert!(read > 0, "probe exited while running {command}");
            if let Some(answer) = line.trim_end().strip_prefix(LINE_PREFIX) {
                return serde_json::from_str(answer).unwrap();
            }
        }
    }

    /// Connects over TCP and reads the backend's greeting; `hold` keeps
    /// the connection open (see [`Self::close`]).
    pub fn connect(&mut self, addr: SocketAddrV4, hold: bool) -> Result<Connected, Failed> {
        self.connect_with(addr, hold, None)
    }

    /// [`Self::connect`] from a fixed local port.
    pub fn connect_from(&mut self, addr: SocketAddrV4, port: u16) -> Result<Connected, Failed> {
        self.connect_with(addr, false, Some(port))
    }

    fn connect_with(
        &mut self,
        addr: SocketAddrV4,
        hold: bool,
        bind_port: Option<u16>,
    ) -> Result<Connected, Failed> {
        let answer = self.call(json!({"op": "connect", "addr": addr.to_string(),
                                      "hold": hold, "bind_port": bind_port}));
        if answer["ok"] != true {
            return Err(failed(&answer));
        }
        let greeting = answer["backend"].as_str().unwrap_or_default();
        let (backend, seen_client) = greeting.split_once(' ').unwrap_or((greeting, ""));
        Ok(Connected {
            id: answer["id"].as_u64().unwrap(),
            backend: backend.to_owned(),
            seen_client: seen_client.to_owned(),
            peer: answer["peer"].as_str().unwrap().parse().unwrap(),
            elapsed: elapsed(&answer),
        })
    }

    /// Sends a line on a held connection and returns the echo.
    pub fn echo(&mut self, id: u64, text: &str) -> Result<String, Failed> {
        let answer = self.call(json!({"op": "echo", "id": id, "text": text}));
        match answer["reply"].as_str() {
            Some(reply) if answer["ok"] == true => Ok(reply.to_owned()),
            _ => Err(failed(&answer)),
        }
    }

    /// `getpeername` of a held connection.
    pub fn peer(&mut self, id: u64) -> SocketAddr {
        let answer = self.call(json!({"op": "peer", "id": id}));
        answer["peer"].as_str().unwrap().parse().unwrap()
    }

    /// Closes a held connection.
    pub fn close(&mut self, id: u64) {
        self.call(json!({"op": "close", "id": id}));
    }

    /// Sends one datagram (from a `connect`ed socket if `connected`) and
    /// waits for the answer.
    pub fn udp(
        &mut self,
        addr: SocketAddrV4,
        payload: &str,
        connected: bool,
    ) -> Result<Exchanged, Failed> {
        let answer = self.call(json!({"op": "udp", "addr": addr.to_string(),
                                      "payload": payload, "connected": connected}));
        if answer["ok"] != true {
            return Err(failed(&answer));
        }
        Ok(Exchanged {
            reply: answer["reply"].as_str().unwrap().to_owned(),
            from: answer["from"].as_str().unwrap().parse().unwrap(),
            peer: answer["peer"].as_str().map(|peer| peer.parse().unwrap()),
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
