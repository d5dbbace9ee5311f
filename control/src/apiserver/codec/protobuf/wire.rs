//! The protobuf wire format: varints and tagged fields.

use super::error::ProtobufError;

/// One field's raw value.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtobufError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or(ProtobufError::Truncated)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(ProtobufError::Varint)
}

/// Every field of a message, in order.
pub fn fields(buf: &[u8]) -> Result<Vec<(u32, Value<'_>)>, ProtobufError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let tag = (key >> 3) as u32;
        let v = match key & 7 {
            0 => Value::Varint(varint(buf, &mut pos)?),
            1 => {
                let b = buf.get(pos..pos + 8).ok_or(ProtobufError::Truncated)?;
                pos += 8;
                Value::Fixed64(u64::from_le_bytes(
                    b.try_into().map_err(|_| ProtobufError::Truncated)?,
                ))
            }
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let b = buf.get(pos..pos + len).ok_or(ProtobufError::Truncated)?;
                pos += len;
                Value::Bytes(b)
            }
            5 => {
                let b = buf.get(pos..pos + 4).ok_or(ProtobufError::Truncated)?;
                pos += 4;
                Value::Fixed32(u32::from_le_bytes(
                    b.try_into().map_err(|_| ProtobufError::Truncated)?,
                ))
            }
            w => return Err(ProtobufError::WireType(w as u8)),
        };
        out.push((tag, v));
    }
    Ok(out)
}

/// Varints packed in one length-delimited field.
pub fn packed(buf: &[u8]) -> Result<Vec<u64>, ProtobufError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        out.push(varint(buf, &mut pos)?);
    }
    Ok(out)
}

/// Wire type of varint fields.
pub const VARINT: u8 = 0;
/// Wire type of 64-bit fields.
pub const FIXED64: u8 = 1;
/// Wire type of length-delimited fields.
pub const LEN: u8 = 2;
/// Wire type of 32-bit fields.
pub const FIXED32: u8 = 5;

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends a field key.
pub fn put_key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    put_varint(out, (u64::from(tag) << 3) | u64::from(wire_type));
}

/// Appends a length-delimited field.
pub fn put_bytes(out: &mut Vec<u8>, tag: u32, b: &[u8]) {
    put_key(out, tag, LEN);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a varint field.
pub fn put_varint_field(out: &mut Vec<u8>, tag: u32, n: u64) {
    put_key(out, tag, VARINT);
    put_varint(out, n);
}
