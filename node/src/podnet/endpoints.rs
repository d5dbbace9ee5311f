//! Keeps the dataplane's pod endpoints in step with the endpoint records
//! `baton-cni` writes (`<dataDir>/endpoints/<ip>.json`).
//!
//! The plugin is a short-lived process run by containerd; the dataplane
//! (its maps and the tc links on pod veths, which die with the process
//! that made them under tcx) belongs to the long-lived baton-node. So the
//! plugin only records each endpoint, and baton-node reconciles: every
//! record is registered (pod IP → host ifindex, MACs) and its host veth
//! gets the pod program; a record that disappears (CNI DEL) or changes
//! (same IP, another veth) is undone. After a restart of baton-node the
//! first reconcile re-attaches every pod.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::cni::{self, ENDPOINTS_DIR, EndpointRecord};

/// Where endpoints go: the node's dataplane.
pub trait EndpointSink {
    type Error: std::error::Error;
    /// Registers the endpoint and attaches the pod program to its veth.
    fn add(&mut self, record: &EndpointRecord) -> Result<(), Self::Error>;
    /// Detaches and unregisters it.
    fn remove(&mut self, record: &EndpointRecord) -> Result<(), Self::Error>;
}

/// What one reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<Ipv4Addr>,
    pub removed: Vec<Ipv4Addr>,
    /// Records the sink refused (retried on the next reconcile).
    pub failed: Vec<(Ipv4Addr, String)>,
}

/// The reconciler: remembers what the sink has.
#[derive(Debug)]
pub struct EndpointSync {
    data_dir: PathBuf,
    applied: BTreeMap<Ipv4Addr, EndpointRecord>,
}

impl EndpointSync {
    /// Reconciles the records under `data_dir` (the CNI `dataDir`).
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            applied: BTreeMap::new(),
        }
    }

    /// Brings `sink` in line with the records on disk.
    pub fn reconcile<S: EndpointSink>(&mut self, sink: &mut S) -> io::Result<Changes> {
        let wanted: BTreeMap<Ipv4Addr, EndpointRecord> = cni::endpoints(&self.data_dir)?
            .into_iter()
            .map(|r| (r.ip, r))
            .collect();
        let mut changes = Changes::default();
        let stale: Vec<EndpointRecord> = self
            .applied
            .iter()
            .filter(|(ip, record)| wanted.get(ip) != Some(record))
            .map(|(_, record)| record.clone())
            .collect();
        for record in stale {
            match sink.remove(&record) {
                Ok(()) => changes.removed.push(record.ip),
                Err(err) => tracing::warn!(ip = %record.ip, %err, "removing a pod endpoint"),
            }
            // Gone either way: a veth that vanished takes its link along.
            self.applied.remove(&record.ip);
        }
        for (ip, record) in wanted {
            if self.applied.contains_key(&ip) {
                continue;
            }
            match sink.add(&record) {
                Ok(()) => {
                    changes.added.push(ip);
                    self.applied.insert(ip, record);
                }
                Err(err) => changes.failed.push((ip, err.to_string())),
            }
        }
        Ok(changes)
    }
}

/// Tells the reconcile when a record was written or removed: an inotify
/// watch on the records' directory. The plugin writes a record by
/// renaming it into place and removes it with an unlink, so a moved-in or
/// deleted name is every change, and a new pod's endpoint reaches the
/// dataplane as its ADD returns, while an idle node reads nothing.
#[derive(Debug)]
pub struct RecordsWatch {
    dir: PathBuf,
    inotify: Inotify,
}

/// The directory events that change the set of records.
const RECORD_EVENTS: AddWatchFlags = AddWatchFlags::IN_MOVED_TO
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_DELETE);

impl RecordsWatch {
    /// Watches the records under `data_dir` (the CNI `dataDir`), making
    /// their directory if the plugin has not yet.
    pub fn new(data_dir: &Path) -> io::Result<Self> {
        let dir = data_dir.join(ENDPOINTS_DIR);
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let watch = Self { dir, inotify };
        watch.add()?;
        Ok(watch)
    }

    fn add(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        self.inotify.add_watch(&self.dir, RECORD_EVENTS)?;
        Ok(())
    }

