//! A two-node network in namespaces, routed by the dataplane:
//!
//! ```text
//!   fabric ns: bridge (the lab's switch; only test infrastructure)
//!     ├── client   198.18.100.2/24            (outside client)
//!     ├── node 1   uplink 198.18.100.11/24    pods 10.244.1.<n>/32
//!     └── node 2   uplink 198.18.100.12/24    pods 10.244.2.<n>/32
//! ```
//!
//! Each node namespace runs its own [`Dataplane`] with the uplink programs
//! on its uplink and the pod program on every pod's host-side veth, pod
//! routing on, SNAT to its address. Pods have a /32 address and a default
//! route via 169.254.1.1, which the pod program answers ARP for; nodes
//! have a native route per other node's pod CIDR via that node's address.
//! Every pod serves TCP and UDP on :8080 (see `servers`).

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::Path,
};

use baton_node::dataplane::{
    Dataplane, LoadOptions, NodeConfig, PodAttachment, PodEndpoint, TcMode, UplinkAttachment,
};

use baton_e2e::OwnedNetns;

use super::servers::Server;

pub const POD_PORT: u16 = 8080;
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 2);
const GATEWAY: &str = "169.254.1.1";
const UPLINK: &str = "up0";

pub struct Pod {
    pub name: String,
    pub addr: Ipv4Addr,
    pub host_iface: String,
    pub netns: OwnedNetns,
    _server: Server,
}

impl Pod {
    pub fn socket(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr, POD_PORT)
    }
}

pub struct Node {
    pub index: u8,
    pub addr: Ipv4Addr,
    // Dropped before the namespaces: detaching needs the devices.
    uplink_attachment: Option<UplinkAttachment>,
    pod_attachments: Vec<PodAttachment>,
    dataplane: Option<Dataplane>,
    pub pods: Vec<Pod>,
    pub netns: OwnedNetns,
}

impl Node {
    /// The running dataplane.
    pub fn dataplane(&mut self) -> &mut Dataplane {
        self.dataplane.as_mut().expect("dataplane running")
    }

    fn mac(netns: &OwnedNetns, iface: &str) -> [u8; 6] {
        let json = netns.ip(&["-j", "link", "show", iface]);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let text = value[0]["address"].as_str().unwrap();
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(text.split(':')) {
            *byte = u8::from_str_radix(part, 16).unwrap();
        }
        mac
    }

    fn ifindex(netns: &OwnedNetns, iface: &str) -> u32 {
        let json = netns.ip(&["-j", "link", "show", iface]);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value[0]["ifindex"].as_u64().unwrap() as u32
    }

    /// Loads a dataplane (pinned under `pin_dir` if given) and attaches
    /// everything, as baton-node does at start.
    pub fn start_dataplane(&mut self, pin_dir: Option<&Path>) {
        self.stop_dataplane();
        let options = match pin_dir {
            Some(dir) => LoadOptions::new().pin_dir(dir),
            None => LoadOptions::new(),
        };
        self.dataplane = Some(Dataplane::load(&options).unwrap_or_else(|error| panic!("{error}")));
        self.program_node();
        self.attach();
    }

    /// Drops the dataplane, as a killed baton-node would: tcx links go
    /// with it, pinned maps stay.
    pub fn stop_dataplane(&mut self) {
        self.uplink_attachment = None;
        self.pod_attachments.clear();
        self.dataplane = None;
    }

    fn program_node(&mut self) {
        let uplink_index = Self::ifindex(&self.netns, UPLINK);
        let endpoints: Vec<PodEndpoint> = self
            .pods
            .iter()
            .map(|pod| PodEndpoint {
                addr: pod.addr,
                host_ifindex: Self::ifindex(&self.netns, &pod.host_iface),
                pod_mac: Self::mac(&pod.netns, "eth0"),
                host_mac: Self::mac(&self.netns, &pod.host_iface),
                identity: 0,
            })
            .collect();
        let addr = self.addr;
        let node = self.dataplane().node();
        node.set_local_addresses(&[(addr, uplink_index)]).unwrap();
        node.set_config(&NodeConfig {
            snat_addr: Some(addr),
            route_pods: true,
            ..NodeConfig::default()
        })
        .unwrap();
        for endpoint in &endpoints {
            node.register_endpoint(endpoint).unwrap();
        }
    }

