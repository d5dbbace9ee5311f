//! The TCP side of the echo server: one thread and one epoll instance for
//! both listeners and every connection, each connection non-blocking and
//! edge-triggered, its buffers taken from a pool and returned on close.
//!
//! An event loop rather than a thread per connection: creating and ending a
//! thread costs about 100 µs of CPU per connection on our machines, more
//! than the network path the dataplane benchmark's new-connection runs
//! measure. It is also what the servers people put behind a Service (nginx,
//! envoy) do.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::Config;
use crate::http;

/// What a listener's connections speak.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive and pipelining, answered by [`http::respond`].
    Http,
    /// Every byte received is sent back.
    Echo,
}

/// Size of a connection's input buffer; a request head that does not fit
/// doubles it, up to [`MAX_INPUT`].
const INPUT: usize = 16 * 1024;
/// A request head larger than this is not from a client of ours: the
/// connection is closed.
const MAX_INPUT: usize = 1024 * 1024;
/// Buffers kept for reuse by later connections.
const POOL: usize = 256;

struct Connection {
    stream: TcpStream,
    protocol: Protocol,
    peer: SocketAddr,
    local_ip: IpAddr,
    input: Vec<u8>,
    filled: usize,
    output: Vec<u8>,
    written: usize,
    /// The client asked for the connection to end after this answer.
    close_when_flushed: bool,
}

/// Whether a connection stays after it was driven.
enum Next {
    Wait,
    Close,
}

struct Server<'a> {
    config: &'a Config,
    epoll: Epoll,
    listeners: Vec<(TcpListener, Protocol)>,
    connections: HashMap<RawFd, Connection>,
    /// (input, output) buffers of closed connections.
    pool: Vec<(Vec<u8>, Vec<u8>)>,
    /// Scratch space for an answer's body.
    body: String,
}

/// Serves `listeners` until the process exits.
pub fn serve(listeners: Vec<(TcpListener, Protocol)>, config: &Config) -> io::Result<()> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    for (listener, _) in &listeners {
        listener.set_nonblocking(true)?;
        // Level-triggered: a listener whose accept failed (out of
        // descriptors) is reported again on the next wait.
        epoll.add(
            listener,
            EpollEvent::new(EpollFlags::EPOLLIN, token(listener.as_raw_fd())),
        )?;
    }
    let mut server = Server {
        config,
        epoll,
        listeners,
        connections: HashMap::new(),
        pool: Vec::new(),
        body: String::with_capacity(256),
    };
    let mut events = vec![EpollEvent::empty(); 256];
    loop {
        let ready = match server.epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(ready) => ready,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
        };
        for event in &events[..ready] {
            let fd = RawFd::try_from(event.data()).unwrap_or(-1);
            if let Some(index) = server
                .listeners
                .iter()
                .position(|(l, _)| l.as_raw_fd() == fd)
            {
                server.accept(index);
            } else {
                server.drive(fd);
            }
        }
    }
}

fn token(fd: RawFd) -> u64 {
    u64::try_from(fd).unwrap_or(u64::MAX)
}

