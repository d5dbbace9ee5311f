//! A small server for tests and benchmarks that tells each client what it
//! saw. Three listeners, each disabled with port 0:
//!
//! - HTTP/1.1 (`--http-port`, `HTTP_PORT`, default 8080), keep-alive:
//!   `GET /` (any path) answers
//!   `{"client":"<ip>:<port>","hostname":"<hostname>","podIP":"<ip>","path":"<path>"}`;
//!   `GET /healthz` answers 200 `ok`, or 503 while the file named by
//!   `--unhealthy-file` (`UNHEALTHY_FILE`, default `/tmp/unhealthy`) exists,
//!   so probes can be made to fail from inside the container.
//! - TCP echo (`--tcp-port`, `TCP_PORT`, default 9000): sends back every
//!   byte it receives.
//! - UDP (`--udp-port`, `UDP_PORT`, default 5353): answers each datagram
//!   with one datagram, `<client ip>:<port>\n` followed by the payload
//!   (request/response like DNS).
//!
//! `echo udp <host:port> <payload>` is the matching client: it sends one
//! datagram, prints the answer and exits non-zero if none came within 2 s
//! (busybox's `nc` has no UDP mode).
//!
//! `podIP` is `$POD_IP` when set, else the address the client connected to.
//! The TCP listeners share one event-loop thread (`server`); the UDP one
//! has its own. SIGTERM and SIGINT exit at once with status 0 (the
//! server is PID 1 of its container, which gets no default signal action).

mod http;
mod server;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};

use crate::server::Protocol;

struct Config {
    http_port: u16,
    tcp_port: u16,
    udp_port: u16,
    unhealthy_file: PathBuf,
    hostname: String,
    pod_ip: Option<String>,
}

#[cfg(test)]
impl Config {
    /// A pod named `pod-a`, no `POD_IP`, never unhealthy, no listeners.
    fn for_tests() -> Self {
        Self {
            http_port: 0,
            tcp_port: 0,
            udp_port: 0,
            unhealthy_file: PathBuf::from("/nonexistent/unhealthy"),
            hostname: "pod-a".into(),
            pod_ip: None,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("udp") {
        match udp_client(&args[1..]) {
            Ok(answer) => {
                print!("{answer}");
                std::process::exit(0);
            }
            Err(msg) => fail(&msg),
        }
    }
    let config = match parse_config() {
        Ok(config) => Arc::new(config),
        Err(msg) => {
            eprintln!("echo: {msg}");
            std::process::exit(2);
        }
    };
    // Blocked here, before any thread starts, so every thread inherits the
    // mask and the signal thread below is the only one that takes them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    if let Err(err) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None) {
        eprintln!("echo: sigprocmask: {err}");
        std::process::exit(1);
    }
    let mut listeners = Vec::new();
    if config.http_port != 0 {
        listeners.push((bind_tcp(config.http_port), Protocol::Http));
    }
    if config.tcp_port != 0 {
        listeners.push((bind_tcp(config.tcp_port), Protocol::Echo));
    }
    if !listeners.is_empty() {
        let config = Arc::clone(&config);
        thread::spawn(move || {
            if let Err(err) = server::serve(listeners, &config) {
                fail(&format!("serving TCP: {err}"));
            }
        });
    }
    if config.udp_port != 0 {
        let socket = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, config.udp_port)) {
            Ok(socket) => socket,
            Err(err) => fail(&format!("binding UDP port {}: {err}", config.udp_port)),
        };
        thread::spawn(move || udp_loop(&socket));
    }
    eprintln!(
        "echo: serving http={} tcp={} udp={} as {}",
        config.http_port, config.tcp_port, config.udp_port, config.hostname
    );
    match signals.wait() {
        Ok(signal) => eprintln!("echo: {signal}, exiting"),
        Err(err) => eprintln!("echo: sigwait: {err}"),
    }
    std::process::exit(0);
}

/// `udp <host:port> <payload>`: one request, one answer.
fn udp_client(args: &[String]) -> Result<String, String> {
    let [target, payload] = args else {
        return Err("usage: echo udp <host:port> <payload>".into());
    };
    let target: SocketAddr = target
        .parse()
        .map_err(|_| format!("{target} is not an address:port"))?;
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    socket
        .send_to(payload.as_bytes(), target)
        .map_err(|e| format!("sending to {target}: {e}"))?;
    let mut buf = [0u8; 2048];
    let (len, from) = socket
        .recv_from(&mut buf)
        .map_err(|e| format!("no answer from {target}: {e}"))?;
    Ok(format!(
        "from {from}: {}",
        String::from_utf8_lossy(&buf[..len])
    ))
}

fn fail(msg: &str) -> ! {
    eprintln!("echo: {msg}");
    std::process::exit(1);
}

fn parse_config() -> Result<Config, String> {
    let env_port = |key: &str, default: u16| -> Result<u16, String> {
        match std::env::var(key) {
            Ok(v) => v.parse().map_err(|_| format!("{key}={v} is not a port")),
            Err(_) => Ok(default),
        }
    };
    let mut config = Config {
        http_port: env_port("HTTP_PORT", 8080)?,
        tcp_port: env_port("TCP_PORT", 9000)?,
        udp_port: env_port("UDP_PORT", 5353)?,
        unhealthy_file: std::env::var_os("UNHEALTHY_FILE")
            .map_or_else(|| PathBuf::from("/tmp/unhealthy"), PathBuf::from),
        // The UTS namespace's name, as uname(2) reports it.
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        pod_ip: std::env::var("POD_IP").ok().filter(|v| !v.is_empty()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let port = |v: String| v.parse::<u16>().map_err(|_| format!("{v} is not a port"));
        match flag.as_str() {
            "--http-port" => config.http_port = port(value()?)?,
            "--tcp-port" => config.tcp_port = port(value()?)?,
            "--udp-port" => config.udp_port = port(value()?)?,
            "--unhealthy-file" => config.unhealthy_file = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(config)
}

fn bind_tcp(port: u16) -> TcpListener {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        .unwrap_or_else(|err| fail(&format!("binding TCP port {port}: {err}")))
}

fn udp_loop(socket: &UdpSocket) {
    let mut buf = [0u8; 65536];
    let mut reply = Vec::with_capacity(65600);
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        reply.clear();
        let _ = writeln!(reply, "{peer}");
        reply.extend_from_slice(&buf[..n]);
        let _ = socket.send_to(&reply, peer);
    }
}
