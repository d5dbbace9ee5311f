//! The tc programs on real devices: a veth between two network namespaces
//! carries real UDP traffic, and the counters read back from the metrics
//! map show the programs saw it; attachments through tcx and clsact come
//! and go cleanly; pinned links keep the programs attached across a
//! restart, are swapped in place and pruned when their device goes; pods can
//! be attached through the pins by another process. Needs root.

mod support;

use std::{
    net::{Ipv4Addr, UdpSocket},
    os::fd::AsFd,
    path::Path,
    time::Duration,
};

use aya::programs::{
    LinkOrder, ProgramError, SchedClassifier, TcAttachType, links::FdLink, tc::TcAttachOptions,
};
use baton_abi::{Direction, MetricsKey, REASON_FORWARDED};
use baton_node::dataplane::{
    self, Dataplane, Hook, LoadOptions, MetricsSnapshot, NodeState, PodEndpoint, TcBackend, TcMode,
    attach::links::{LINKS_DIR, LinkAttachError, Links},
};
use support::VethPair;

/// Datagrams sent per phase; each is echoed back by the node side.
const N: u64 = 20;
const PORT: u16 = 7777;

fn load() -> Dataplane {
    Dataplane::load(&LoadOptions::new()).unwrap_or_else(|error| panic!("{error}"))
}

