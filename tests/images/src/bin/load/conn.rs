//! One client connection of the load generator: a non-blocking TCP socket
//! that connects, sends a GET, reads the whole answer and either sends the
//! next request (keep-alive) or waits for the server's close (one request
//! per connection), driven by edge-triggered epoll events.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, connect, getsockopt, setsockopt, socket, sockopt,
};

/// Where a connection is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The SYN is out; the next writable event tells how it went.
    Connecting,
    /// Sending the request; `written` bytes are out.
    Writing { written: usize },
    /// The request is out; the answer is being read.
    Reading,
    /// One request per connection: the answer is complete, the server's
    /// FIN is awaited so the server, not the client, holds TIME_WAIT.
    Draining,
    /// Connected, no request outstanding (its target is not the one being
    /// loaded).
    Idle,
    /// No socket.
    Closed,
}

/// What driving a connection produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Answers completed, each with its latency in µs and whether its
    /// status was 200.
    pub answers: Vec<(u32, bool)>,
    /// Connects that failed, and connections that broke mid-request.
    pub errors: u32,
}

pub struct Connection {
    pub target: usize,
    pub phase: Phase,
    stream: Option<TcpStream>,
    /// When the measured exchange began: the request's first byte on a
    /// kept-alive connection, the connect otherwise.
    started: Instant,
    input: Vec<u8>,
    filled: usize,
}

/// Size of the answer buffer; the echo server's answers are far smaller.
const INPUT: usize = 4096;

impl Connection {
    pub fn new(target: usize) -> Self {
        Self {
            target,
            phase: Phase::Closed,
            stream: None,
            started: Instant::now(),
            input: vec![0; INPUT],
            filled: 0,
        }
    }

    /// The socket, to register with epoll.
    pub fn socket(&self) -> Option<BorrowedFd<'_>> {
        self.stream.as_ref().map(AsFd::as_fd)
    }

    /// Opens a non-blocking socket to `addr` and starts connecting; the
    /// caller registers [`Self::socket`] with epoll.
    pub fn open(&mut self, addr: SocketAddrV4) -> io::Result<()> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
        self.started = Instant::now();
        match connect(fd.as_raw_fd(), &SockaddrIn::from(addr)) {
            Ok(()) | Err(Errno::EINPROGRESS) => {}
            Err(err) => return Err(err.into()),
        }
        self.stream = Some(TcpStream::from(fd));
        self.phase = Phase::Connecting;
        Ok(())
    }

    /// Drops the socket (epoll forgets a closed descriptor by itself).
    pub fn close(&mut self) {
        self.stream = None;
        self.phase = Phase::Closed;
    }

    /// Starts the next request on an idle connection.
    pub fn start_request(&mut self) {
        if self.phase == Phase::Idle {
            self.started = Instant::now();
            self.phase = Phase::Writing { written: 0 };
        }
    }

    /// Makes all the progress the socket allows. `request` is what to
    /// send; `keep_alive` whether to send it again after an answer, which
    /// `active` (the target being loaded is this one's) also decides.
    pub fn drive(&mut self, request: &[u8], keep_alive: bool, active: bool) -> Progress {
        let mut progress = Progress::default();
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return progress;
            };
            match self.phase {
                Phase::Connecting => match getsockopt(&stream.as_fd(), sockopt::SocketError) {
                    Ok(0) => {
                        // Still in progress unless the peer is known.
                        if stream.peer_addr().is_err() {
                            return progress;
                        }
                        self.phase = if keep_alive && !active {
                            Phase::Idle
                        } else {
                            Phase::Writing { written: 0 }
                        };
                        if keep_alive {
                            self.started = Instant::now();
                        }
                    }
                    _ => {
                        progress.errors += 1;
                        self.close();
                    }
                },
                Phase::Writing { written } => match stream.write(&request[written..]) {
                    Ok(n) if written + n == request.len() => {
                        self.filled = 0;
                        self.phase = Phase::Reading;
                    }
                    Ok(n) => {
                        self.phase = Phase::Writing {
                            written: written + n,
                        }
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => return progress,
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        progress.errors += 1;
                        self.close();
                    }
                },
                Phase::Reading => match stream.read(&mut self.input[self.filled..]) {
                    Ok(0) => {
                        progress.errors += 1;
                        self.close();
                    }
                    Ok(n) => {
                        self.filled += n;
                        match answer(&self.input[..self.filled]) {
                            Answer::Partial if self.filled == self.input.len() => {
                                progress.errors += 1;
                                self.close();
                            }
                            Answer::Partial => {}
                            Answer::Malformed => {
                                progress.errors += 1;
                                self.close();
                            }
                            Answer::Complete { ok } => {
                                let micros = self.started.elapsed().as_micros();
                                progress
                                    .answers
                                    .push((u32::try_from(micros).unwrap_or(u32::MAX), ok));
                                if !keep_alive {
                                    self.phase = Phase::Draining;
                                } else if active {
                                    self.started = Instant::now();
                                    self.phase = Phase::Writing { written: 0 };
                                } else {
                                    self.phase = Phase::Idle;
                                }
                            }
                        }
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => return progress,
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        progress.errors += 1;
                        self.close();
                    }
                },
                Phase::Draining => match stream.read(&mut self.input) {
                    Ok(0) => self.close(),
                    Ok(_) => {}
                    Err(err) if err.kind() == ErrorKind::WouldBlock => return progress,
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    // A reset after a complete answer costs nothing.
                    Err(_) => self.close(),
                },
                Phase::Idle | Phase::Closed => return progress,
            }
        }
    }
}

/// How far an answer has arrived.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Partial,
    Complete { ok: bool },
    Malformed,
}

/// Reads an HTTP/1.1 answer with a `Content-Length` from `bytes`.
fn answer(bytes: &[u8]) -> Answer {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Answer::Partial;
    };
    let head = &bytes[..end];
    let Some(status) = head.get(9..12) else {
        return Answer::Malformed;
    };
    if !head.starts_with(b"HTTP/1.") {
        return Answer::Malformed;
    }
    let mut length = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line[..colon].eq_ignore_ascii_case(b"content-length") {
            length = std::str::from_utf8(&line[colon + 1..])
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
        }
    }
    let Some(length) = length else {
        return Answer::Malformed;
    };
    if bytes.len() < end + 4 + length {
        return Answer::Partial;
    }
    Answer::Complete {
        ok: status == b"200",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_complete_only_with_their_whole_body() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
        assert_eq!(answer(full), Answer::Complete { ok: true });
        assert_eq!(answer(&full[..full.len() - 1]), Answer::Partial);
        assert_eq!(answer(&full[..20]), Answer::Partial);
        let unavailable = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(answer(unavailable), Answer::Complete { ok: false });
        assert_eq!(answer(b"SSH-2.0\r\n\r\n"), Answer::Malformed);
        assert_eq!(
            answer(b"HTTP/1.1 200 OK\r\n\r\n"),
            Answer::Malformed,
            "no length"
        );
    }
}
