//! Readiness checks: wait until something accepts connections inside a
//! namespace, failing early (with its log) if the process meant to serve
//! it has exited.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::netns::{Netns, NetnsError};
use crate::process::ProcessRecord;

const RETRY_PAUSE: Duration = Duration::from_millis(50);
const LOG_TAIL_LINES: usize = 20;

/// Why a readiness wait failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error(transparent)]
    Enter(#[from] NetnsError),
    #[error(
        "nothing accepted TCP connections on {addr} in namespace {netns} within {timeout:?} ({attempts} attempts; last error: {last_error})"
    )]
    Timeout {
        netns: String,
        addr: SocketAddr,
        timeout: Duration,
        attempts: u32,
        last_error: io::Error,
    },
    #[error("{} (pid {}) exited while waiting for {addr} in namespace {}; last lines of {}:\n{log_tail}",
        process.name, process.pid, process.netns, process.log.display())]
    ProcessExited {
        process: Box<ProcessRecord>,
        addr: SocketAddr,
        log_tail: String,
    },
}

/// Waits until a TCP connection to `addr` from inside `netns` succeeds.
/// With `server`, gives up as soon as that process is gone. Returns how
/// long it took.
pub fn wait_tcp(
    netns: &Netns,
    addr: SocketAddr,
    timeout: Duration,
    server: Option<&ProcessRecord>,
) -> Result<Duration, ReadyError> {
    let started = Instant::now();
    let deadline = started + timeout;
    netns.enter(|| {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt_timeout =
                remaining.clamp(Duration::from_millis(1), Duration::from_millis(500));
            let last_error = match TcpStream::connect_timeout(&addr, attempt_timeout) {
                Ok(_) => {
                    tracing::debug!(%netns, %addr, attempts, "accepting");
                    return Ok(started.elapsed());
                }
                Err(err) => err,
            };
            if let Some(server) = server.filter(|s| !s.is_running()) {
                return Err(ReadyError::ProcessExited {
                    process: Box::new(server.clone()),
                    addr,
                    log_tail: log_tail(&server.log),
                });
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(ReadyError::Timeout {
                    netns: netns.name().to_owned(),
                    addr,
                    timeout,
                    attempts,
                    last_error,
                });
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    })?
}

/// The last lines of a log file, for error messages.
#[must_use]
pub fn log_tail(path: &std::path::Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(err) => format!("(cannot read log: {err})"),
    }
}
