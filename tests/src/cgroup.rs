//! A cgroup v2 directory one test creates for itself, removed on drop.
//! Socket programs attached to it translate only sockets of processes
//! moved into it (probes, see [`crate::probe`]), never the test harness's
//! own.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use crate::scratch;

/// Where cgroup v2 is mounted on this machine's hybrid layout.
pub const CGROUP2_ROOT: &str = "/sys/fs/cgroup/unified";

/// `<CGROUP2_ROOT>/<scratch name>`, removed on drop (also when the test
/// panics).
#[derive(Debug)]
pub struct OwnedCgroup {
    path: PathBuf,
}

impl OwnedCgroup {
    /// Creates `<CGROUP2_ROOT>/<PREFIX><pid>-<tag>`, after removing empty
    /// leftovers of dead runs; panics if it cannot.
    pub fn create(tag: &str) -> Self {
        remove_leftovers();
        let path = Path::new(CGROUP2_ROOT).join(scratch::name(tag));
        if path.exists() {
            let _ = fs::remove_dir(&path);
        }
        fs::create_dir(&path).unwrap_or_else(|error| panic!("create {}: {error}", path.display()));
        Self { path }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file a process writes its pid to in order to join.
    #[must_use]
    pub fn procs(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        // The probes are waited for before this runs; a cgroup whose last
        // process just exited can take a moment to become removable.
        for _ in 0..50 {
            if fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!("remove cgroup {}: still busy", self.path.display());
    }
}

fn remove_leftovers() {
    let Ok(entries) = fs::read_dir(CGROUP2_ROOT) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if scratch::owner_is_gone(&name) {
            // Fails (and is left) while a process of the dead run lives.
            let _ = fs::remove_dir(entry.path());
        }
    }
}
