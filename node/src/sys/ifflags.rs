//! An interface's up/down flag, by name, in the calling thread's network
//! namespace: `SIOCGIFFLAGS`/`SIOCSIFFLAGS` on a datagram socket, which is
//! all the loopback plugin needs (a netlink library would be a whole
//! dependency for one flag).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use super::SyscallError;

/// An `ifreq` naming `name`, everything else zero.
fn request(name: &str) -> Result<libc::ifreq, SyscallError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(SyscallError::from_errno(
            "ioctl(SIOCGIFFLAGS)",
            nix::errno::Errno::EINVAL,
        ));
    }
    // SAFETY: `ifreq` is plain old data (a name array and a union of
    // integers and addresses); all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

fn control_socket() -> Result<OwnedFd, SyscallError> {
    socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|errno| SyscallError::from_errno("socket(AF_INET, SOCK_DGRAM)", errno))
}

/// The flags (`IFF_*`) of interface `name` and the socket that read them.
fn read(name: &str) -> Result<(OwnedFd, libc::ifreq), SyscallError> {
    let sock = control_socket()?;
    let mut req = request(name)?;
    // SAFETY: SIOCGIFFLAGS reads `ifr_name` and writes `ifr_flags` of the
    // request, which is valid and writable for the whole call.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut req) };
    if ret < 0 {
        return Err(SyscallError::last("ioctl(SIOCGIFFLAGS)"));
    }
    Ok((sock, req))
}

/// Whether interface `name` is administratively up (`IFF_UP`).
pub fn is_up(name: &str) -> Result<bool, SyscallError> {
    let (_, req) = read(name)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(i32::from(flags) & libc::IFF_UP != 0)
}

/// Brings interface `name` up or down, keeping its other flags.
pub fn set_up(name: &str, up: bool) -> Result<(), SyscallError> {
    let (sock, mut req) = read(name)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
    let wanted = if up {
        flags | libc::IFF_UP
    } else {
        flags & !libc::IFF_UP
    };
    if wanted == flags {
        return Ok(());
    }
    // `IFF_*` flags of the ioctl fit the 16 bits of `ifru_flags`.
    req.ifr_ifru.ifru_flags = wanted as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads `ifr_name` and `ifr_flags` of the request,
    // which is valid for the whole call.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &raw mut req) };
    if ret < 0 {
        return Err(SyscallError::last("ioctl(SIOCSIFFLAGS)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_interfaces_are_refused() {
        for name in ["", "a-name-longer-than-ifnamsiz", "nul\0"] {
            let error = is_up(name).unwrap_err();
            assert_eq!(error.source.raw_os_error(), Some(libc::EINVAL), "{name:?}");
        }
    }

    #[test]
    fn a_missing_interface_is_an_error_naming_the_call() {
        let error = is_up("baton-nope0").unwrap_err();
        assert_eq!(error.call, "ioctl(SIOCGIFFLAGS)");
        assert_eq!(error.source.raw_os_error(), Some(libc::ENODEV));
    }
}
