//! BPF links pinned in bpffs: reopening one and swapping the program it
//! runs, the two link operations aya 0.14 does not offer for every link
//! type (it has `attach_to_link` for tc only, and no way to reopen a pin as
//! a raw descriptor).
//!
//! This is what lets baton-node restart without a gap: its tcx and cgroup
//! links stay pinned (so attached) while it is down, and the new process
//! replaces the program inside each link atomically (`BPF_LINK_UPDATE`)
//! instead of detaching and attaching again.
//!
//! The attribute layouts are written out from the kernel's `union bpf_attr`
//! (`include/uapi/linux/bpf.h`: the `BPF_OBJ_*` and `link_update` members).

use std::{
    ffi::CString,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

use super::SyscallError;

/// `enum bpf_cmd` values.
const BPF_OBJ_GET: libc::c_int = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_LINK_UPDATE: libc::c_int = 29;

/// `enum bpf_link_type` values.
const BPF_LINK_TYPE_CGROUP: u32 = 3;
const BPF_LINK_TYPE_TCX: u32 = 11;

/// The `BPF_OBJ_*` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}
const _: () = assert!(size_of::<ObjAttr>() == 24);

/// The `link_update` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}
const _: () = assert!(size_of::<LinkUpdateAttr>() == 16);

/// The `info` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}
const _: () = assert!(size_of::<InfoAttr>() == 16);

fn bpf<T>(
    cmd: libc::c_int,
    attr: &mut T,
    call: &'static str,
) -> Result<libc::c_long, SyscallError> {
    // SAFETY: `attr` is a fully initialised prefix of `union bpf_attr` for
    // `cmd` and its size is passed along, so the kernel reads no further;
    // every pointer inside it refers to memory that outlives the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if ret < 0 {
        Err(SyscallError::last(call))
    } else {
        Ok(ret)
    }
}

/// Opens the BPF object pinned at `path` (here: a link).
pub fn open_pinned(path: &Path) -> Result<OwnedFd, SyscallError> {
    let pathname = CString::new(path.as_os_str().as_bytes()).map_err(|_| SyscallError {
        call: "bpf(BPF_OBJ_GET)",
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    let mut attr = ObjAttr {
        pathname: pathname.as_ptr() as u64,
        ..ObjAttr::default()
    };
    let fd = bpf(BPF_OBJ_GET, &mut attr, "bpf(BPF_OBJ_GET)")?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Makes the link `link` run `program` from now on, atomically. Fails with
/// `ENOLINK` if the link is defunct (its device or cgroup is gone).
pub fn update(link: BorrowedFd<'_>, program: BorrowedFd<'_>) -> Result<(), SyscallError> {
    let mut attr = LinkUpdateAttr {
        // Valid descriptors are never negative.
        link_fd: link.as_raw_fd().cast_unsigned(),
        new_prog_fd: program.as_raw_fd().cast_unsigned(),
        ..LinkUpdateAttr::default()
    };
    bpf(BPF_LINK_UPDATE, &mut attr, "bpf(BPF_LINK_UPDATE)").map(|_| ())
}

/// Whether the link `link` still has its target: for a tcx link a device
/// (its `ifindex` reads 0 once the device is gone), for a cgroup link a
/// cgroup (its `cgroup_id` reads 0 once the cgroup is gone). Links of other
/// types are reported alive.
pub fn target_alive(link: BorrowedFd<'_>) -> Result<bool, SyscallError> {
    // `struct bpf_link_info`: type, id, prog_id, then a union aligned to 8
    // at offset 16 (`tcx.ifindex` is a u32 there, `cgroup.cgroup_id` a u64).
    let mut info = [0u8; 64];
    let mut attr = InfoAttr {
        bpf_fd: link.as_raw_fd().cast_unsigned(),
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(
        BPF_OBJ_GET_INFO_BY_FD,
        &mut attr,
        "bpf(BPF_OBJ_GET_INFO_BY_FD)",
    )?;
    let link_type = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
    let target = &info[16..24];
    Ok(match link_type {
        BPF_LINK_TYPE_TCX => target[..4] != [0; 4],
        BPF_LINK_TYPE_CGROUP => target != [0; 8],
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pin_is_an_error_naming_the_call() {
        let error = open_pinned(Path::new("/nonexistent/baton-link")).unwrap_err();
        assert_eq!(error.call, "bpf(BPF_OBJ_GET)");
    }
}
