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
//! One thread per connection with buffers reused across requests: fast
//! enough for `wrk` with keep-alive and no allocation per request beyond
//! formatting the body. SIGTERM and SIGINT exit at once with status 0 (the
//! server is PID 1 of its container, which gets no default signal action).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};

struct Config {
    http_port: u16,
    tcp_port: u16,
    udp_port: u16,
    unhealthy_file: PathBuf,
    hostname: String,
    pod_ip: Option<String>,
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
    let mut workers = Vec::new();
    if config.http_port != 0 {
        let listener = bind_tcp(config.http_port);
        let config = Arc::clone(&config);
        workers.push(thread::spawn(move || accept_loop(&listener, &config, true)));
    }
    if config.tcp_port != 0 {
        let listener = bind_tcp(config.tcp_port);
        let config = Arc::clone(&config);
        workers.push(thread::spawn(move || {
            accept_loop(&listener, &config, false)
        }));
    }
    if config.udp_port != 0 {
        let socket = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, config.udp_port)) {
            Ok(socket) => socket,
            Err(err) => fail(&format!("binding UDP port {}: {err}", config.udp_port)),
        };
        workers.push(thread::spawn(move || udp_loop(&socket)));
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

fn accept_loop(listener: &TcpListener, config: &Arc<Config>, http: bool) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let config = Arc::clone(config);
                let _ = stream.set_nodelay(true);
                thread::spawn(move || {
                    let _ = if http {
                        serve_http(stream, peer, &config)
                    } else {
                        serve_tcp_echo(stream)
                    };
                });
            }
            // Out of descriptors or a connection reset before accept: go on.
            Err(err) => {
                eprintln!("echo: accept: {err}");
                thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

fn serve_tcp_echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
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

/// One parsed request head: what the response depends on.
struct Request {
    path_start: usize,
    path_end: usize,
    /// Bytes of body that follow the head.
    body_len: usize,
    close: bool,
}

fn serve_http(mut stream: TcpStream, peer: SocketAddr, config: &Config) -> io::Result<()> {
    let local_ip = match &config.pod_ip {
        Some(ip) => ip.clone(),
        None => stream.local_addr()?.ip().to_string(),
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    let mut body = String::with_capacity(256);
    let mut out = Vec::with_capacity(512);
    loop {
        // Serve every complete request already buffered (pipelining).
        while let Some((head_len, request)) = parse_head(&buf[..filled]) {
            let total = head_len + request.body_len;
            if total > filled {
                if total > buf.len() {
                    buf.resize(total, 0);
                }
                break;
            }
            let path = String::from_utf8_lossy(&buf[request.path_start..request.path_end]);
            respond(
                &mut out,
                &mut body,
                &path,
                peer,
                &local_ip,
                config,
                request.close,
            );
            stream.write_all(&out)?;
            if request.close {
                return Ok(());
            }
            buf.copy_within(total..filled, 0);
            filled -= total;
        }
        if filled == buf.len() {
            if buf.len() >= 1024 * 1024 {
                return Ok(()); // a head this large is not a client of ours
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
    }
}

/// Parses the head of the first request in `data`, if it is complete.
fn parse_head(data: &[u8]) -> Option<(usize, Request)> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &data[..end];
    let line_end = head.iter().position(|&b| b == b'\r')?;
    let line = &head[..line_end];
    let path_start = line.iter().position(|&b| b == b' ')? + 1;
    let path_len = line[path_start..]
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(line.len() - path_start);
    let http10 = line.ends_with(b"HTTP/1.0");
    let mut body_len = 0;
    let mut close = http10;
    for header in head[line_end + 2..].split(|&b| b == b'\n') {
        let header = header.strip_suffix(b"\r").unwrap_or(header);
        let Some(colon) = header.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&header[..colon], header[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            body_len = std::str::from_utf8(value).ok()?.parse().ok()?;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    Some((
        end,
        Request {
            path_start,
            path_end: path_start + path_len,
            body_len,
            close,
        },
    ))
}

fn respond(
    out: &mut Vec<u8>,
    body: &mut String,
    path: &str,
    peer: SocketAddr,
    local_ip: &str,
    config: &Config,
    close: bool,
) {
    body.clear();
    let status = if path == "/healthz" {
        if Path::new(&config.unhealthy_file).exists() {
            body.push_str("unhealthy\n");
            "503 Service Unavailable"
        } else {
            body.push_str("ok\n");
            "200 OK"
        }
    } else {
        let _ = writeln!(
            body,
            r#"{{"client":"{peer}","hostname":"{}","podIP":"{local_ip}","path":"{}"}}"#,
            config.hostname,
            path.replace('"', "%22")
        );
        "200 OK"
    };
    out.clear();
    let content_type = if path == "/healthz" {
        "text/plain"
    } else {
        "application/json"
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_with_bodies_and_connection_headers() {
        let req = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET";
        let (len, head) = parse_head(req).unwrap();
        assert_eq!(&req[head.path_start..head.path_end], b"/a");
        assert_eq!(head.body_len, 3);
        assert!(!head.close);
        assert_eq!(&req[len..len + 3], b"abc");
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n").is_none());
        let (_, head) = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(head.close);
        let (_, head) = parse_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(head.close);
    }

    #[test]
    fn answers_with_the_client_it_saw() {
        let config = Config {
            http_port: 0,
            tcp_port: 0,
            udp_port: 0,
            unhealthy_file: PathBuf::from("/nonexistent/unhealthy"),
            hostname: "pod-a".into(),
            pod_ip: None,
        };
        let (mut out, mut body) = (Vec::new(), String::new());
        let peer: SocketAddr = "10.244.1.7:4000".parse().unwrap();
        respond(
            &mut out,
            &mut body,
            "/x",
            peer,
            "10.244.2.9",
            &config,
            false,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with(
            "{\"client\":\"10.244.1.7:4000\",\"hostname\":\"pod-a\",\"podIP\":\"10.244.2.9\",\"path\":\"/x\"}\n"
        ), "{text}");
        let mut out = Vec::new();
        respond(&mut out, &mut body, "/healthz", peer, "ip", &config, true);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("Connection: close") && text.ends_with("ok\n"),
            "{text}"
        );
    }
}
