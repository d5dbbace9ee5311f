//! Pod address allocation from the node's podCIDR, in the style of the
//! CNI `host-local` plugin: one file per allocated address, created with
//! `O_CREAT|O_EXCL` so two concurrent plugin runs can never both get it,
//! and removed on release. The files survive crashes (they are the state),
//! and baton-node reclaims what no sandbox owns any more at start-up
//! ([`Ipam::reclaim`]).
//!
//! Layout of `<data dir>/<network>/`:
//! - `<ip>`: `<container id>\n<ifname>\n` of the owner;
//! - `last_reserved_ip`: where the next search starts (round-robin, so a
//!   released address is not handed out again at once).

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

const LAST_RESERVED: &str = "last_reserved_ip";

/// An allocation failed.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no free address left in {cidr}")]
    Exhausted { cidr: Ipv4Net },
    #[error("podCIDR {cidr} is too small for pods (needs at least a /30)")]
    TooSmall { cidr: Ipv4Net },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IpamError {
    move |source| IpamError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub container_id: String,
    pub ifname: String,
}

/// An address and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: Ipv4Addr,
    pub owner: Owner,
}

/// The allocator of one network on one node.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Ipv4Net,
}

impl Ipam {
    /// Allocations of `network` from `cidr`, kept in `<data_dir>/<network>`.
    pub fn new(data_dir: &Path, network: &str, cidr: Ipv4Net) -> Result<Self, IpamError> {
        if cidr.prefix_len() > 30 {
            return Err(IpamError::TooSmall { cidr });
        }
        Ok(Self {
            dir: data_dir.join(network),
            cidr: cidr.trunc(),
        })
    }

    /// The state directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The addresses pods may get: the subnet without its network address,
    /// its broadcast address and its first host (kept for the node, as
    /// host-local's default gateway would be).
    fn range(&self) -> (u32, u32) {
        let first = u32::from(self.cidr.network()) + 2;
        let last = u32::from(self.cidr.broadcast()) - 1;
        (first, last)
    }

    /// The address held by `owner`, or a new one. Idempotent: a repeated
    /// ADD for the same container and interface gets the same address.
    pub fn allocate(&self, owner: &Owner) -> Result<Ipv4Addr, IpamError> {
        fs::create_dir_all(&self.dir).map_err(io_err("creating", &self.dir))?;
        if let Some(existing) = self.find(owner)? {
            return Ok(existing);
        }
        let (first, last) = self.range();
        let size = last - first + 1;
        let start = self
            .last_reserved()
            .map(u32::from)
            .filter(|ip| (first..=last).contains(ip))
            .map_or(first, |ip| if ip == last { first } else { ip + 1 });
        for step in 0..size {
            let candidate = first + (start - first + step) % size;
            let ip = Ipv4Addr::from(candidate);
            let path = self.dir.join(ip.to_string());
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let record = format!("{}\n{}\n", owner.container_id, owner.ifname);
                    file.write_all(record.as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(io_err("writing", &path))?;
                    // A hint only: failing to write it costs nothing but
                    // the round-robin start.
                    if let Err(err) = self.set_last_reserved(ip) {
                        tracing::warn!(%err, "could not record the last reserved address");
                    }
                    return Ok(ip);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(io_err("creating", &path)(err)),
            }
        }
        Err(IpamError::Exhausted { cidr: self.cidr })
    }

