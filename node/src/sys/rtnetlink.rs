//! A synchronous route-netlink client: one `NETLINK_ROUTE` socket of the
//! calling thread's network namespace, requests answered by an
//! acknowledgement or a dump, messages built with `netlink-packet-route`.
//!
//! The `rtnetlink` crate wraps the same messages in an async connection on
//! tokio; the CNI plugin is a short-lived synchronous process that makes a
//! handful of requests, some of them from a thread inside a pod's namespace
//! (a netlink socket acts in the namespace it was created in), so a
//! blocking socket serves it with less machinery.

use std::io;
use std::num::NonZeroI32;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Large enough for any datagram of a dump (the kernel fills at most 32 KiB).
const RECEIVE_BUFFER: usize = 64 * 1024;

/// A netlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum RtnlError {
    /// The socket could not be opened, or sending or receiving failed.
    #[error("{op}: netlink socket: {source}")]
    Socket {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The kernel refused the request.
    #[error("{op}: {source}")]
    Refused {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// An answer could not be decoded.
    #[error("{op}: undecodable netlink answer: {detail}")]
    Decode { op: &'static str, detail: String },
}

impl RtnlError {
    /// The errno the kernel answered with, when it refused the request.
    #[must_use]
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Refused { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// A route-netlink socket of the namespace of the thread that opened it.
pub struct Rtnl {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, RtnlError> {
        let op = "open";
        let socket_err = |source| RtnlError::Socket { op, source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(socket_err)?;
        socket.bind_auto().map_err(socket_err)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(socket_err)?;
        Ok(Self {
            socket,
            sequence: 0,
            buffer: Vec::with_capacity(RECEIVE_BUFFER),
        })
    }

    /// Sends `message` with `flags` (besides request and acknowledge) and
    /// waits for the kernel's acknowledgement. `op` names the request in
    /// errors.
    pub fn request(
        &mut self,
        op: &'static str,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), RtnlError> {
        let sequence = self.send(op, message, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        let mut acknowledged = false;
        self.receive(op, sequence, false, |payload| match payload {
            NetlinkPayload::Error(err) => {
                acknowledged = true;
                match err.code {
                    None => Ok(true),
                    Some(code) => Err(refused(op, code)),
                }
            }
            _ => Ok(false),
        })?;
        if acknowledged {
            Ok(())
        } else {
            Err(RtnlError::Decode {
                op,
                detail: "no acknowledgement".into(),
            })
        }
    }

    /// Sends the dump request `message` and returns every message of the
    /// answer.
    pub fn dump(
        &mut self,
        op: &'static str,
        message: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, RtnlError> {
        let sequence = self.send(op, message, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut messages = Vec::new();
        self.receive(op, sequence, true, |payload| match payload {
            NetlinkPayload::InnerMessage(message) => {
                messages.push(message);
                Ok(false)
            }
            NetlinkPayload::Done(_) => Ok(true),
            NetlinkPayload::Error(err) => match err.code {
                Some(code) => Err(refused(op, code)),
                None => Ok(true),
            },
            _ => Ok(false),
        })?;
        Ok(messages)
    }

    fn send(
        &mut self,
        op: &'static str,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<u32, RtnlError> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket
            .send(&bytes, 0)
            .map_err(|source| RtnlError::Socket { op, source })?;
        Ok(self.sequence)
    }

    /// Hands every message answering `sequence` to `take` until it returns
    /// true (the last one); messages that cannot be decoded fail the call,
    /// or are skipped when `skip_undecodable` (a dump's objects).
    fn receive(
        &mut self,
        op: &'static str,
        sequence: u32,
        skip_undecodable: bool,
        mut take: impl FnMut(NetlinkPayload<RouteNetlinkMessage>) -> Result<bool, RtnlError>,
    ) -> Result<(), RtnlError> {
        loop {
            self.buffer.clear();
            let received = self
                .socket
                .recv(&mut self.buffer, libc::MSG_TRUNC)
                .map_err(|source| RtnlError::Socket { op, source })?;
            if received > self.buffer.len() {
                return Err(RtnlError::Decode {
                    op,
                    detail: format!("a datagram of {received} bytes was truncated"),
                });
            }
            let mut offset = 0;
            while offset < self.buffer.len() {
                let bytes = &self.buffer[offset..];
                let (length, answers) = match NetlinkBuffer::new_checked(bytes) {
                    Ok(header) => (
                        usize::try_from(header.length()).unwrap_or(usize::MAX),
                        header.sequence_number() == sequence,
                    ),
                    Err(err) => {
                        return Err(RtnlError::Decode {
                            op,
                            detail: err.to_string(),
                        });
                    }
                };
                // Messages are 4-byte aligned within a datagram.
                offset = offset.saturating_add(length.next_multiple_of(4));
                if !answers {
                    continue; // an answer to an earlier request that failed halfway
                }
                // The buffer's check above guarantees 16 <= length <= bytes.len().
                let payload =
                    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..length]) {
                        Ok(packet) => packet.payload,
                        // One object of a dump this crate cannot read (a link
                        // kind or attribute newer than it, say) is left out
                        // rather than failing the whole listing; every caller
                        // of a dump only loses sight of that one object.
                        Err(err) if skip_undecodable => {
                            tracing::debug!(op, %err, "skipping an undecodable netlink message");
                            continue;
                        }
                        Err(err) => {
                            return Err(RtnlError::Decode {
                                op,
                                detail: err.to_string(),
                            });
                        }
                    };
                if take(payload)? {
                    return Ok(());
                }
            }
        }
    }
}

/// An IPv4 unicast route of the main table to `destination` (a network),
/// through `gateway` when given (scope link otherwise), out of link `oif`
/// when given, tagged with `protocol`.
#[must_use]
pub fn ipv4_route(
    destination: ipnet::Ipv4Net,
    gateway: Option<std::net::Ipv4Addr>,
    oif: Option<u32>,
    protocol: RouteProtocol,
) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = AddressFamily::Inet;
    message.header.destination_prefix_length = destination.prefix_len();
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.protocol = protocol;
    message.header.kind = RouteType::Unicast;
    message.header.scope = if gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    if destination.prefix_len() > 0 {
        message
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                destination.network(),
            )));
    }
    if let Some(gateway) = gateway {
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    }
    if let Some(oif) = oif {
        message.attributes.push(RouteAttribute::Oif(oif));
    }
    message
}

fn refused(op: &'static str, code: NonZeroI32) -> RtnlError {
    RtnlError::Refused {
        op,
        source: io::Error::from_raw_os_error(code.get().saturating_neg()),
    }
}