    fn attach(&mut self) {
        let dataplane = self.dataplane.as_mut().expect("dataplane running");
        let pods = &self.pods;
        let (uplink, pod_attachments) = self.netns.run_in(|| {
            let uplink = dataplane
                .attach_uplink(UPLINK, TcMode::Auto)
                .unwrap_or_else(|error| panic!("{error}"));
            let pods: Vec<PodAttachment> = pods
                .iter()
                .map(|pod| {
                    dataplane
                        .attach_pod(&pod.host_iface, TcMode::Auto)
                        .unwrap_or_else(|error| panic!("{error}"))
                })
                .collect();
            (uplink, pods)
        });
        self.uplink_attachment = Some(uplink);
        self.pod_attachments = pod_attachments;
    }
}

pub struct Fabric {
    pub nodes: Vec<Node>,
    pub client: OwnedNetns,
    pub fabric: OwnedNetns,
}

impl Fabric {
    /// Two nodes with `pods` pods each; node 1's maps are pinned under
    /// `pin_dir` if given.
    pub fn create(tag: &str, pods: u8, pin_dir: Option<&Path>) -> Self {
        baton_e2e::assert_root();
        let fabric = OwnedNetns::create(&format!("{tag}-f"));
        fabric.ip(&["link", "add", "br0", "type", "bridge"]);
        fabric.ip(&["link", "set", "br0", "up"]);

        let client = OwnedNetns::create(&format!("{tag}-c"));
        plug(&fabric, "cl", &client, "eth0", &format!("{CLIENT_ADDR}/24"));

        let mut nodes = Vec::new();
        for index in 1..=2u8 {
            let netns = OwnedNetns::create(&format!("{tag}-n{index}"));
            netns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
            let addr = Ipv4Addr::new(198, 18, 100, 10 + index);
            plug(
                &fabric,
                &format!("n{index}"),
                &netns,
                UPLINK,
                &format!("{addr}/24"),
            );
            let other = 3 - index;
            netns.ip(&[
                "route",
                "add",
                &format!("10.244.{other}.0/24"),
                "via",
                &format!("198.18.100.{}", 10 + other),
            ]);
            let mut node_pods = Vec::new();
            for n in 1..=pods {
                node_pods.push(create_pod(tag, &netns, index, n));
            }
            let mut node = Node {
                index,
                addr,
                dataplane: None,
                uplink_attachment: None,
                pod_attachments: Vec::new(),
                pods: node_pods,
                netns,
            };
            node.start_dataplane(if index == 1 { pin_dir } else { None });
            nodes.push(node);
        }
        Self {
            nodes,
            client,
            fabric,
        }
    }

    pub fn node(&mut self, index: u8) -> &mut Node {
        &mut self.nodes[usize::from(index - 1)]
    }

    pub fn pod(&self, node: u8, pod: u8) -> &Pod {
        &self.nodes[usize::from(node - 1)].pods[usize::from(pod - 1)]
    }
}

/// A veth from the fabric bridge into `netns` as `iface` with `cidr`.
fn plug(fabric: &OwnedNetns, fabric_side: &str, netns: &OwnedNetns, iface: &str, cidr: &str) {
    fabric.ip(&[
        "link",
        "add",
        fabric_side,
        "type",
        "veth",
        "peer",
        "name",
        iface,
        "netns",
        netns.name(),
    ]);
    fabric.ip(&["link", "set", fabric_side, "master", "br0", "up"]);
    netns.ip(&["addr", "add", cidr, "dev", iface]);
    netns.ip(&["link", "set", iface, "up"]);
}

fn create_pod(tag: &str, node: &OwnedNetns, node_index: u8, n: u8) -> Pod {
    let netns = OwnedNetns::create(&format!("{tag}-p{node_index}{n}"));
    let host_iface = format!("lxc{node_index}{n}");
    let addr = Ipv4Addr::new(10, 244, node_index, n + 1);
    node.ip(&[
        "link",
        "add",
        &host_iface,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        netns.name(),
    ]);
    node.ip(&["link", "set", &host_iface, "up"]);
    // The node's own traffic to the pod goes straight to its veth.
    node.ip(&["route", "add", &format!("{addr}/32"), "dev", &host_iface]);
    netns.ip(&["addr", "add", &format!("{addr}/32"), "dev", "eth0"]);
    netns.ip(&["link", "set", "eth0", "up"]);
    netns.ip(&["route", "add", GATEWAY, "dev", "eth0", "scope", "link"]);
    netns.ip(&["route", "add", "default", "via", GATEWAY, "dev", "eth0"]);
    let name = format!("pod{node_index}{n}");
    let server = Server::start(&netns, SocketAddrV4::new(addr, POD_PORT), &name);
    Pod {
        name,
        addr,
        host_iface,
        netns,
        _server: server,
    }
}