impl Server<'_> {
    /// Takes every pending connection of listener `index`.
    fn accept(&mut self, index: usize) {
        let protocol = self.listeners[index].1;
        loop {
            let accepted = self.listeners[index].0.accept();
            match accepted {
                Ok((stream, peer)) => {
                    if let Err(err) = self.register(stream, peer, protocol) {
                        eprintln!("echo: new connection from {peer}: {err}");
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                // A connection reset before accept: take the next one.
                Err(err) if err.kind() == ErrorKind::ConnectionAborted => {}
                // Out of descriptors: the listener is reported again on
                // the next wait; give closing connections a moment.
                Err(err) => {
                    eprintln!("echo: accept: {err}");
                    std::thread::sleep(Duration::from_millis(10));
                    return;
                }
            }
        }
    }

    fn register(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        protocol: Protocol,
    ) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let local_ip = stream.local_addr()?.ip();
        let fd = stream.as_raw_fd();
        // Edge-triggered for reading and writing alike: a connection is
        // driven until a read or a write would block, so an edge is never
        // missed, and no interest ever has to be changed.
        let flags = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLOUT
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLET;
        self.epoll.add(&stream, EpollEvent::new(flags, token(fd)))?;
        let (mut input, output) = self
            .pool
            .pop()
            .unwrap_or_else(|| (Vec::new(), Vec::with_capacity(512)));
        input.resize(INPUT, 0);
        self.connections.insert(
            fd,
            Connection {
                stream,
                protocol,
                peer,
                local_ip,
                input,
                filled: 0,
                output,
                written: 0,
                close_when_flushed: false,
            },
        );
        Ok(())
    }

    /// Reads, answers and writes on connection `fd` until it would block
    /// or is done.
    fn drive(&mut self, fd: RawFd) {
        let Some(conn) = self.connections.get_mut(&fd) else {
            return;
        };
        match conn.drive(self.config, &mut self.body) {
            Ok(Next::Wait) => {}
            Ok(Next::Close) | Err(_) => {
                if let Some(conn) = self.connections.remove(&fd) {
                    // Closing the socket also takes it out of the epoll set.
                    let Connection {
                        mut input,
                        mut output,
                        ..
                    } = conn;
                    if self.pool.len() < POOL && input.len() <= INPUT {
                        output.clear();
                        input.clear();
                        self.pool.push((input, output));
                    }
                }
            }
        }
    }
}

