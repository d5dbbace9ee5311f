//! Socket-level load balancing on the cgroup hooks (modelled on Cilium's
//! `bpf_sock.c`): a socket that connects or sends to a service frontend is
//! pointed straight at a backend, so its packets need no NAT at all.
//!
//! - `connect4` (TCP, connected UDP): picks the backend and rewrites the
//!   address the socket connects to. The translation is recorded in socket
//!   storage (which lives and dies with the socket): `getpeername` answers
//!   with the frontend from it, and the backend's connection count is
//!   raised here and lowered at `sock_release`. UDP sockets also get a
//!   reverse entry so `recvmsg` shows replies as coming from the frontend.
//! - `sendmsg4` (unconnected UDP): the same per datagram. A socket keeps the
//!   backend it used for the same frontend while that backend stays usable,
//!   so a request/response exchange is not spread over backends.
//! - `recvmsg4`: a datagram from a backend the socket was translated to
//!   shows the frontend address as its source.
//! - `getpeername4`: the peer of a translated socket is the frontend.
//! - `sock_release`: uncounts the socket and removes its reverse entry.
//!
//! A service without a usable backend refuses at once: the hook sets the
//! call's error to `ECONNREFUSED` (`bpf_set_retval`) and rejects it, so
//! `connect` and `sendmsg` fail immediately instead of timing out.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext,
    btf_maps::SkStorage,
    helpers::{
        bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_ktime_get_ns, bpf_set_retval,
        generated::bpf_sk_storage_get,
    },
    macros::{btf_map, map},
    maps::LruHashMap,
    programs::{SockAddrContext, SockContext},
};
use baton_abi::{
    Direction, DropReason, IPPROTO_TCP, IPPROTO_UDP,
    lb::AFFINITY_CLIENT_NETNS,
    metrics::Event,
    sock::{REVSK_MAX_ENTRIES, RevSkKey, RevSkValue, SOCK_F_COUNTED, SockState},
};

use crate::{
    lb::{self, Client, Origin},
    metrics::{self, ServiceSample},
};

#[btf_map(name = "baton_sock")]
static SOCK_STATE: SkStorage<SockState> = SkStorage::new();

#[map(name = "baton_lb_revsk")]
static REVSK: LruHashMap<RevSkKey, RevSkValue> = LruHashMap::with_max_entries(REVSK_MAX_ENTRIES, 0);

/// Return value of a cgroup socket hook that lets the call proceed.
const ALLOW: i32 = 1;
/// Return value that fails the call (with the error set by
/// `bpf_set_retval`, `EPERM` otherwise).
const DENY: i32 = 0;
const AF_INET: u32 = 2;
const ECONNREFUSED: i32 = 111;

/// Which hook is translating.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Connect,
    Sendmsg,
}

/// `connect4`.
#[inline(always)]
pub fn connect4(ctx: &SockAddrContext) -> i32 {
    match translate(ctx, Call::Connect) {
        Ok(()) => ALLOW,
        Err(reason) => refuse(reason),
    }
}

/// `sendmsg4`.
#[inline(always)]
pub fn sendmsg4(ctx: &SockAddrContext) -> i32 {
    match translate(ctx, Call::Sendmsg) {
        Ok(()) => ALLOW,
        Err(reason) => refuse(reason),
    }
}

/// Fails the socket call with `ECONNREFUSED`, counting why.
#[inline(always)]
fn refuse(reason: DropReason) -> i32 {
    metrics::dropped(reason, Direction::Socket, 0);
    // SAFETY: a helper with a scalar argument; cgroup socket-address hooks
    // may set the return value of the call they run for.
    unsafe { bpf_set_retval(-ECONNREFUSED) };
    DENY
}

/// The address the application passed, if it is IPv4 TCP or UDP.
#[inline(always)]
fn destination(ctx: &SockAddrContext) -> Option<([u8; 4], u16, u8)> {
    let addr = ctx.sock_addr;
    // SAFETY: the context pointer is valid for the whole run; these fields
    // are readable in every socket-address hook.
    let (family, protocol, ip, port) = unsafe {
        (
            (*addr).user_family,
            (*addr).protocol,
            (*addr).user_ip4,
            (*addr).user_port,
        )
    };
    if family != AF_INET
        || (protocol != u32::from(IPPROTO_TCP) && protocol != u32::from(IPPROTO_UDP))
    {
        return None;
    }
    // `user_port` holds the port in network order in its low 16 bits.
    Some((ip.to_ne_bytes(), u16::from_be(port as u16), protocol as u8))
}

