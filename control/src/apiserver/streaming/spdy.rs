//! SPDY/3.1 framing, the client side of what kubelets and container
//! runtimes speak for `exec`/`attach` (moby/spdystream, which client-go's
//! `httpstream/spdy` wraps): data frames, SYN_STREAM with a zlib-compressed
//! header block, and the control frames a session must answer or notice.
//!
//! Written by hand because no maintained Rust crate speaks SPDY; only the
//! part a client needs is here. spdystream implements no flow control, so
//! neither is WINDOW_UPDATE sent nor honoured; server-initiated streams do
//! not occur in the remote-command protocols, so received header blocks are
//! skipped rather than decompressed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The protocol version in every control frame.
const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
/// FLAG_FIN on data and control frames.
const FLAG_FIN: u8 = 0x01;
/// The largest frame accepted (the 24-bit length allows 16 MiB).
const MAX_FRAME: usize = 1 << 24;

/// A malformed frame or a failed compression.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("reading a SPDY frame: {0}")]
    Io(#[from] std::io::Error),
    #[error("SPDY frame of type {frame_type} is {len} bytes, too short")]
    Short { frame_type: u16, len: usize },
    #[error("compressing a SPDY header block: {0}")]
    Compress(#[from] flate2::CompressError),
}

/// A frame read from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Bytes,
    },
    /// The peer accepted a stream this side opened.
    SynReply {
        stream: u32,
        fin: bool,
    },
    /// The peer opened a stream (never done by remote-command servers).
    SynStream {
        stream: u32,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last_stream: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        fin: bool,
    },
    /// SETTINGS, WINDOW_UPDATE and unknown control frames: nothing to do.
    Ignored(u16),
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
}

/// Reads one frame; `None` at a clean end of the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, SpdyError> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut head[1..]).await?;
    let flags = head[4];
    let len = (usize::from(head[5]) << 16) | (usize::from(head[6]) << 8) | usize::from(head[7]);
    if len > MAX_FRAME {
        return Err(std::io::Error::other("SPDY frame too large").into());
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    let fin = flags & FLAG_FIN != 0;
    if head[0] & 0x80 == 0 {
        return Ok(Some(Frame::Data {
            stream: be32(&head[..4]),
            fin,
            data: Bytes::from(payload),
        }));
    }
    let frame_type = u16::from_be_bytes([head[2], head[3]]);
    let need = match frame_type {
        SYN_STREAM => 10,
        SYN_REPLY | HEADERS | PING => 4,
        RST_STREAM | GOAWAY => 8,
        _ => 0,
    };
    if len < need {
        return Err(SpdyError::Short { frame_type, len });
    }
    Ok(Some(match frame_type {
        SYN_STREAM => Frame::SynStream {
            stream: be32(&payload),
        },
        SYN_REPLY => Frame::SynReply {
            stream: be32(&payload),
            fin,
        },
        RST_STREAM => Frame::RstStream {
            stream: be32(&payload),
            status: be32(&payload[4..]),
        },
        PING => Frame::Ping(u32::from_be_bytes([
            payload[0], payload[1], payload[2], payload[3],
        ])),
        GOAWAY => Frame::GoAway {
            last_stream: be32(&payload),
            status: be32(&payload[4..]),
        },
        HEADERS => Frame::Headers {
            stream: be32(&payload),
            fin,
        },
        // SETTINGS, WINDOW_UPDATE (no flow control) and anything newer.
        other => Frame::Ignored(other),
    }))
}

fn control(buf: &mut BytesMut, frame_type: u16, flags: u8, len: usize) {
    buf.put_u16(0x8000 | VERSION);
    buf.put_u16(frame_type);
    buf.put_u8(flags);
    buf.put_uint(len as u64, 3);
}

/// A data frame; `payload` longer than a frame allows is split.
pub fn data(stream: u32, fin: bool, payload: &[u8]) -> Bytes {
    const CHUNK: usize = 64 * 1024;
    let mut buf = BytesMut::with_capacity(payload.len() + 8 * (payload.len() / CHUNK + 1));
    let mut chunks = payload.chunks(CHUNK).peekable();
    if chunks.peek().is_none() {
        buf.put_u32(stream & 0x7fff_ffff);
        buf.put_u8(if fin { FLAG_FIN } else { 0 });
        buf.put_uint(0, 3);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        buf.put_u32(stream & 0x7fff_ffff);
        buf.put_u8(if fin && last { FLAG_FIN } else { 0 });
        buf.put_uint(chunk.len() as u64, 3);
        buf.put_slice(chunk);
    }
    buf.freeze()
}

/// The answer to a PING.
pub fn ping(id: u32) -> Bytes {
    let mut buf = BytesMut::with_capacity(12);
    control(&mut buf, PING, 0, 4);
    buf.put_u32(id);
    buf.freeze()
}