impl Connection {
    fn drive(&mut self, config: &Config, body: &mut String) -> io::Result<Next> {
        loop {
            if !self.flush()? {
                // The rest goes out on the next writable edge; reading
                // waits until then, so a client that does not read its
                // answers cannot make the server buffer without bound.
                return Ok(Next::Wait);
            }
            if self.close_when_flushed {
                return Ok(Next::Close);
            }
            if self.filled == self.input.len() {
                if self.input.len() >= MAX_INPUT {
                    return Ok(Next::Close);
                }
                self.input.resize(self.input.len() * 2, 0);
            }
            match self.stream.read(&mut self.input[self.filled..]) {
                Ok(0) => return Ok(Next::Close),
                Ok(n) => {
                    self.filled += n;
                    self.answer(config, body);
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(Next::Wait),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Writes what is pending; false when the socket would block first.
    fn flush(&mut self) -> io::Result<bool> {
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        self.output.clear();
        self.written = 0;
        Ok(true)
    }

    /// Turns the input read so far into output.
    fn answer(&mut self, config: &Config, body: &mut String) {
        match self.protocol {
            Protocol::Echo => {
                self.output.extend_from_slice(&self.input[..self.filled]);
                self.filled = 0;
            }
            Protocol::Http => self.answer_http(config, body),
        }
    }

    /// Answers every complete request buffered (pipelining), in order.
    fn answer_http(&mut self, config: &Config, body: &mut String) {
        while let Some((head_len, request)) = http::parse_head(&self.input[..self.filled]) {
            let total = head_len + request.body_len;
            if total > self.filled {
                if total > self.input.len() {
                    self.input.resize(total, 0);
                }
                return;
            }
            let path = String::from_utf8_lossy(&self.input[request.path_start..request.path_end]);
            let local_ip: &dyn std::fmt::Display = match &config.pod_ip {
                Some(ip) => ip,
                None => &self.local_ip,
            };
            http::respond(
                &mut self.output,
                body,
                &path,
                self.peer,
                local_ip,
                config,
                request.close,
            );
            if request.close {
                self.close_when_flushed = true;
                self.filled = 0;
                return;
            }
            self.input.copy_within(total..self.filled, 0);
            self.filled -= total;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::{Ipv4Addr, Shutdown};
    use std::sync::OnceLock;

    use super::*;

    /// One server for the tests of this module, on loopback ports the
    /// kernel picked: (HTTP, echo).
    fn server() -> (SocketAddr, SocketAddr) {
        static ADDRS: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();
        *ADDRS.get_or_init(|| {
            let http = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let echo = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let addrs = (http.local_addr().unwrap(), echo.local_addr().unwrap());
            std::thread::spawn(move || {
                static CONFIG: OnceLock<Config> = OnceLock::new();
                let config = CONFIG.get_or_init(Config::for_tests);
                serve(vec![(http, Protocol::Http), (echo, Protocol::Echo)], config).unwrap();
            });
            addrs
        })
    }

    /// Reads one answer: its head lines and its body.
    fn read_answer(reader: &mut BufReader<TcpStream>) -> (Vec<String>, String) {
        let mut head = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("Content-Length: ") {
                length = value.parse().unwrap();
            }
            head.push(line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (head, String::from_utf8(body).unwrap())
    }

    #[test]
    fn answers_pipelined_requests_in_order_and_closes_when_asked() {
        let (http, _) = server();
        let mut stream = TcpStream::connect(http).unwrap();
        let client = stream.local_addr().unwrap();
        // Three requests in one write, the second with a body, the last
        // asking to close.
        stream
            .write_all(
                b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
                  POST /second HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody\
                  GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let (head, body) = read_answer(&mut reader);
        assert_eq!(head[0], "HTTP/1.1 200 OK");
        assert_eq!(
            body,
            format!(
                "{{\"client\":\"{client}\",\"hostname\":\"pod-a\",\"podIP\":\"127.0.0.1\",\"path\":\"/first\"}}\n"
            )
        );
        let (_, body) = read_answer(&mut reader);
        assert!(body.contains("\"path\":\"/second\""), "{body}");
        let (head, body) = read_answer(&mut reader);
        assert!(head.iter().any(|h| h == "Connection: close"), "{head:?}");
        assert_eq!(body, "ok\n");
        let mut rest = Vec::new();
        assert_eq!(
            reader.read_to_end(&mut rest).unwrap(),
            0,
            "the server closes"
        );
    }

    #[test]
    fn a_request_split_over_writes_is_answered_once_complete() {
        let (http, _) = server();
        let mut stream = TcpStream::connect(http).unwrap();
        stream.write_all(b"GET /slow HTTP/1.1\r\nHo").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(b"st: x\r\n\r\n").unwrap();
        let (head, body) = read_answer(&mut BufReader::new(stream));
        assert_eq!(head[0], "HTTP/1.1 200 OK");
        assert!(body.contains("\"path\":\"/slow\""), "{body}");
    }

    #[test]
    fn echoes_more_than_the_socket_buffers_hold() {
        let (_, echo) = server();
        let stream = TcpStream::connect(echo).unwrap();
        // Far more than both sockets' buffers: the server must stop
        // reading while its answer cannot be written, then go on.
        let sent: Vec<u8> = (0..16 * 1024 * 1024)
            .map(|i: u32| (i % 251) as u8)
            .collect();
        let mut writer = stream.try_clone().unwrap();
        let payload = sent.clone();
        let sender = std::thread::spawn(move || {
            writer.write_all(&payload).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        // The client reads only after a while, so the server's writes
        // block first.
        std::thread::sleep(Duration::from_millis(200));
        let mut received = Vec::new();
        (&stream).read_to_end(&mut received).unwrap();
        sender.join().unwrap();
        assert_eq!(received.len(), sent.len());
        assert!(received == sent, "the echoed bytes differ");
    }

    #[test]
    fn serves_many_connections_at_once() {
        let (http, _) = server();
        let streams: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(http).unwrap()).collect();
        for (i, mut stream) in streams.iter().enumerate() {
            write!(stream, "GET /{i} HTTP/1.1\r\n\r\n").unwrap();
        }
        for (i, stream) in streams.into_iter().enumerate() {
            let (_, body) = read_answer(&mut BufReader::new(stream));
            assert!(body.contains(&format!("\"path\":\"/{i}\"")), "{body}");
        }
    }
}