#[inline(always)]
fn set_destination(ctx: &SockAddrContext, addr: [u8; 4], port: u16) {
    let sock_addr = ctx.sock_addr;
    // SAFETY: connect4/sendmsg4/recvmsg4/getpeername4 may write these two
    // fields (as whole 32-bit words); the pointer is valid for the run.
    unsafe {
        (*sock_addr).user_ip4 = u32::from_ne_bytes(addr);
        (*sock_addr).user_port = u32::from(port.to_be());
    }
}

#[inline(always)]
fn translate(ctx: &SockAddrContext, call: Call) -> Result<(), DropReason> {
    let Some((addr, port, proto)) = destination(ctx) else {
        return Ok(());
    };
    let Some(service) = lb::lookup(addr, port, proto, Origin::Inside) else {
        return Ok(());
    };
    // SAFETY: helpers without pointer arguments beyond the context.
    let (now, netns) = unsafe { (bpf_ktime_get_ns(), bpf_get_netns_cookie(ctx.as_ptr())) };

    // SAFETY: the storage helper gets this hook's socket; the returned
    // pointer (null on failure) is valid for the rest of the run.
    let state = unsafe { SOCK_STATE.get_or_insert_ptr_mut(ctx, None) };
    if state.is_null() {
        metrics::event(Event::SockStateUnavailable, Direction::Socket, 0);
    }

    // An unconnected UDP socket keeps its backend for the same frontend.
    let mut kept = None;
    if call == Call::Sendmsg && !state.is_null() {
        // SAFETY: non-null storage pointer, see above.
        let previous = unsafe { *state };
        if previous.frontend_addr == addr && previous.frontend_port == port {
            kept = lb::still_usable(&service, previous.backend_id).map(|backend| lb::Chosen {
                id: previous.backend_id,
                backend,
            });
        }
    }
    let chosen = match kept {
        Some(chosen) => chosen,
        None => {
            let client = Client {
                id: netns,
                kind: AFFINITY_CLIENT_NETNS,
                hash: lb::hash([netns as u32, (netns >> 32) as u32, bound_port(ctx), 0]),
            };
            match lb::select(&service, &client, now, Direction::Socket) {
                Ok(chosen) => {
                    metrics::service(
                        service.service_id,
                        ServiceSample::NEW_FLOW,
                        Direction::Socket,
                    );
                    chosen
                }
                Err(reason) => {
                    metrics::service(
                        service.service_id,
                        ServiceSample::REFUSED,
                        Direction::Socket,
                    );
                    return Err(reason);
                }
            }
        }
    };
    let backend = chosen.backend;
    set_destination(ctx, backend.addr, backend.port);

    if !state.is_null() {
        // SAFETY: non-null storage pointer, see above. Storage of one socket
        // is only touched by calls on that socket, which the socket lock
        // serialises.
        unsafe {
            let previous = *state;
            if previous.flags & SOCK_F_COUNTED != 0 {
                lb::uncount_connection(
                    previous.backend_id,
                    previous.backend_addr,
                    previous.backend_port,
                    true,
                );
            }
            let counted = call == Call::Connect;
            *state = SockState {
                frontend_addr: addr,
                frontend_port: port,
                flags: if counted { SOCK_F_COUNTED } else { 0 },
                backend_addr: backend.addr,
                backend_port: backend.port,
                _pad: 0,
                backend_id: chosen.id,
                service_id: service.service_id,
            };
            if counted {
                lb::count_connection(chosen.id, true);
            }
        }
    }

    if proto == IPPROTO_UDP {
        remember_reverse(
            ctx,
            backend.addr,
            backend.port,
            addr,
            port,
            service.service_id,
        );
    }
    Ok(())
}

