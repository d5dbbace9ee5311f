//! Pinned maps keep their contents when the dataplane is dropped and loaded
//! again (a restart of baton-node), and a pin with another layout is refused.
//! Each test mounts its own bpffs instance in a temp dir; the host's
//! /sys/fs/bpf is not used. Needs root.

mod support;

use aya::maps::{MapData, PerCpuHashMap};
use baton_abi::{Direction, METRICS_MAP_NAME, MetricsKey, MetricsValue};
use baton_node::{
    dataplane::{Dataplane, DataplaneError, Hook, LoadOptions, PinError},
    sys::test_run::TestRun,
};
use support::{Bpffs, frames};

fn ingress_forwarded(dataplane: &Dataplane) -> MetricsValue {
    dataplane
        .metrics()
        .unwrap_or_else(|error| panic!("{error}"))
        .get(MetricsKey::forwarded(Direction::Ingress))
}

fn run_frames(dataplane: &Dataplane, frame: &[u8], count: u32) {
    dataplane
        .test_run(Hook::UplinkIngress, &TestRun::new(frame).repeat(count))
        .unwrap_or_else(|error| panic!("{error}"));
}

#[test]
fn counters_in_pinned_maps_survive_a_reload() {
    baton_e2e::assert_root();
    let bpffs = Bpffs::mount("reload");
    let pin_dir = bpffs.path().join("node-1");
    let options = LoadOptions::new().pin_dir(&pin_dir);
    let frame = frames::ipv4_udp(4000, 53, b"state");
    let len = frame.len() as u64;

    let first = Dataplane::load(&options).unwrap_or_else(|error| panic!("{error}"));
    assert!(
        pin_dir.join(METRICS_MAP_NAME).exists(),
        "metrics map not pinned"
    );
    run_frames(&first, &frame, 3);
    assert_eq!(
        ingress_forwarded(&first),
        MetricsValue {
            packets: 3,
            bytes: 3 * len
        }
    );
    drop(first);

    // The process's map fds are gone; only the pin keeps the map alive.
    let second = Dataplane::load(&options).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        ingress_forwarded(&second),
        MetricsValue {
            packets: 3,
            bytes: 3 * len
        },
        "counters lost across reload"
    );
    // The reloaded programs keep counting into the same map.
    run_frames(&second, &frame, 2);
    assert_eq!(
        ingress_forwarded(&second),
        MetricsValue {
            packets: 5,
            bytes: 5 * len
        }
    );

    // Without a pin directory a load starts from empty maps: what survived
    // above survived because of the pin.
    let unpinned = Dataplane::load(&LoadOptions::new()).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(ingress_forwarded(&unpinned), MetricsValue::default());
}

#[test]
fn a_pin_with_another_layout_is_refused_not_reused() {
    baton_e2e::assert_root();
    let bpffs = Bpffs::mount("layout");
    let pin = bpffs.path().join(METRICS_MAP_NAME);
    // A metrics map as an older build might have left it: 4-byte keys and
    // 8-byte values.
    let stale = PerCpuHashMap::<MapData, u32, u64>::create(64, 0).unwrap();
    stale.pin(&pin).unwrap();

    let error = Dataplane::load(&LoadOptions::new().pin_dir(bpffs.path())).unwrap_err();

    match &error {
        DataplaneError::Pin(PinError::Incompatible {
            name,
            expected,
            found,
            ..
        }) => {
            assert_eq!(*name, METRICS_MAP_NAME);
            assert_eq!(found.key_size, 4, "{error}");
            assert_eq!(
                expected.key_size as usize,
                size_of::<MetricsKey>(),
                "{error}"
            );
        }
        other => panic!("expected an incompatible-pin error, got {other}"),
    }
    assert!(pin.exists(), "the stale pin must be left for the operator");
}

#[test]
fn a_pin_directory_off_bpffs_is_refused() {
    baton_e2e::assert_root();
    let dir = tempfile::tempdir().unwrap();
    let error = Dataplane::load(&LoadOptions::new().pin_dir(dir.path())).unwrap_err();
    assert!(
        matches!(error, DataplaneError::Pin(PinError::NotBpffs { .. })),
        "{error}"
    );
}