    /// Releases what `owner` holds; releasing nothing is fine (DEL is
    /// idempotent). Returns the released address.
    pub fn release(&self, owner: &Owner) -> Result<Option<Ipv4Addr>, IpamError> {
        let Some(ip) = self.find(owner)? else {
            return Ok(None);
        };
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => Ok(Some(ip)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_err("removing", &path)(err)),
        }
    }

    /// Every allocation.
    pub fn allocations(&self) -> Result<Vec<Allocation>, IpamError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(io_err("listing", &self.dir)(err)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &self.dir))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                // Released meanwhile.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(io_err("reading", &path)(err)),
            };
            let mut lines = text.lines();
            let container_id = lines.next().unwrap_or_default().to_owned();
            let ifname = lines.next().unwrap_or_default().to_owned();
            out.push(Allocation {
                ip,
                owner: Owner {
                    container_id,
                    ifname,
                },
            });
        }
        out.sort_by_key(|a| a.ip);
        Ok(out)
    }

    /// The address `owner` holds, if any.
    pub fn find(&self, owner: &Owner) -> Result<Option<Ipv4Addr>, IpamError> {
        Ok(self
            .allocations()?
            .into_iter()
            .find(|a| &a.owner == owner)
            .map(|a| a.ip))
    }

    /// Releases every allocation whose container is not in `live`
    /// (sandbox IDs the runtime still has). Returns what was released.
    pub fn reclaim(&self, live: &HashSet<String>) -> Result<Vec<Allocation>, IpamError> {
        let mut released = Vec::new();
        for allocation in self.allocations()? {
            if !live.contains(&allocation.owner.container_id) {
                let path = self.dir.join(allocation.ip.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => released.push(allocation),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_err("removing", &path)(err)),
                }
            }
        }
        Ok(released)
    }

    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.dir.join(LAST_RESERVED))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn set_last_reserved(&self, ip: Ipv4Addr) -> Result<(), IpamError> {
        // Written beside (a name unique to this allocation) and renamed,
        // so it is never torn.
        let tmp = self
            .dir
            .join(format!("{LAST_RESERVED}.tmp.{}.{ip}", std::process::id()));
        let path = self.dir.join(LAST_RESERVED);
        fs::write(&tmp, ip.to_string()).map_err(io_err("writing", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("renaming into", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(id: &str) -> Owner {
        Owner {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    fn ipam(dir: &Path, cidr: &str) -> Ipam {
        Ipam::new(dir, "baton", cidr.parse().unwrap()).unwrap()
    }

    #[test]
    fn allocates_distinct_addresses_and_is_idempotent_per_owner() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = ipam(dir.path(), "10.244.1.0/24");
        let a = ipam.allocate(&owner("a")).unwrap();
        let b = ipam.allocate(&owner("b")).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(b, Ipv4Addr::new(10, 244, 1, 3));
        assert_eq!(ipam.allocate(&owner("a")).unwrap(), a);
        assert_eq!(ipam.allocations().unwrap().len(), 2);
    }

    #[test]
    fn release_is_idempotent_and_addresses_are_not_reused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = ipam(dir.path(), "10.244.1.0/24");
        let a = ipam.allocate(&owner("a")).unwrap();
        assert_eq!(ipam.release(&owner("a")).unwrap(), Some(a));
        assert_eq!(ipam.release(&owner("a")).unwrap(), None);
        // Round-robin: the next container gets the next address.
        assert_ne!(ipam.allocate(&owner("b")).unwrap(), a);
    }

    #[test]
    fn exhaustion_is_an_error_and_wraps_around() {
        let dir = tempfile::tempdir().unwrap();
        // A /29: .2 to .6 are for pods.
        let ipam = ipam(dir.path(), "10.244.1.0/29");
        let got: Vec<Ipv4Addr> = (0..5)
            .map(|i| ipam.allocate(&owner(&format!("c{i}"))).unwrap())
            .collect();
        assert_eq!(got.first(), Some(&Ipv4Addr::new(10, 244, 1, 2)));
        assert_eq!(got.last(), Some(&Ipv4Addr::new(10, 244, 1, 6)));
        assert!(matches!(
            ipam.allocate(&owner("x")),
            Err(IpamError::Exhausted { .. })
        ));
        ipam.release(&owner("c1")).unwrap();
        assert_eq!(
            ipam.allocate(&owner("x")).unwrap(),
            Ipv4Addr::new(10, 244, 1, 3)
        );
    }

    #[test]
    fn concurrent_allocations_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = ipam(dir.path(), "10.244.1.0/24");
        let got: Vec<Ipv4Addr> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let ipam = ipam.clone();
                    s.spawn(move || ipam.allocate(&owner(&format!("c{i}"))).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: HashSet<_> = got.iter().collect();
        assert_eq!(unique.len(), 16, "{got:?}");
    }

    #[test]
    fn reclaim_releases_what_no_live_sandbox_owns() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = ipam(dir.path(), "10.244.1.0/24");
        ipam.allocate(&owner("live")).unwrap();
        let leaked = ipam.allocate(&owner("gone")).unwrap();
        let released = ipam.reclaim(&HashSet::from(["live".to_owned()])).unwrap();
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].ip, leaked);
        let left: Vec<String> = ipam
            .allocations()
            .unwrap()
            .into_iter()
            .map(|a| a.owner.container_id)
            .collect();
        assert_eq!(left, ["live"]);
    }

    #[test]
    fn tiny_cidrs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Ipam::new(dir.path(), "n", "10.0.0.0/31".parse().unwrap()).is_err());
    }
}
