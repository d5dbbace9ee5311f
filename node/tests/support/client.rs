//! Clients in a namespace, run from the test process: sockets are created
//! on a thread inside the namespace (a socket keeps the namespace it was
//! made in) and used from there.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddrV4, TcpStream, UdpSocket},
    time::Duration,
};

use baton_e2e::OwnedNetns;

const TIMEOUT: Duration = Duration::from_secs(3);

/// An open TCP connection to a backend server (see `servers`).
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Name of the backend that answered.
    pub backend: String,
    /// The client address the backend saw.
    pub seen_client: String,
}

impl Connection {
    /// Connects from `netns` to `addr` and reads the greeting.
    pub fn open(netns: &OwnedNetns, addr: SocketAddrV4) -> std::io::Result<Self> {
        let stream = netns.run_in(|| TcpStream::connect_timeout(&addr.into(), TIMEOUT))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut greeting = String::new();
        reader.read_line(&mut greeting)?;
        let mut parts = greeting.split_whitespace();
        let backend = parts.next().unwrap_or_default().to_owned();
        let seen_client = parts.next().unwrap_or_default().to_owned();
        Ok(Self {
            reader,
            writer,
            backend,
            seen_client,
        })
    }

    /// Sends a line and reads the echo.
    pub fn echo(&mut self, text: &str) -> std::io::Result<String> {
        self.writer.write_all(format!("{text}\n").as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        Ok(line.trim_end().to_owned())
    }
}

/// Sends a datagram from `netns` to `addr`; returns the answer and where it
/// came from.
pub fn udp(
    netns: &OwnedNetns,
    addr: SocketAddrV4,
    payload: &str,
) -> std::io::Result<(String, std::net::SocketAddr)> {
    let socket = netns.run_in(|| UdpSocket::bind("0.0.0.0:0"))?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.send_to(payload.as_bytes(), addr)?;
    let mut buf = [0u8; 512];
    let (len, from) = socket.recv_from(&mut buf)?;
    Ok((String::from_utf8_lossy(&buf[..len]).into_owned(), from))
}
