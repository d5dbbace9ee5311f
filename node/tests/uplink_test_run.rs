//! The uplink programs run on crafted frames with `BPF_PROG_TEST_RUN`: for
//! each frame, the verdict, the frame the program hands on, and exactly which
//! counter of the metrics map moved. Needs root.

mod support;

use baton_abi::{Direction, DropReason, MetricsKey, MetricsValue};
use baton_node::{
    dataplane::{Dataplane, DataplaneError, Hook, LoadOptions, MetricsSnapshot},
    sys::test_run::{TestRun, TestRunError},
};
use support::frames;

/// `TC_ACT_UNSPEC`: "no verdict, continue" (`TCX_NEXT` under tcx).
const TC_ACT_UNSPEC: i32 = -1;

/// What running one frame through a hook must produce.
struct Case {
    name: &'static str,
    frame: Vec<u8>,
    /// The single counter the frame must move (by one packet and the frame's
    /// length in bytes); every other counter must stay as it was.
    counted_as: Counted,
}

#[derive(Clone, Copy)]
enum Counted {
    Forwarded,
    Dropped(DropReason),
}

impl Counted {
    fn key(self, direction: Direction) -> MetricsKey {
        match self {
            Self::Forwarded => MetricsKey::forwarded(direction),
            Self::Dropped(reason) => MetricsKey::dropped(reason, direction),
        }
    }
}

fn cases() -> Vec<Case> {
    // An IPv4 header with IHL 3 (12 bytes): below the 20-byte minimum.
    let mut bad_ihl = frames::ipv4_udp(4000, 53, b"query");
    bad_ihl[frames::IPV4_OFFSET] = 0x43;

    // An IPv4 header that claims more payload than the frame carries.
    let mut datagram_cut = frames::ipv4_udp(4000, 53, &[0x55; 64]);
    datagram_cut.truncate(datagram_cut.len() - 40);

    // An IPv4 header whose IHL (15 words) claims 40 bytes of options that
    // the frame does not hold. (A frame with less than the 20 fixed bytes is
    // refused by the kernel's test-run before the program sees it; the
    // host-side parser tests cover that case.)
    let mut ipv4_options_cut = frames::ipv4_udp(4000, 53, b"");
    ipv4_options_cut[frames::IPV4_OFFSET] = 0x4f;
    ipv4_options_cut[frames::IPV4_OFFSET + 2..frames::IPV4_OFFSET + 4]
        .copy_from_slice(&60u16.to_be_bytes());

    // A TCP segment whose IPv4 header says it holds only 12 bytes of TCP.
    let mut tcp_header_cut = frames::ipv4_tcp_syn(40000, 80);
    tcp_header_cut.truncate(frames::IPV4_OFFSET + 20 + 12);
    let total_len = u16::try_from(20 + 12).unwrap().to_be_bytes();
    tcp_header_cut[frames::IPV4_OFFSET + 2..frames::IPV4_OFFSET + 4].copy_from_slice(&total_len);

    // A non-first fragment: no L4 header behind the IPv4 header, by design.
    let mut later_fragment = frames::ipv4_udp(4000, 53, &[0x66; 16]);
    later_fragment[frames::IPV4_OFFSET + 6..frames::IPV4_OFFSET + 8].copy_from_slice(&[0x00, 0x10]);

    // A short datagram padded to the 60-byte Ethernet minimum.
    let mut padded = frames::ipv4_udp(4000, 53, b"x");
    padded.resize(60, 0);

    vec![
        Case {
            name: "ipv4/tcp syn",
            frame: frames::ipv4_tcp_syn(40000, 80),
            counted_as: Counted::Forwarded,
        },
        Case {
            name: "ipv4/udp",
            frame: frames::ipv4_udp(4000, 53, b"query"),
            counted_as: Counted::Forwarded,
        },
        Case {
            name: "ipv4/icmp echo",
            frame: frames::ipv4_icmp_echo(b"ping"),
            counted_as: Counted::Forwarded,
        },
        Case {
            name: "arp request",
            frame: frames::arp_request(),
            counted_as: Counted::Forwarded,
        },
        Case {
            name: "ipv6/udp",
            frame: frames::ipv6_udp(b"query"),
            counted_as: Counted::Forwarded,
        },
        Case {
            name: "ipv4 non-first fragment",
            frame: later_fragment,
            counted_as: Counted::Forwarded,
        },
        Case {
            name: "ipv4/udp with ethernet padding",
            frame: padded,
            counted_as: Counted::Forwarded,
        },
        Case {
            name: "ipv4 header with ihl 3",
            frame: bad_ihl,
            counted_as: Counted::Dropped(DropReason::InvalidIpv4Header),
        },
        Case {
            name: "ipv4 options cut short",
            frame: ipv4_options_cut,
            counted_as: Counted::Dropped(DropReason::Truncated),
        },
        Case {
            name: "ipv4 datagram longer than the frame",
            frame: datagram_cut,
            counted_as: Counted::Dropped(DropReason::Truncated),
        },
        Case {
            name: "tcp header cut short",
            frame: tcp_header_cut,
            counted_as: Counted::Dropped(DropReason::Truncated),
        },
    ]
}