fn metrics(dataplane: &Dataplane) -> MetricsSnapshot {
    dataplane
        .metrics()
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Sockets bound inside the namespaces: a socket keeps the namespace it was
/// created in, so after creation they are used from the test thread.
struct Sockets {
    node: UdpSocket,
    peer: UdpSocket,
}

impl Sockets {
    fn open(pair: &VethPair) -> Self {
        let bind = |addr: &str| {
            let socket =
                UdpSocket::bind(addr).unwrap_or_else(|error| panic!("bind {addr}: {error}"));
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            socket
        };
        let node = pair
            .node
            .run_in(|| bind(&format!("{}:{PORT}", VethPair::NODE_ADDR)));
        let peer = pair
            .peer
            .run_in(|| bind(&format!("{}:0", VethPair::PEER_ADDR)));
        Self { node, peer }
    }

    /// Sends `N` datagrams from the peer to the node, which echoes each one;
    /// asserts every datagram and every echo arrives intact.
    fn exchange(&self, phase: &str) {
        let node_addr = format!("{}:{PORT}", VethPair::NODE_ADDR);
        let mut buf = [0u8; 64];
        for i in 0..N {
            let payload = format!("{phase} {i}");
            self.peer.send_to(payload.as_bytes(), &node_addr).unwrap();
            let (len, from) = self
                .node
                .recv_from(&mut buf)
                .unwrap_or_else(|error| panic!("{phase}: datagram {i} did not arrive: {error}"));
            assert_eq!(
                &buf[..len],
                payload.as_bytes(),
                "{phase}: datagram {i} changed"
            );
            self.node.send_to(&buf[..len], from).unwrap();
            let len = self
                .peer
                .recv(&mut buf)
                .unwrap_or_else(|error| panic!("{phase}: echo {i} did not arrive: {error}"));
            assert_eq!(&buf[..len], payload.as_bytes(), "{phase}: echo {i} changed");
        }
    }
}

/// Ids of the programs tcx has on the node's uplink, per direction.
fn tcx_programs(pair: &VethPair, attach_type: TcAttachType) -> Vec<u32> {
    pair.node.run_in(|| {
        let (_, programs) = SchedClassifier::query_tcx(VethPair::NODE_IFACE, attach_type)
            .unwrap_or_else(|error| panic!("query tcx: {error}"));
        programs.iter().map(|program| program.id()).collect()
    })
}

/// `BPF_LINK_TYPE_TCX` in `enum bpf_link_type`.
const BPF_LINK_TYPE_TCX: u64 = 11;

/// Program ids of every tcx link on the machine, from `bpftool link show`:
/// an independent view (the kernel's link table) beside aya's per-device
/// query. (This bpftool predates tcx, so it prints the link type as a number
/// and cannot show the device.)
fn tcx_links() -> Vec<u64> {
    // bpftool walks the link table by id and fails, saying nothing, when a
    // link another test just removed vanishes between two steps of its
    // walk: tries a moment apart (other tests create and remove links in
    // bursts) get one consistent listing.
    let json = (0..50)
        .find_map(|attempt| {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let out = std::process::Command::new("bpftool")
                .args(["-j", "link", "show"])
                .output()
                .expect("run bpftool");
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .unwrap_or_else(|| baton_e2e::exec::stdout_of("bpftool", &["-j", "link", "show"]));
    let links: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    links
        .iter()
        .filter(|link| link["type"].as_u64() == Some(BPF_LINK_TYPE_TCX) || link["type"] == "tcx")
        .filter_map(|link| link["prog_id"].as_u64())
        .collect()
}

/// Asserts that no tcx program is left on the device and that the kernel's
/// link table holds no tcx link for `ids`. A link dies when its last file
/// descriptor closes; a process forked at that moment by another thread (the
/// test harness runs tests in parallel, and they spawn `ip`, `tc`…) holds a
/// copy of the descriptor until it execs, so removal is awaited for a
/// moment rather than sampled once.
fn assert_gone(pair: &VethPair, ids: &[u32]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let ingress = tcx_programs(pair, TcAttachType::Ingress);
        let egress = tcx_programs(pair, TcAttachType::Egress);
        let links = tcx_links();
        let left: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| links.contains(&u64::from(*id)))
            .collect();
        if ingress.is_empty() && egress.is_empty() && left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left attached: ingress {ingress:?}, egress {egress:?}, tcx links for {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn tc_filters(pair: &VethPair, direction: &str) -> String {
    pair.node.exec(
        "tc",
        &["filter", "show", "dev", VethPair::NODE_IFACE, direction],
    )
}

fn assert_counted(phase: &str, snapshot: &MetricsSnapshot) {
    // The map starts empty and the program is its only writer, so these
    // bounds can only be met if the attached programs saw the traffic: with
    // nothing attached every counter stays 0 and both assertions fail. They
    // are lower bounds because the kernel adds its own frames (ARP, IPv6
    // router solicitations) on the same device.
    let ingress = snapshot.get(MetricsKey::forwarded(Direction::Ingress));
    let egress = snapshot.get(MetricsKey::forwarded(Direction::Egress));
    assert!(
        ingress.packets >= N,
        "{phase}: ingress saw {} of {N} datagrams\n{snapshot}",
        ingress.packets
    );
    assert!(
        egress.packets >= N,
        "{phase}: egress saw {} of {N} echoes\n{snapshot}",
        egress.packets
    );
    // Ethernet + IPv4 + UDP headers are 42 bytes before any payload.
    assert!(
        ingress.bytes >= N * 42,
        "{phase}: ingress bytes {}\n{snapshot}",
        ingress.bytes
    );
    // Well-formed traffic is never counted under a drop reason.
    assert!(
        snapshot
            .iter()
            .all(|(key, _)| key.reason == REASON_FORWARDED),
        "{phase}: drop reasons counted for valid traffic\n{snapshot}"
    );
}

#[test]
fn uplink_counts_real_traffic_through_tcx_and_leaves_nothing_when_detached() {
    baton_e2e::assert_root();
    assert!(
        baton_node::dataplane::attach::tc::kernel_has_tcx(),
        "this machine's kernel (6.6+) is expected to have tcx"
    );
    let pair = VethPair::create("tcx");
    let sockets = Sockets::open(&pair);
    let mut dataplane = load();

    // Control: traffic before attaching is not counted, so the counts below
    // come from the attached programs and nothing else.
    sockets.exchange("before attach");
    assert_eq!(
        metrics(&dataplane),
        MetricsSnapshot::default(),
        "counted while not attached"
    );

    let attachment = pair.node.run_in(|| {
        dataplane
            .attach_uplink(VethPair::NODE_IFACE, TcMode::Auto)
            .unwrap_or_else(|error| panic!("{error}"))
    });
    assert_eq!(
        attachment.backend(),
        TcBackend::Tcx,
        "Auto must pick tcx on this kernel"
    );
    let ingress_id = dataplane.program_id(Hook::UplinkIngress).unwrap();
    let egress_id = dataplane.program_id(Hook::UplinkEgress).unwrap();
    assert_eq!(tcx_programs(&pair, TcAttachType::Ingress), vec![ingress_id]);
    assert_eq!(tcx_programs(&pair, TcAttachType::Egress), vec![egress_id]);
    let links = tcx_links();
    for id in [ingress_id, egress_id] {
        assert!(
            links.contains(&u64::from(id)),
            "no tcx link for program {id}: {links:?}"
        );
    }
    // tcx needs no qdisc and installs no classic filter.
    assert!(tc_filters(&pair, "ingress").trim().is_empty());

    sockets.exchange("attached");
    assert_counted("attached", &metrics(&dataplane));

    // Detaching removes both programs from the device, and counting stops.
    // The counts are taken once detached: until then the kernel's own
    // frames (ARP, IPv6 router solicitations) still pass the programs.
    pair.node.run_in(|| {
        dataplane
            .detach_uplink(attachment)
            .unwrap_or_else(|error| panic!("{error}"));
    });
    assert_gone(&pair, &[ingress_id, egress_id]);
    let detached = metrics(&dataplane);
    sockets.exchange("detached");
    assert_eq!(metrics(&dataplane), detached, "counted after detach");

    // Dropping the dataplane without detaching also leaves nothing behind:
    // tcx links die with their file descriptors.
    let _attachment = pair.node.run_in(|| {
        dataplane
            .attach_uplink(VethPair::NODE_IFACE, TcMode::Auto)
            .unwrap_or_else(|error| panic!("{error}"))
    });
    assert_eq!(tcx_programs(&pair, TcAttachType::Ingress).len(), 1);
    let ids = [
        dataplane.program_id(Hook::UplinkIngress).unwrap(),
        dataplane.program_id(Hook::UplinkEgress).unwrap(),
    ];
    drop(dataplane);
    assert_gone(&pair, &ids);
}

#[test]
fn uplink_counts_real_traffic_through_a_clsact_filter_where_tcx_is_not_used() {
    baton_e2e::assert_root();
    let pair = VethPair::create("nl");
    let sockets = Sockets::open(&pair);
    let mut dataplane = load();

    // Twice: the first attach adds the clsact qdisc, the second finds it.
    for round in ["clsact added", "clsact present"] {
        let attachment = pair.node.run_in(|| {
            dataplane
                .attach_uplink(VethPair::NODE_IFACE, TcMode::Netlink)
                .unwrap_or_else(|error| panic!("{round}: {error}"))
        });
        assert_eq!(attachment.backend(), TcBackend::Netlink);
        let qdiscs = pair
            .node
            .exec("tc", &["qdisc", "show", "dev", VethPair::NODE_IFACE]);
        assert!(
            qdiscs.contains("qdisc clsact"),
            "{round}: qdiscs:\n{qdiscs}"
        );
        let ingress = tc_filters(&pair, "ingress");
        assert!(
            ingress.contains("uplink_ingress") && ingress.contains("direct-action"),
            "{round}:\n{ingress}"
        );
        let egress = tc_filters(&pair, "egress");
        assert!(
            egress.contains("uplink_egress") && egress.contains("direct-action"),
            "{round}:\n{egress}"
        );
        assert!(
            tcx_programs(&pair, TcAttachType::Ingress).is_empty(),
            "{round}: tcx used"
        );

        let before = metrics(&dataplane);
        sockets.exchange(round);
        assert_counted(round, &metrics(&dataplane).since(&before));

        // Netlink filters are found by device index, so they are removed from
        // inside the namespace they were attached in.
        pair.node.run_in(|| {
            dataplane
                .detach_uplink(attachment)
                .unwrap_or_else(|error| panic!("{round}: {error}"));
        });
        assert!(
            tc_filters(&pair, "ingress").trim().is_empty(),
            "{round}: filter left"
        );
        assert!(
            tc_filters(&pair, "egress").trim().is_empty(),
            "{round}: filter left"
        );
    }
}

#[test]
fn pinned_links_outlive_the_dataplane_and_are_pruned_once_their_device_is_gone() {
    baton_e2e::assert_root();
    let bpffs = support::Bpffs::mount("links");
    let pins = bpffs.path().join("node");
    let pair = VethPair::create("pin");
    pair.node.ip(&[
        "link", "add", "lxca", "type", "veth", "peer", "name", "lxcb",
    ]);
    pair.node.ip(&["link", "set", "lxca", "up"]);
    let options = LoadOptions::new().pin_dir(&pins);
    let mut dataplane = Dataplane::load(&options).unwrap_or_else(|error| panic!("{error}"));
    let (uplink, pod) = pair.node.run_in(|| {
        (
            dataplane
                .attach_uplink(VethPair::NODE_IFACE, TcMode::Tcx)
                .unwrap(),
            dataplane.attach_pod("lxca", TcMode::Tcx).unwrap(),
        )
    });
    let ingress_id = dataplane.program_id(Hook::UplinkIngress).unwrap();
    let links = pins.join("links");
    let uplink_pin = links.join("uplink_ingress@uplink0");
    let pod_pin = links.join("pod_ingress@lxca");
    assert!(uplink_pin.exists() && pod_pin.exists());

    // The agent goes away without detaching: the programs stay attached.
    drop((uplink, pod));
    drop(dataplane);
    assert_eq!(tcx_programs(&pair, TcAttachType::Ingress), vec![ingress_id]);

    // The pod goes too; the next agent prunes its link and keeps the rest.
    pair.node.ip(&["link", "del", "lxca"]);
    let mut dataplane = Dataplane::load(&options).unwrap_or_else(|error| panic!("{error}"));
    assert!(!pod_pin.exists(), "the defunct link's pin is pruned");
    assert!(uplink_pin.exists());

    // Detaching removes pin and link.
    let uplink = pair.node.run_in(|| {
        dataplane
            .attach_uplink(VethPair::NODE_IFACE, TcMode::Tcx)
            .unwrap()
    });
    let new_id = dataplane.program_id(Hook::UplinkIngress).unwrap();
    assert_eq!(
        tcx_programs(&pair, TcAttachType::Ingress),
        vec![new_id],
        "swapped in place"
    );
    pair.node
        .run_in(|| dataplane.detach_uplink(uplink).unwrap());
    assert!(!uplink_pin.exists());
    assert_gone(&pair, &[ingress_id, new_id]);
}

#[test]
fn every_program_passes_the_verifier_of_this_kernel() {
    baton_e2e::assert_root();
    // Loading verifies: a program the verifier refuses fails the load.
    let dataplane = load();
    for hook in Hook::ALL {
        let id = dataplane
            .program_id(hook)
            .unwrap_or_else(|error| panic!("{hook:?}: {error}"));
        assert!(id > 0, "{hook:?}");
    }
}

/// What a process other than baton-node does to wire a pod through the
/// pins of a running node: registers the pod's endpoint and attaches the
/// pinned pod program to `host_iface` (in the calling thread's network
/// namespace) as a link pinned under `<pins>/links/`, so the link outlives
/// the calling process.
fn register_pod_through_pins(
    pins: &Path,
    endpoint: &PodEndpoint,
    host_iface: &str,
) -> Result<(), String> {
    NodeState::from_pins(pins)
        .and_then(|mut node| node.register_endpoint(endpoint))
        .map_err(|error| error.to_string())?;
    let failed = |action: &'static str| {
        move |error: ProgramError| format!("{action} the pod program for {host_iface}: {error}")
    };
    let mut program =
        SchedClassifier::from_pin(dataplane::pod_program_pin(pins)).map_err(failed("open"))?;
    let fd = program
        .fd()
        .and_then(|fd| fd.try_clone().map_err(ProgramError::from))
        .map_err(failed("open"))?;
    let mut links = Links::new(Some(pins));
    let name = format!("{}@{host_iface}", Hook::PodIngress.program_name());
    links
        .attach(&name, fd.as_fd(), || {
            let id = program
                .attach_with_options(
                    host_iface,
                    TcAttachType::Ingress,
                    TcAttachOptions::TcxOrder(LinkOrder::default()),
                )
                .map_err(failed("attach"))?;
            let link = program.take_link(id).map_err(failed("attach"))?;
            FdLink::try_from(link).map_err(|error| format!("take the link: {error}"))
        })
        .map_err(|error| match error {
            LinkAttachError::Attach(error) => error,
            LinkAttachError::Pin(error) => error.to_string(),
        })?;
    // `links` goes out of scope here: the pin keeps the link attached.
    Ok(())
}

/// Undoes [`register_pod_through_pins`]: unregisters the endpoint and
/// removes the link's pin, if any (deleting the veth also ends the link).
fn unregister_pod_through_pins(pins: &Path, addr: Ipv4Addr, host_iface: &str) {
    NodeState::from_pins(pins)
        .and_then(|mut node| node.unregister_endpoint(addr))
        .unwrap_or_else(|error| panic!("{error}"));
    let pin = pins
        .join(LINKS_DIR)
        .join(format!("{}@{host_iface}", Hook::PodIngress.program_name()));
    match std::fs::remove_file(&pin) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => panic!("remove {}: {error}", pin.display()),
    }
}

#[test]
fn another_process_can_attach_pods_through_the_pins_and_restarts_upgrade_them() {
    baton_e2e::assert_root();
    let bpffs = support::Bpffs::mount("pod-pins");
    let pins = bpffs.path().join("node");
    let pair = VethPair::create("cni");
    let options = LoadOptions::new().pin_dir(&pins);
    let dataplane = Dataplane::load(&options).unwrap_or_else(|error| panic!("{error}"));
    let endpoint = PodEndpoint {
        addr: Ipv4Addr::new(10, 244, 1, 9),
        host_ifindex: 7,
        pod_mac: [2, 0, 0, 0, 0, 9],
        host_mac: [2, 0, 0, 0, 0, 1],
        identity: 0,
    };

    // Another process wires a new pod while baton-node runs.
    pair.node
        .run_in(|| register_pod_through_pins(&pins, &endpoint, VethPair::NODE_IFACE))
        .unwrap_or_else(|error| panic!("{error}"));
    let first = dataplane.program_id(Hook::PodIngress).unwrap();
    assert_eq!(tcx_programs(&pair, TcAttachType::Ingress), vec![first]);
    let node = NodeState::from_pins(&pins).unwrap();
    assert_eq!(node.endpoints().unwrap(), vec![endpoint]);

    // A restarted baton-node upgrades the pod's link it never attached.
    drop(dataplane);
    let dataplane = Dataplane::load(&options).unwrap_or_else(|error| panic!("{error}"));
    let second = dataplane.program_id(Hook::PodIngress).unwrap();
    assert_ne!(first, second);
    assert_eq!(tcx_programs(&pair, TcAttachType::Ingress), vec![second]);

    unregister_pod_through_pins(&pins, endpoint.addr, VethPair::NODE_IFACE);
    assert!(node.endpoints().unwrap().is_empty());
    assert_gone(&pair, &[first, second]);
    drop(dataplane);
}
