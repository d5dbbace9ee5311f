//! bpffs mounts: BPF objects are pinned as files on a `bpf` filesystem, which
//! is how maps outlive the process that created them.

use std::path::{Path, PathBuf};

use nix::{
    mount::{MntFlags, MsFlags},
    sys::statfs::{BPF_FS_MAGIC, statfs},
};

use super::SyscallError;

/// A mount-related call failed on `path`.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct MountError {
    /// The mount point or path that was operated on.
    pub path: PathBuf,
    /// The failed call.
    #[source]
    pub source: SyscallError,
}

/// Mounts a new bpffs instance on `target` (an existing directory), like
/// `mount -t bpf bpf <target>`. Each mount is a separate instance: pins in one
/// are not visible in another.
pub fn mount_bpffs(target: &Path) -> Result<(), MountError> {
    nix::mount::mount(
        Some("bpf"),
        target,
        Some("bpf"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|errno| MountError {
        path: target.to_owned(),
        source: SyscallError::from_errno("mount(bpf)", errno),
    })
}

/// Detaches the mount at `target` (`umount -l`): it disappears from the mount
/// table at once and is freed when nothing uses it any more.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    nix::mount::umount2(target, MntFlags::MNT_DETACH).map_err(|errno| MountError {
        path: target.to_owned(),
        source: SyscallError::from_errno("umount2(MNT_DETACH)", errno),
    })
}

/// Whether `path` lies on a bpffs mount.
pub fn is_bpffs(path: &Path) -> Result<bool, MountError> {
    let stat = statfs(path).map_err(|errno| MountError {
        path: path.to_owned(),
        source: SyscallError::from_errno("statfs", errno),
    })?;
    Ok(stat.filesystem_type() == BPF_FS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_directory_is_not_bpffs() {
        let dir = std::env::temp_dir();
        assert!(!is_bpffs(&dir).unwrap());
    }

    #[test]
    fn errors_name_the_path_and_the_call() {
        let missing = Path::new("/nonexistent/baton-bpffs");
        let message = is_bpffs(missing).unwrap_err().to_string();
        assert!(message.contains("/nonexistent/baton-bpffs"), "{message}");
        assert!(message.contains("statfs"), "{message}");
    }
}
