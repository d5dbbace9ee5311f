//! The BPF links the dataplane attached (tcx and cgroup), held by the
//! [`crate::dataplane::Dataplane`] so that dropping it closes them.
//!
//! With a pin directory, every link is also pinned as
//! `<pin dir>/links/<program>@<target>`. A pinned link stays attached when
//! baton-node exits or is killed, so traffic keeps being translated and
//! routed by the last programs while it is down. When baton-node attaches
//! the same program to the same target again, the pinned link is reopened
//! and the new program swapped into it atomically (`BPF_LINK_UPDATE`): no
//! moment without a program, so no packet of an established flow meets the
//! bare kernel stack (which would answer it with an RST). A pinned link
//! whose device or cgroup is gone is defunct; its pin is removed and a new
//! link is made.
//!
//! Without a pin directory, links live exactly as long as the dataplane.

use std::{
    collections::HashMap,
    fs, io,
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
};

use aya::programs::links::{FdLink, PinnedLink};
use tracing::{debug, warn};

use crate::sys::{SyscallError, link};

/// Directory under the pin directory that holds link pins.
pub const LINKS_DIR: &str = "links";

/// Pinning or reusing a link failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkPinError {
    /// The link could not be pinned.
    #[error("pin link {path}: {source}")]
    Pin {
        path: PathBuf,
        #[source]
        source: Box<aya::pin::PinError>,
    },
    /// The links directory could not be created, or a pin removed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A pinned link could not be reopened.
    #[error("reopen pinned link {path}: {source}")]
    Reopen {
        path: PathBuf,
        #[source]
        source: SyscallError,
    },
}

/// How a held link is kept open.
#[derive(Debug)]
enum Held {
    /// Made by this process, not pinned.
    Owned(FdLink),
    /// Made by this process and pinned at `path`.
    Pinned { link: PinnedLink, path: PathBuf },
    /// Reopened from a pin left by an earlier process.
    Reopened { fd: OwnedFd, pin: PathBuf },
}

/// A handle on a held link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkRef(u64);

/// Every link the dataplane holds.
#[derive(Debug)]
pub struct Links {
    dir: Option<PathBuf>,
    next: u64,
    held: HashMap<u64, Held>,
}

impl Links {
    /// Links pinned under `<pin dir>/links` if `pin_dir` is given.
    pub fn new(pin_dir: Option<&Path>) -> Self {
        Self {
            dir: pin_dir.map(|dir| dir.join(LINKS_DIR)),
            next: 0,
            held: HashMap::new(),
        }
    }

    /// Removes pins of links whose device or cgroup is gone (a pod deleted
    /// while no agent ran): nothing can use them again. Returns how many.
    pub fn prune_defunct(&self) -> Result<usize, LinkPinError> {
        let Some(dir) = &self.dir else {
            return Ok(0);
        };
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(LinkPinError::Io {
                    action: "list",
                    path: dir.clone(),
                    source,
                });
            }
        };
        let mut pruned = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let alive = link::open_pinned(&path).and_then(|fd| link::target_alive(fd.as_fd()));
            if matches!(alive, Ok(false)) {
                fs::remove_file(&path).map_err(|source| LinkPinError::Io {
                    action: "remove defunct link pin",
                    path: path.clone(),
                    source,
                })?;
                debug!(link = %path.display(), "defunct link pin removed");
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// Swaps the current programs into every pinned link: a pin named
    /// `<program>@<target>` gets the program of that name from `programs`.
    /// Run at load, so links this process will not attach itself (pods
    /// attached by baton-cni, say) run the new programs too. Failures are
    /// logged: the link keeps its old program.
    pub fn refresh_all(&self, programs: &[(&str, std::os::fd::BorrowedFd<'_>)]) -> usize {
        let Some(dir) = &self.dir else {
            return 0;
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return 0;
        };
        let mut refreshed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some((name, _)) = file.split_once('@') else {
                continue;
            };
            let Some((_, program)) = programs.iter().find(|(program, _)| *program == name) else {
                continue;
            };
            match link::open_pinned(&path).and_then(|fd| link::update(fd.as_fd(), *program)) {
                Ok(()) => refreshed += 1,
                Err(error) => warn!(link = %path.display(), %error, "pinned link not refreshed"),
            }
        }
        refreshed
    }

    fn insert(&mut self, held: Held) -> LinkRef {
        self.next += 1;
        self.held.insert(self.next, held);
        LinkRef(self.next)
    }

    /// Attaches `program` (its fd) under `name` (`<program>@<target>`):
    /// reuses the pinned link of that name if there is a live one, else
    /// calls `attach` for a new link and pins it.
    pub fn attach<E>(
        &mut self,
        name: &str,
        program: std::os::fd::BorrowedFd<'_>,
        attach: impl FnOnce() -> Result<FdLink, E>,
    ) -> Result<LinkRef, LinkAttachError<E>> {
        let Some(dir) = &self.dir else {
            let link = attach().map_err(LinkAttachError::Attach)?;
            return Ok(self.insert(Held::Owned(link)));
        };
        let path = dir.join(name);
        if path.exists() {
            match link::open_pinned(&path)
                .and_then(|fd| link::update(fd.as_fd(), program).map(|()| fd))
            {
                Ok(fd) => {
                    debug!(link = %path.display(), "pinned link reused, program replaced");
                    return Ok(self.insert(Held::Reopened { fd, pin: path }));
                }
                Err(error) => {
                    warn!(link = %path.display(), %error, "stale pinned link replaced");
                    fs::remove_file(&path).map_err(|source| {
                        LinkAttachError::Pin(LinkPinError::Io {
                            action: "remove stale link pin",
                            path: path.clone(),
                            source,
                        })
                    })?;
                }
            }
        }
        fs::create_dir_all(dir).map_err(|source| {
            LinkAttachError::Pin(LinkPinError::Io {
                action: "create",
                path: dir.clone(),
                source,
            })
        })?;
        let link = attach().map_err(LinkAttachError::Attach)?;
        let pinned = link.pin(&path).map_err(|source| {
            LinkAttachError::Pin(LinkPinError::Pin {
                path: path.clone(),
                source: Box::new(source),
            })
        })?;
        Ok(self.insert(Held::Pinned { link: pinned, path }))
    }

    /// Detaches a held link: its pin goes, then its descriptor, which
    /// destroys it.
    pub fn detach(&mut self, link: LinkRef) -> Result<(), LinkPinError> {
        let Some(held) = self.held.remove(&link.0) else {
            return Ok(());
        };
        match held {
            Held::Owned(link) => drop(link),
            Held::Pinned { link, path } => {
                drop(link.unpin().map_err(|source| LinkPinError::Io {
                    action: "remove link pin",
                    path,
                    source,
                })?);
            }
            Held::Reopened { fd, pin } => {
                fs::remove_file(&pin).map_err(|source| LinkPinError::Io {
                    action: "remove link pin",
                    path: pin,
                    source,
                })?;
                drop(fd);
            }
        }
        Ok(())
    }
}

/// Attaching through [`Links::attach`] failed.
#[derive(Debug)]
pub enum LinkAttachError<E> {
    /// Making the link failed.
    Attach(E),
    /// Pinning or reusing it failed.
    Pin(LinkPinError),
}
