//! Which test cluster owns which slot, shared by every process on the host.
//!
//! Under the run root (default `/run/baton-e2e`): `lock` (an `flock` taken
//! while slots are swept and claimed) and `slots/<slot>.json`, one record per
//! live test cluster naming its owner (PID + start time) and its topology.
//! A record is written before any resource of the cluster exists and removed
//! after the last one is gone, so a harness route or namespace without a
//! record of a live owner is a leftover.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::addressing::Slot;
use crate::owner::ProcessId;
use crate::topology::Topology;

/// Where test clusters keep their records and run directories by default.
pub const DEFAULT_RUN_ROOT: &str = "/run/baton-e2e";

/// Failures reading or writing slot records.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("locking {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("encoding slot record {}: {source}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One live (or dead, if its owner is gone) test cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SlotRecord {
    pub owner: ProcessId,
    pub topology: Topology,
}

impl SlotRecord {
    pub fn slot(&self) -> Slot {
        self.topology.addressing.slot()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Registry {
    root: PathBuf,
}

/// Held while slots are swept and claimed.
pub(crate) struct RegistryLock {
    _lock: Flock<File>,
}

impl Registry {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn slots_dir(&self) -> PathBuf {
        self.root.join("slots")
    }

    fn record_path(&self, slot: Slot) -> PathBuf {
        self.slots_dir().join(format!("{slot}.json"))
    }

    /// Blocks until this process holds the registry lock.
    pub fn lock(&self) -> Result<RegistryLock, RegistryError> {
        let dir = self.slots_dir();
        fs::create_dir_all(&dir).map_err(|source| RegistryError::Io {
            action: "creating",
            path: dir,
            source,
        })?;
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| RegistryError::Io {
                action: "opening",
                path: path.clone(),
                source,
            })?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, source)| RegistryError::Lock { path, source })?;
        Ok(RegistryLock { _lock: lock })
    }

    /// Every record, with the slot it is filed under. Unreadable files are
    /// returned as `None` (a write interrupted by a kill).
    pub fn records(&self, _lock: &RegistryLock) -> Vec<(Slot, Option<SlotRecord>)> {
        let Ok(dir) = fs::read_dir(self.slots_dir()) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let slot = name.to_str()?.strip_suffix(".json")?.parse().ok()?;
                let record = fs::read(entry.path())
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
                Some((slot, record))
            })
            .collect()
    }

    /// Files the record (atomically: written aside, then renamed).
    pub fn write(&self, _lock: &RegistryLock, record: &SlotRecord) -> Result<(), RegistryError> {
        let path = self.record_path(record.slot());
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| RegistryError::Encode {
            path: path.clone(),
            source,
        })?;
        let io_err = |action, path: &Path| {
            let path = path.to_owned();
            move |source| RegistryError::Io {
                action,
                path,
                source,
            }
        };
        let mut file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        file.write_all(&bytes).map_err(io_err("writing", &tmp))?;
        file.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("renaming", &tmp))?;
        Ok(())
    }

    /// Removes the record of `slot`.
    pub fn remove(&self, slot: Slot) -> Result<(), RegistryError> {
        let path = self.record_path(slot);
        match fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(RegistryError::Io {
                action: "removing",
                path,
                source: err,
            }),
            _ => Ok(()),
        }
    }
}
