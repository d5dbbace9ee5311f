//! How fast the machine is when a run starts. Runs of the same code on
//! this machine differ by a factor of two between hours, and every process
//! then needs more CPU for the same work. Two fixed loads, timed just
//! before the pods are created, make runs comparable: plain computation
//! (SHA-256 of 128 MiB on one core) and what starting containers is made
//! of (100 process spawns, one after the other).

use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest as _, Sha256};

const HASHED_MIB: usize = 128;
const SPAWNS: usize = 100;

/// The seconds each load took.
pub fn speed() -> serde_json::Value {
    let block = vec![0x5a_u8; 1 << 20];
    let start = Instant::now();
    let mut hasher = Sha256::new();
    for _ in 0..HASHED_MIB {
        hasher.update(&block);
    }
    std::hint::black_box(hasher.finalize());
    let hashing = start.elapsed().as_secs_f64();

    let start = Instant::now();
    for _ in 0..SPAWNS {
        let status = Command::new("true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running true");
        assert!(status.success(), "true failed: {status}");
    }
    let spawning = start.elapsed().as_secs_f64();
    serde_json::json!({
        "hash_128_mib_seconds": (hashing * 1000.0).round() / 1000.0,
        "spawn_100_seconds": (spawning * 1000.0).round() / 1000.0,
    })
}
