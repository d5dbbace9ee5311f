//! HTTP/1.1 as the echo server speaks it: the head of a request parsed
//! just far enough to answer it, and the answer.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use crate::Config;

/// One parsed request head: what the response depends on.
pub struct Request {
    pub path_start: usize,
    pub path_end: usize,
    /// Bytes of body that follow the head.
    pub body_len: usize,
    pub close: bool,
}

/// Parses the head of the first request in `data`, if it is complete.
pub fn parse_head(data: &[u8]) -> Option<(usize, Request)> {
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

/// Appends the answer to a request for `path` to `out`; `body` is scratch
/// space.
pub fn respond(
    out: &mut Vec<u8>,
    body: &mut String,
    path: &str,
    peer: SocketAddr,
    local_ip: &dyn Display,
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
        let config = Config::for_tests();
        let (mut out, mut body) = (Vec::new(), String::new());
        let peer: SocketAddr = "10.244.1.7:4000".parse().unwrap();
        respond(
            &mut out,
            &mut body,
            "/x",
            peer,
            &"10.244.2.9",
            &config,
            false,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with(
            "{\"client\":\"10.244.1.7:4000\",\"hostname\":\"pod-a\",\"podIP\":\"10.244.2.9\",\"path\":\"/x\"}\n"
        ), "{text}");
        let mut out = Vec::new();
        respond(&mut out, &mut body, "/healthz", peer, &"ip", &config, true);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("Connection: close") && text.ends_with("ok\n"),
            "{text}"
        );
    }
}
