//! A node namespace with backend namespaces hanging off it, each behind
//! its own veth pair, for socket-LB tests:
//!
//! ```text
//!   node (clients run here)          backend i
//!   be<i>  198.19.<i>.1/24  <-veth->  eth0  198.19.<i>.2/24, serving :8080
//! ```
//!
//! Addresses are from 198.18.0.0/15 (benchmarking range) and exist only in
//! these namespaces.

use std::net::{Ipv4Addr, SocketAddrV4};

use baton_e2e::OwnedNetns;

use super::servers::Server;

/// TCP and UDP port every backend serves.
pub const BACKEND_PORT: u16 = 8080;

pub struct Backend {
    pub name: String,
    pub addr: Ipv4Addr,
    pub netns: OwnedNetns,
    _server: Server,
}

impl Backend {
    pub fn socket(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr, BACKEND_PORT)
    }
}

pub struct Backends {
    pub node: OwnedNetns,
    pub backends: Vec<Backend>,
}

impl Backends {
    /// A node namespace and `count` backends named `b1`, `b2`, ...
    pub fn create(tag: &str, count: u8) -> Self {
        let node = OwnedNetns::create(&format!("{tag}-n"));
        let mut backends = Vec::new();
        for i in 1..=count {
            let netns = OwnedNetns::create(&format!("{tag}-b{i}"));
            let node_side = format!("be{i}");
            node.ip(&[
                "link",
                "add",
                &node_side,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                netns.name(),
            ]);
            node.ip(&[
                "addr",
                "add",
                &format!("198.19.{i}.1/24"),
                "dev",
                &node_side,
            ]);
            node.ip(&["link", "set", &node_side, "up"]);
            netns.ip(&["addr", "add", &format!("198.19.{i}.2/24"), "dev", "eth0"]);
            netns.ip(&["link", "set", "eth0", "up"]);
            netns.ip(&["route", "add", "default", "via", &format!("198.19.{i}.1")]);
            let addr = Ipv4Addr::new(198, 19, i, 2);
            let name = format!("b{i}");
            let server = Server::start(&netns, SocketAddrV4::new(addr, BACKEND_PORT), &name);
            backends.push(Backend {
                name,
                addr,
                netns,
                _server: server,
            });
        }
        Self { node, backends }
    }

    pub fn names(&self) -> Vec<String> {
        self.backends
            .iter()
            .map(|backend| backend.name.clone())
            .collect()
    }
}
