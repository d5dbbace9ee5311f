//! Rewriting IPv4 addresses and L4 ports in place with incremental checksum
//! updates (`bpf_l3_csum_replace` / `bpf_l4_csum_replace`, RFC 1624).
//!
//! TCP and UDP checksums cover a pseudo-header with both addresses, so an
//! address change updates them with `BPF_F_PSEUDO_HDR`; that flag also keeps
//! packets whose checksum is left to the device (`CHECKSUM_PARTIAL`, e.g.
//! locally generated traffic on a veth) correct. A UDP checksum of zero
//! means "none" and stays zero (`BPF_F_MARK_MANGLED_0`). The ICMP checksum
//! covers only the ICMP message, so address changes leave it alone.

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    programs::TcContext,
};
use baton_abi::DropReason;

use crate::parse::{ETH_HLEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};

/// Offset of the IPv4 header checksum of the outer header.
pub const IP_CSUM_OFFSET: usize = ETH_HLEN + 10;
/// Offset of the IPv4 source address of the outer header.
pub const IP_SRC_OFFSET: usize = ETH_HLEN + 12;
/// Offset of the IPv4 destination address of the outer header.
pub const IP_DST_OFFSET: usize = ETH_HLEN + 16;

/// Where an L4 checksum sits and which changes it covers.
#[derive(Clone, Copy)]
pub struct L4Csum {
    /// Offset of the checksum field in the frame.
    pub offset: usize,
    /// Extra `bpf_l4_csum_replace` flags (UDP's zero-means-none).
    flags: u64,
    /// Whether addresses are part of it (pseudo-header).
    pseudo: bool,
}

impl L4Csum {
    /// The checksum of the `protocol` header at `l4_offset`; `None` for a
    /// protocol without one we maintain.
    #[inline(always)]
    pub fn of(protocol: u8, l4_offset: usize) -> Option<Self> {
        match protocol {
            IPPROTO_TCP => Some(Self {
                offset: l4_offset + 16,
                flags: 0,
                pseudo: true,
            }),
            IPPROTO_UDP => Some(Self {
                offset: l4_offset + 6,
                flags: u64::from(BPF_F_MARK_MANGLED_0),
                pseudo: true,
            }),
            IPPROTO_ICMP => Some(Self {
                offset: l4_offset + 2,
                flags: 0,
                pseudo: false,
            }),
            _ => None,
        }
    }
}

/// Replaces the address at `offset` (`old` → `new`) and updates the IPv4
/// header checksum at `ip_csum` and, where addresses are covered, `l4`.
#[inline(always)]
pub fn set_addr(
    ctx: &TcContext,
    offset: usize,
    ip_csum: usize,
    old: [u8; 4],
    new: [u8; 4],
    l4: Option<L4Csum>,
) -> Result<(), DropReason> {
    if old == new {
        return Ok(());
    }
    let from = u64::from(u32::from_ne_bytes(old));
    let to = u64::from(u32::from_ne_bytes(new));
    ctx.store(offset, &new, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    ctx.l3_csum_replace(ip_csum, from, to, 4)
        .map_err(|_| DropReason::RewriteFailed)?;
    if let Some(l4) = l4
        && l4.pseudo
    {
        ctx.l4_csum_replace(
            l4.offset,
            from,
            to,
            u64::from(BPF_F_PSEUDO_HDR) | l4.flags | 4,
        )
        .map_err(|_| DropReason::RewriteFailed)?;
    }
    Ok(())
}

/// Replaces the port at `offset` (`old` → `new`, host order) and updates
/// the L4 checksum `l4`.
#[inline(always)]
pub fn set_port(
    ctx: &TcContext,
    offset: usize,
    old: u16,
    new: u16,
    l4: Option<L4Csum>,
) -> Result<(), DropReason> {
    if old == new {
        return Ok(());
    }
    let new_bytes = new.to_be_bytes();
    ctx.store(offset, &new_bytes, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    if let Some(l4) = l4 {
        let from = u64::from(u16::from_ne_bytes(old.to_be_bytes()));
        let to = u64::from(u16::from_ne_bytes(new_bytes));
        ctx.l4_csum_replace(l4.offset, from, to, l4.flags | 2)
            .map_err(|_| DropReason::RewriteFailed)?;
    }
    Ok(())
}

/// Replaces 2 bytes at `offset` that lie inside the data the checksum
/// `covering` sums (for example a quoted header inside an ICMP error), and
/// updates it. `old`/`new` are the raw bytes.
#[inline(always)]
pub fn set_covered_u16(
    ctx: &TcContext,
    offset: usize,
    old: [u8; 2],
    new: [u8; 2],
    covering: L4Csum,
) -> Result<(), DropReason> {
    if old == new {
        return Ok(());
    }
    ctx.store(offset, &new, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    ctx.l4_csum_replace(
        covering.offset,
        u64::from(u16::from_ne_bytes(old)),
        u64::from(u16::from_ne_bytes(new)),
        2,
    )
    .map_err(|_| DropReason::RewriteFailed)
}

/// Folds a one's-complement sum of native-endian words (as `bpf_csum_diff`
/// returns it, possibly added up further) into
/// the 16-bit checksum to store, network byte order.
#[inline(always)]
pub fn fold(sum: u64) -> [u8; 2] {
    let mut sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    // The sum was taken over network-order bytes read as native (little
    // endian) words, so the folded value is already in wire order once
    // stored in native order.
    (!(sum as u16)).to_ne_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 reference: sum of big-endian 16-bit words.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = bytes
            .chunks(2)
            .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn fold_matches_the_rfc_1071_checksum() {
        // An IPv4 header with its checksum field zeroed.
        let header = [
            0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 192, 168, 1, 2, 10, 0, 0, 1,
        ];
        // What bpf_csum_diff computes: 32-bit native-endian word sums.
        let sum: u64 = header
            .chunks(4)
            .map(|word| u64::from(u32::from_ne_bytes(word.try_into().unwrap())))
            .sum();
        assert_eq!(fold(sum), reference(&header).to_be_bytes());
    }
}
