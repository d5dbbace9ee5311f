//! Named TCP and UDP backends. Each answers with its name, so a client
//! knows which backend it reached: TCP greets `<name>` then echoes lines as
//! `<name>:<line>`; UDP answers a datagram with `<name> <client address>`.
//! The sockets are created inside the backend's namespace and served by
//! threads of the test process until the server is dropped.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddrV4, TcpListener, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use baton_e2e::OwnedNetns;

pub struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Server {
    /// Serves TCP and UDP on `addr` in `netns` as `name`.
    pub fn start(netns: &OwnedNetns, addr: SocketAddrV4, name: &str) -> Self {
        let (listener, udp) = netns.run_in(|| {
            let listener =
                TcpListener::bind(addr).unwrap_or_else(|error| panic!("bind tcp {addr}: {error}"));
            let udp =
                UdpSocket::bind(addr).unwrap_or_else(|error| panic!("bind udp {addr}: {error}"));
            (listener, udp)
        });
        listener.set_nonblocking(true).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();

        let tcp_name = name.to_owned();
        let tcp_stop = stop.clone();
        threads.push(thread::spawn(move || {
            while !tcp_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let name = tcp_name.clone();
                        let stop = tcp_stop.clone();
                        thread::spawn(move || serve_tcp(stream, &name, &stop));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        }));

        let udp_name = name.to_owned();
        let udp_stop = stop.clone();
        threads.push(thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !udp_stop.load(Ordering::Relaxed) {
                if let Ok((_, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(format!("{udp_name} {from}").as_bytes(), from);
                }
            }
        }));
        Self { stop, threads }
    }
}

fn serve_tcp(stream: std::net::TcpStream, name: &str, stop: &AtomicBool) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let peer = stream
        .peer_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_default();
    let mut writer = stream.try_clone().unwrap();
    if writer
        .write_all(format!("{name} {peer}\n").as_bytes())
        .is_err()
    {
        return;
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                let reply = format!("{name}:{}\n", line.trim_end());
                if writer.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
