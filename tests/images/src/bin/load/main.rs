//! A closed-loop HTTP/1.1 load generator for comparing two paths to one
//! server under the same conditions:
//!
//! ```text
//! load [--close] [--connections N] [--slice-ms MS] [--slices K] URL [URL…]
//! ```
//!
//! Time is cut into slices; in each slice all N connections load one URL,
//! the next slice the next URL, in the order A B B A A B B A … (so a steady
//! drift of the machine favours neither). Two paths measured this way see
//! the same moments of the machine: a neighbour that slows the host for a
//! second slows both, and the ratio of adjacent slices stays. Run one after
//! the other for seconds each, the same paths differ by a fifth here from
//! run to run.
//!
//! Keep-alive by default: every URL gets N persistent connections, which
//! wait idle while another URL is loaded; latency runs from a request's
//! first byte to its answer's last. `--close` sends `Connection: close`
//! and opens a new connection for every request; latency then includes
//! the connect. Latencies are as measured, one per request, not corrected
//! for coordinated omission: the paths compared share every stall.
//!
//! One JSON line on stdout: per URL the answers, errors and latency
//! percentiles, and per slice `[url index, answers, µs]`.
//!
//! Single-threaded, one epoll instance, non-blocking sockets.

mod conn;
mod report;

use std::net::SocketAddrV4;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::conn::{Connection, Phase};
use crate::report::{Slice, Tally};

/// A URL to load: `http://a.b.c.d:port/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    url: String,
    addr: SocketAddrV4,
    request: Vec<u8>,
}

#[derive(Debug)]
struct Args {
    close: bool,
    connections: usize,
    slice: Duration,
    slices: usize,
    targets: Vec<Target>,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("load: {err}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("load: {err}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        close: false,
        connections: 16,
        slice: Duration::from_millis(200),
        slices: 20,
        targets: Vec::new(),
    };
    let number = |value: Option<String>, name: &str| -> Result<u64, String> {
        value
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{name} needs a positive number"))
    };
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--close" => args.close = true,
            "--connections" => args.connections = number(argv.next(), &arg)? as usize,
            "--slice-ms" => args.slice = Duration::from_millis(number(argv.next(), &arg)?),
            "--slices" => args.slices = number(argv.next(), &arg)? as usize,
            url => args.targets.push(target(url, args.close)?),
        }
    }
    if args.targets.is_empty() {
        return Err("no URL".into());
    }
    // `--close` may come after the URLs.
    for t in &mut args.targets {
        *t = target(&t.url, args.close)?;
    }
    Ok(args)
}

fn target(url: &str, close: bool) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let addr: SocketAddrV4 = authority
        .parse()
        .map_err(|_| format!("{url}: the host must be an IPv4 address with a port"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    Ok(Target {
        url: url.to_owned(),
        addr,
        request: request.into_bytes(),
    })
}

/// The target loaded in slice `i` of `targets`: A B B A A B B A … for two,
/// round robin otherwise.
fn slice_target(i: usize, targets: usize) -> usize {
    if targets == 2 {
        i.div_ceil(2) % 2
    } else {
        i % targets
    }
}

struct Load<'a> {
    args: &'a Args,
    epoll: Epoll,
    connections: Vec<Connection>,
    tallies: Vec<Tally>,
    /// The target being loaded, and the slice being recorded (none while
    /// warming up).
    active: usize,
    slice: Option<usize>,
    slices: Vec<Slice>,
}

fn run(args: &Args) -> Result<String, String> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| e.to_string())?;
    let mut load = Load {
        args,
        epoll,
        connections: Vec::new(),
        tallies: args.targets.iter().map(|_| Tally::default()).collect(),
        active: 0,
        slice: None,
        slices: Vec::new(),
    };
    for target in 0..args.targets.len() {
        for _ in 0..args.connections {
            load.connections.push(Connection::new(target));
        }
    }
    // Warm-up: a slice of every target, not recorded.
    for target in 0..args.targets.len() {
        load.switch_to(target, None);
        load.spin(Instant::now() + args.slice);
    }
    for tally in &mut load.tallies {
        *tally = Tally::default();
    }
    for i in 0..args.slices {
        let target = slice_target(i, args.targets.len());
        load.switch_to(target, Some(i));
        let started = Instant::now();
        load.spin(started + args.slice);
        load.slices[i].micros = started.elapsed().as_micros() as u64;
    }
    Ok(report::line(args, &load.tallies, &load.slices))
}