fn metrics(dataplane: &Dataplane) -> MetricsSnapshot {
    dataplane
        .metrics()
        .unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn uplink_programs_pass_every_frame_unchanged_and_count_it_by_reason_and_direction() {
    baton_e2e::assert_root();
    let dataplane = Dataplane::load(&LoadOptions::new()).unwrap_or_else(|error| panic!("{error}"));

    for (hook, direction) in [
        (Hook::UplinkIngress, Direction::Ingress),
        (Hook::UplinkEgress, Direction::Egress),
    ] {
        for case in cases() {
            let context = format!("{} on {hook:?}", case.name);
            let before = metrics(&dataplane);

            let output = dataplane
                .test_run(hook, &TestRun::new(&case.frame))
                .unwrap_or_else(|error| panic!("{context}: {error}"));

            assert_eq!(output.verdict(), TC_ACT_UNSPEC, "{context}: verdict");
            assert_eq!(output.data, case.frame, "{context}: frame changed");
            let gained = metrics(&dataplane).since(&before);
            let expected: MetricsSnapshot = [(
                case.counted_as.key(direction),
                MetricsValue {
                    packets: 1,
                    bytes: case.frame.len() as u64,
                },
            )]
            .into_iter()
            .collect();
            assert_eq!(gained, expected, "{context}: counters moved\n{gained}");
        }
    }
}

#[test]
fn a_frame_shorter_than_an_ethernet_header_never_reaches_the_program() {
    baton_e2e::assert_root();
    let dataplane = Dataplane::load(&LoadOptions::new()).unwrap_or_else(|error| panic!("{error}"));
    let frame = &frames::ipv4_udp(4000, 53, b"")[..13];
    let before = metrics(&dataplane);

    // The kernel refuses to build an skb without a whole Ethernet header
    // (as a NIC driver would drop such a runt), so the program's own
    // truncation check for this case can only be shown by the host-side
    // parser tests.
    let error = dataplane
        .test_run(Hook::UplinkIngress, &TestRun::new(frame))
        .unwrap_err();
    match &error {
        DataplaneError::TestRun {
            source: TestRunError::Syscall(syscall),
            ..
        } => {
            assert_eq!(syscall.source.raw_os_error(), Some(libc::EINVAL), "{error}");
        }
        other => panic!("expected EINVAL from the kernel, got {other}"),
    }
    assert_eq!(metrics(&dataplane), before, "nothing may be counted");
}

#[test]
fn repeated_runs_count_every_repetition() {
    baton_e2e::assert_root();
    let dataplane = Dataplane::load(&LoadOptions::new()).unwrap_or_else(|error| panic!("{error}"));
    let frame = frames::ipv4_udp(4000, 53, b"again");

    let output = dataplane
        .test_run(Hook::UplinkEgress, &TestRun::new(&frame).repeat(100))
        .unwrap_or_else(|error| panic!("{error}"));

    assert_eq!(output.verdict(), TC_ACT_UNSPEC);
    assert_eq!(
        metrics(&dataplane).get(MetricsKey::forwarded(Direction::Egress)),
        MetricsValue {
            packets: 100,
            bytes: 100 * frame.len() as u64
        }
    );
}
