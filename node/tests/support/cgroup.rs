//! A cgroup v2 directory for one test, removed on drop. Socket programs
//! attached to it translate only sockets of processes moved into it (the
//! probe processes), never the test harness's own.

use std::{
    fs,
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use super::{PREFIX, owner_is_gone};

/// Where cgroup v2 is mounted on this machine (hybrid hierarchy).
pub const CGROUP2_ROOT: &str = "/sys/fs/cgroup/unified";

pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Creates `<root>/<PREFIX><pid>-<tag>`, after removing empty leftovers
    /// of dead runs.
    pub fn create(tag: &str) -> Self {
        remove_leftovers();
        let path = Path::new(CGROUP2_ROOT).join(format!("{PREFIX}{}-{tag}", std::process::id()));
        if path.exists() {
            let _ = fs::remove_dir(&path);
        }
        fs::create_dir(&path).unwrap_or_else(|error| panic!("create {}: {error}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file a process writes its pid to in order to join.
    pub fn procs(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }
}

impl Drop for Cgroup {
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
        if owner_is_gone(&name) {
            // Fails (and is left) while a process of the dead run lives.
            let _ = fs::remove_dir(entry.path());
        }
    }
}