impl Load<'_> {
    /// Makes `target` the loaded one: its idle connections start a
    /// request, its closed ones connect.
    fn switch_to(&mut self, target: usize, slice: Option<usize>) {
        self.active = target;
        self.slice = slice;
        if let Some(i) = slice {
            debug_assert_eq!(self.slices.len(), i);
            self.slices.push(Slice {
                target,
                answers: 0,
                micros: 0,
            });
        }
        for i in 0..self.connections.len() {
            if self.connections[i].target != target {
                continue;
            }
            match self.connections[i].phase {
                Phase::Idle => {
                    self.connections[i].start_request();
                    self.drive(i);
                }
                Phase::Closed => self.reopen(i),
                _ => {}
            }
        }
    }

    /// Serves events until `until`.
    fn spin(&mut self, until: Instant) {
        let mut events = vec![EpollEvent::empty(); 256];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let timeout = EpollTimeout::try_from(left.max(Duration::from_millis(1)))
                .unwrap_or(EpollTimeout::ZERO);
            let ready = match self.epoll.wait(&mut events, timeout) {
                Ok(ready) => ready,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(err) => panic!("epoll_wait: {err}"),
            };
            for event in &events[..ready] {
                self.drive(event.data() as usize);
            }
        }
    }

    /// Drives connection `i` and accounts for what it did; a connection
    /// of the loaded target that ended opens again.
    fn drive(&mut self, i: usize) {
        let keep_alive = !self.args.close;
        let target = self.connections[i].target;
        let active = target == self.active;
        let request = &self.args.targets[target].request;
        let progress = self.connections[i].drive(request, keep_alive, active);
        let tally = &mut self.tallies[target];
        tally.errors += u64::from(progress.errors);
        for &(micros, ok) in &progress.answers {
            tally.record(micros, ok);
        }
        // Answers of a target count to its own latest slice: one straggler
        // per connection may end just after a switch.
        if !progress.answers.is_empty()
            && let Some(slice) = self.slices.iter_mut().rev().find(|s| s.target == target)
        {
            slice.answers += progress.answers.len() as u64;
        }
        if self.connections[i].phase == Phase::Closed && active {
            self.reopen(i);
        }
    }

    /// Connects connection `i` again (after an error, or for the next
    /// request without keep-alive).
    fn reopen(&mut self, i: usize) {
        let conn = &mut self.connections[i];
        if let Err(err) = conn.open(self.args.targets[conn.target].addr) {
            self.tallies[conn.target].errors += 1;
            eprintln!(
                "load: connecting to {}: {err}",
                self.args.targets[conn.target].url
            );
            return;
        }
        let socket = conn.socket().expect("an open connection has a socket");
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLET;
        if let Err(err) = self.epoll.add(socket, EpollEvent::new(flags, i as u64)) {
            panic!("epoll_ctl: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn two_targets_alternate_a_b_b_a() {
        let order: Vec<usize> = (0..8).map(|i| slice_target(i, 2)).collect();
        assert_eq!(order, [0, 1, 1, 0, 0, 1, 1, 0]);
        let order: Vec<usize> = (0..6).map(|i| slice_target(i, 3)).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
        assert!((0..4).all(|i| slice_target(i, 1) == 0));
    }

    /// A server on loopback answering every request with 200 `ok`,
    /// closing after an answer to `Connection: close`.
    fn server() -> SocketAddrV4 {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(addr) = listener.local_addr().unwrap() else {
            unreachable!()
        };
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut close = false;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            close |= line.eq_ignore_ascii_case("connection: close\r\n");
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                        if close {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn both_urls_are_loaded_in_their_slices_in_both_modes() {
        let (a, b) = (server(), server());
        for close in [false, true] {
            let mut list = vec!["--connections", "2", "--slices", "4", "--slice-ms", "50"];
            if close {
                list.push("--close");
            }
            let (url_a, url_b) = (format!("http://{a}/"), format!("http://{b}/x"));
            list.extend([url_a.as_str(), url_b.as_str()]);
            let line = run(&args(&list).unwrap()).unwrap();
            let mode = if close { "close" } else { "keepalive" };
            assert!(
                line.starts_with(&format!("{{\"mode\":\"{mode}\"")),
                "{line}"
            );
            assert!(line.contains(&format!("\"url\":\"{url_b}\"")), "{line}");
            assert!(
                !line.contains("\"answers\":0"),
                "a URL or slice without answers: {line}"
            );
            assert!(line.contains("\"errors\":0,\"status_errors\":0,"), "{line}");
            let slices = &line[line.find("\"slices\":").unwrap()..];
            let slices: Vec<Vec<&str>> = slices
                .split('[')
                .skip(2)
                .map(|s| s.split(',').take(2).collect())
                .collect();
            let targets: Vec<&str> = slices.iter().map(|s| s[0]).collect();
            assert_eq!(targets, ["0", "1", "1", "0"], "{line}");
            assert!(slices.iter().all(|s| s[1] != "0"), "an empty slice: {line}");
        }
    }

    #[test]
    fn urls_become_requests() {
        let a = args(&["--slices", "4", "http://10.0.0.1:8080/x", "--close"]).unwrap();
        assert_eq!(a.slices, 4);
        assert_eq!(a.targets[0].addr, "10.0.0.1:8080".parse().unwrap());
        assert_eq!(
            String::from_utf8(a.targets[0].request.clone()).unwrap(),
            "GET /x HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nConnection: close\r\n\r\n"
        );
        let b = args(&["http://10.0.0.1:80"]).unwrap();
        assert!(String::from_utf8_lossy(&b.targets[0].request).starts_with("GET / HTTP/1.1\r\n"));
        assert!(args(&["https://10.0.0.1/"]).is_err());
        assert!(args(&["http://example.com/"]).is_err());
        assert!(args(&["--slices", "0", "http://10.0.0.1:80/"]).is_err());
        assert!(args(&[]).is_err());
    }
}
