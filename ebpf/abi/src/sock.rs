//! State of socket-level load balancing: what a translated socket was
//! translated from, so that its peer and its UDP replies show the service
//! address, and which backend it is counted against.

/// Name of the socket reverse-translation map (modelled on Cilium's
/// `cilium_lb4_reverse_sk`).
pub const REVSK_MAP_NAME: &str = "baton_lb_revsk";
/// Capacity of the reverse-translation map. `BPF_MAP_TYPE_LRU_HASH`, 16 B
/// key + 12 B value, preallocated (~10 MiB). Entries are written by
/// `connect4` (UDP) and `sendmsg4` and read by `recvmsg4`; a connected
/// socket's entry is removed at `sock_release`. When full, the least
/// recently used entry is evicted: a UDP socket idle that long then sees a
/// reply's backend address instead of the service address.
pub const REVSK_MAX_ENTRIES: u32 = 131_072;

/// Name of the socket-storage map (`BPF_MAP_TYPE_SK_STORAGE`): per-socket
/// state of TCP and connected-UDP sockets translated by `connect4`. It lives
/// and dies with the socket, so it never fills and never evicts a live
/// socket's state.
pub const SOCK_STATE_MAP_NAME: &str = "baton_sock";

/// Key of the reverse-translation map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RevSkKey {
    /// `bpf_get_socket_cookie` of the socket.
    pub cookie: u64,
    /// The backend address the socket sends to.
    pub addr: [u8; 4],
    /// The backend port.
    pub port: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<RevSkKey>() == 16);

/// Value of the reverse-translation map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RevSkValue {
    /// The frontend address the application addressed.
    pub addr: [u8; 4],
    /// The frontend port.
    pub port: u16,
    pub _pad: u16,
    /// The service, for dumps.
    pub service_id: u32,
}
const _: () = assert!(size_of::<RevSkValue>() == 12);

/// [`SockState::flags`]: the socket is counted in
/// [`crate::lb::BackendConns::sockets`] of `backend_id`.
pub const SOCK_F_COUNTED: u16 = 1 << 0;

/// Value of the socket-storage map: how `connect4` translated this socket.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SockState {
    /// The frontend address the application connected to.
    pub frontend_addr: [u8; 4],
    /// The frontend port.
    pub frontend_port: u16,
    /// `SOCK_F_*` bits.
    pub flags: u16,
    /// The backend the socket is connected to.
    pub backend_addr: [u8; 4],
    /// The backend port.
    pub backend_port: u16,
    pub _pad: u16,
    /// Backend id counted against; before uncounting, the backend entry is
    /// checked to still hold `backend_addr`/`backend_port`, so a recycled id
    /// is never uncounted by an old socket.
    pub backend_id: u32,
    /// The service.
    pub service_id: u32,
}
const _: () = assert!(size_of::<SockState>() == 24);

#[cfg(feature = "user")]
#[allow(unsafe_code)]
mod pod {
    use super::*;

    // SAFETY (all impls below): `#[repr(C)]`, integers and integer arrays
    // only, no implicit padding (sizes asserted), any bit pattern is valid.
    unsafe impl aya::Pod for RevSkKey {}
    unsafe impl aya::Pod for RevSkValue {}
    unsafe impl aya::Pod for SockState {}
}