/// GOAWAY: this side opens no more streams.
pub fn goaway(last_stream: u32) -> Bytes {
    let mut buf = BytesMut::with_capacity(16);
    control(&mut buf, GOAWAY, 0, 8);
    buf.put_u32(last_stream & 0x7fff_ffff);
    buf.put_u32(0);
    buf.freeze()
}

/// Compresses header blocks: one zlib stream for the whole connection,
/// flushed after each block, as the SPDY/3 framer's peer reads it. (The
/// spec's preset dictionary only helps compression; a stream that does not
/// announce it is read without it.)
pub struct HeaderEncoder {
    zlib: Compress,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        HeaderEncoder {
            zlib: Compress::new(Compression::default(), true),
        }
    }
}

impl HeaderEncoder {
    fn block(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, SpdyError> {
        let mut raw = BytesMut::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        let mut input = raw.freeze();
        let mut out = Vec::with_capacity(input.len() + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(input.len() + 64);
            }
            let before = self.zlib.total_in();
            self.zlib
                .compress_vec(&input, &mut out, FlushCompress::Sync)?;
            let used = (self.zlib.total_in() - before) as usize;
            input.advance(used);
            // Done when all input is in and the flush left spare room (a
            // full buffer may hide more pending output).
            if input.is_empty() && out.capacity() > out.len() {
                return Ok(out);
            }
        }
    }

    /// SYN_STREAM opening `stream` with `headers`.
    pub fn syn_stream(
        &mut self,
        stream: u32,
        headers: &[(&str, &str)],
    ) -> Result<Bytes, SpdyError> {
        let block = self.block(headers)?;
        let mut buf = BytesMut::with_capacity(block.len() + 18);
        control(&mut buf, SYN_STREAM, 0, 10 + block.len());
        buf.put_u32(stream & 0x7fff_ffff);
        buf.put_u32(0);
        buf.put_u16(0);
        buf.put_slice(&block);
        Ok(buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    fn inflate(z: &mut Decompress, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        z.decompress_vec(block, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[tokio::test]
    async fn syn_stream_carries_headers_a_peer_can_inflate() {
        let mut enc = HeaderEncoder::default();
        let mut z = Decompress::new(true);
        for (id, kind) in [(1, "error"), (3, "stdout")] {
            let frame = enc.syn_stream(id, &[("streamType", kind)]).unwrap();
            assert_eq!(&frame[..4], &[0x80, 0x03, 0x00, 0x01]);
            let len =
                usize::from(frame[5]) << 16 | usize::from(frame[6]) << 8 | usize::from(frame[7]);
            assert_eq!(len, frame.len() - 8);
            assert_eq!(be32(&frame[8..]), id);
            // The header block continues the connection's zlib stream.
            let raw = inflate(&mut z, &frame[18..]);
            let mut want = Vec::new();
            want.extend(1u32.to_be_bytes());
            want.extend(10u32.to_be_bytes());
            want.extend(b"streamtype");
            want.extend((kind.len() as u32).to_be_bytes());
            want.extend(kind.as_bytes());
            assert_eq!(raw, want);
        }
    }

    #[tokio::test]
    async fn frames_round_trip_through_the_reader() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&data(3, false, b"hello"));
        wire.extend_from_slice(&data(3, true, b""));
        wire.extend_from_slice(&ping(2));
        wire.extend_from_slice(&goaway(0));
        // A SYN_REPLY for stream 1 with an (empty, skipped) header block.
        wire.extend_from_slice(&[0x80, 3, 0, 2, 0, 0, 0, 6, 0, 0, 0, 1, 0xaa, 0xbb]);
        let mut r = wire.as_slice();
        let mut frames = Vec::new();
        while let Some(f) = read_frame(&mut r).await.unwrap() {
            frames.push(f);
        }
        assert_eq!(
            frames,
            vec![
                Frame::Data {
                    stream: 3,
                    fin: false,
                    data: Bytes::from_static(b"hello")
                },
                Frame::Data {
                    stream: 3,
                    fin: true,
                    data: Bytes::new()
                },
                Frame::Ping(2),
                Frame::GoAway {
                    last_stream: 0,
                    status: 0
                },
                Frame::SynReply {
                    stream: 1,
                    fin: false
                },
            ]
        );
    }

    #[test]
    fn large_payloads_are_split_with_fin_on_the_last_frame() {
        let payload = vec![7u8; 150 * 1024];
        let wire = data(5, true, &payload);
        let mut pos = 0;
        let mut flags = Vec::new();
        let mut total = 0;
        while pos < wire.len() {
            let len = usize::from(wire[pos + 5]) << 16
                | usize::from(wire[pos + 6]) << 8
                | usize::from(wire[pos + 7]);
            flags.push(wire[pos + 4]);
            total += len;
            pos += 8 + len;
        }
        assert_eq!(total, payload.len());
        assert_eq!(flags, vec![0, 0, FLAG_FIN]);
    }
}