    /// Waits up to `timeout` for a change of the records and takes every
    /// event that arrived; whether there was one. A removed directory is
    /// made and watched again (and counts as a change).
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => return Ok(false),
            Ok(_) => {}
            Err(err) => return Err(err.into()),
        }
        let mut rewatch = false;
        loop {
            match self.inotify.read_events() {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    rewatch |= events
                        .iter()
                        .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED));
                }
                Err(Errno::EAGAIN) => break,
                Err(err) => return Err(err.into()),
            }
        }
        if rewatch {
            self.add()?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    struct Refused;

    /// Records what it holds; refuses addresses in `refuse`.
    #[derive(Default)]
    struct FakeSink {
        held: BTreeMap<Ipv4Addr, u32>,
        refuse: BTreeSet<Ipv4Addr>,
    }

    impl EndpointSink for FakeSink {
        type Error = Refused;
        fn add(&mut self, r: &EndpointRecord) -> Result<(), Refused> {
            if self.refuse.contains(&r.ip) {
                return Err(Refused);
            }
            self.held.insert(r.ip, r.host_ifindex);
            Ok(())
        }
        fn remove(&mut self, r: &EndpointRecord) -> Result<(), Refused> {
            self.held.remove(&r.ip);
            Ok(())
        }
    }

    fn record(ip: [u8; 4], ifindex: u32) -> EndpointRecord {
        EndpointRecord {
            ip: Ipv4Addr::from(ip),
            container_id: format!("c{ifindex}"),
            ifname: "eth0".into(),
            netns: "/var/run/netns/x".into(),
            host_ifname: format!("lxc{ifindex}"),
            host_ifindex: ifindex,
            host_mac: "02:00:00:00:00:01".into(),
            pod_mac: "02:00:00:00:00:02".into(),
        }
    }

    #[test]
    fn records_are_added_changed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut sync = EndpointSync::new(dir.path());
        let mut sink = FakeSink::default();
        assert_eq!(sync.reconcile(&mut sink).unwrap(), Changes::default());
        cni::write_endpoint(dir.path(), &record([10, 244, 1, 2], 7)).unwrap();
        cni::write_endpoint(dir.path(), &record([10, 244, 1, 3], 8)).unwrap();
        let changes = sync.reconcile(&mut sink).unwrap();
        assert_eq!(changes.added.len(), 2);
        assert_eq!(sink.held.len(), 2);
        // Nothing changed: nothing done.
        assert_eq!(sync.reconcile(&mut sink).unwrap(), Changes::default());
        // The same address on another veth (a new pod got it).
        cni::write_endpoint(dir.path(), &record([10, 244, 1, 2], 9)).unwrap();
        cni::remove_endpoint(dir.path(), Ipv4Addr::new(10, 244, 1, 3)).unwrap();
        let changes = sync.reconcile(&mut sink).unwrap();
        assert_eq!(
            changes.removed,
            [Ipv4Addr::new(10, 244, 1, 2), Ipv4Addr::new(10, 244, 1, 3)]
        );
        assert_eq!(changes.added, [Ipv4Addr::new(10, 244, 1, 2)]);
        assert_eq!(
            sink.held,
            BTreeMap::from([(Ipv4Addr::new(10, 244, 1, 2), 9)])
        );
    }

    #[test]
    fn the_watch_wakes_on_written_and_removed_records_only() {
        let dir = tempfile::tempdir().unwrap();
        let watch = RecordsWatch::new(dir.path()).unwrap();
        assert!(!watch.wait(Duration::from_millis(50)).unwrap());
        cni::write_endpoint(dir.path(), &record([10, 244, 1, 2], 7)).unwrap();
        assert!(watch.wait(Duration::from_secs(5)).unwrap());
        // Every event of that write was taken: nothing more to wake for.
        assert!(!watch.wait(Duration::from_millis(50)).unwrap());
        // Reading the records is no change.
        assert_eq!(cni::endpoints(dir.path()).unwrap().len(), 1);
        assert!(!watch.wait(Duration::from_millis(50)).unwrap());
        cni::remove_endpoint(dir.path(), Ipv4Addr::new(10, 244, 1, 2)).unwrap();
        assert!(watch.wait(Duration::from_secs(5)).unwrap());
        // The directory removed and made again is still watched.
        std::fs::remove_dir(dir.path().join(ENDPOINTS_DIR)).unwrap();
        assert!(watch.wait(Duration::from_secs(5)).unwrap());
        cni::write_endpoint(dir.path(), &record([10, 244, 1, 3], 8)).unwrap();
        assert!(watch.wait(Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn refused_records_are_retried() {
        let dir = tempfile::tempdir().unwrap();
        let mut sync = EndpointSync::new(dir.path());
        let mut sink = FakeSink::default();
        sink.refuse.insert(Ipv4Addr::new(10, 244, 1, 2));
        cni::write_endpoint(dir.path(), &record([10, 244, 1, 2], 7)).unwrap();
        assert_eq!(sync.reconcile(&mut sink).unwrap().failed.len(), 1);
        sink.refuse.clear();
        assert_eq!(
            sync.reconcile(&mut sink).unwrap().added,
            [Ipv4Addr::new(10, 244, 1, 2)]
        );
    }
}