/// The local port the socket is bound to (0 if none yet): part of the
/// Maglev hash, so distinct client sockets that bound their ports spread
/// over backends while each keeps its own.
#[inline(always)]
fn bound_port(ctx: &SockAddrContext) -> u32 {
    // SAFETY: `sk` of a socket-address context is always a valid socket.
    unsafe {
        let sk = (*ctx.sock_addr).__bindgen_anon_1.sk;
        if sk.is_null() { 0 } else { (*sk).src_port }
    }
}

/// Records backend → frontend for replies to this socket. Skips the write
/// when the entry is already there (the common case for repeated sends).
#[inline(always)]
fn remember_reverse(
    ctx: &SockAddrContext,
    backend_addr: [u8; 4],
    backend_port: u16,
    frontend_addr: [u8; 4],
    frontend_port: u16,
    service_id: u32,
) {
    let key = RevSkKey {
        // SAFETY: a helper taking the context.
        cookie: unsafe { bpf_get_socket_cookie(ctx.as_ptr()) },
        addr: backend_addr,
        port: backend_port,
        _pad: 0,
    };
    let value = RevSkValue {
        addr: frontend_addr,
        port: frontend_port,
        _pad: 0,
        service_id,
    };
    if let Some(existing) = REVSK.get_ptr(key) {
        // SAFETY: a successful lookup points at a live value.
        if unsafe { *existing } == value {
            return;
        }
    }
    if REVSK.insert(key, value, 0).is_err() {
        metrics::event(Event::RevSkMapFull, Direction::Socket, 0);
    }
}

/// `recvmsg4`: the source of a datagram from a backend this socket was
/// translated to becomes the frontend.
#[inline(always)]
pub fn recvmsg4(ctx: &SockAddrContext) -> i32 {
    if let Some((addr, port, _)) = destination(ctx) {
        let key = RevSkKey {
            // SAFETY: a helper taking the context.
            cookie: unsafe { bpf_get_socket_cookie(ctx.as_ptr()) },
            addr,
            port,
            _pad: 0,
        };
        if let Some(value) = REVSK.get_ptr(key) {
            // SAFETY: a successful lookup points at a live value.
            let value = unsafe { *value };
            set_destination(ctx, value.addr, value.port);
        }
    }
    ALLOW
}

/// `getpeername4`: the peer of a translated socket is the frontend.
#[inline(always)]
pub fn getpeername4(ctx: &SockAddrContext) -> i32 {
    let Some((addr, port, _)) = destination(ctx) else {
        return ALLOW;
    };
    // SAFETY: storage lookup without creation for this hook's socket.
    let state = unsafe { SOCK_STATE.get_ptr_mut(ctx) };
    if !state.is_null() {
        // SAFETY: non-null storage pointer.
        let state = unsafe { *state };
        if state.backend_addr == addr && state.backend_port == port && state.service_id != 0 {
            set_destination(ctx, state.frontend_addr, state.frontend_port);
            return ALLOW;
        }
    }
    recvmsg4(ctx)
}

/// `sock_release`: a translated socket closes its books.
#[inline(always)]
pub fn release(ctx: &SockContext) -> i32 {
    // SAFETY: the storage helper takes the socket this hook runs for (the
    // context); the map pointer is this object's storage map definition.
    let state = unsafe {
        bpf_sk_storage_get(
            (&raw const SOCK_STATE).cast_mut().cast::<c_void>(),
            ctx.sock.cast::<c_void>(),
            core::ptr::null_mut(),
            0,
        )
    }
    .cast::<SockState>();
    if state.is_null() {
        return ALLOW;
    }
    // SAFETY: non-null storage pointer valid for the run.
    let state = unsafe { *state };
    if state.flags & SOCK_F_COUNTED != 0 {
        lb::uncount_connection(
            state.backend_id,
            state.backend_addr,
            state.backend_port,
            true,
        );
    }
    // SAFETY: the context is a valid socket.
    let protocol = unsafe { (*ctx.sock).protocol };
    if protocol == u32::from(IPPROTO_UDP) && state.service_id != 0 {
        let key = RevSkKey {
            // SAFETY: a helper taking the context.
            cookie: unsafe { bpf_get_socket_cookie(ctx.as_ptr()) },
            addr: state.backend_addr,
            port: state.backend_port,
            _pad: 0,
        };
        // Gone already (evicted, or never written) is fine.
        let _ = REVSK.remove(key);
    }
    ALLOW
}
