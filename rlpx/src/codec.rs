//! RLPx framing (spec: `rlpx.md`, "Framing"): a [`tokio_util::codec`] encoder and decoder
//! for `header-ciphertext || header-mac || frame-ciphertext || frame-mac`.
//!
//! A frame carries one message: `frame-data = msg-id || msg-data`, where `msg-id` is an RLP
//! integer. The codec deals in [`RawMessage`]s; compression is the p2p layer's business.
//! Both MACs are checked before anything is decrypted, and the declared frame size is
//! checked against the limit before any body byte is buffered for it.

use crate::handshake::Secrets;
use crate::mac::MacState;
use aes::Aes256;
use alloy_rlp::{Decodable, Encodable};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use cipher::{KeyIvInit, StreamCipher};
use tokio_util::codec::{Decoder, Encoder};

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// Header ciphertext (16) + header MAC (16).
const HEADER_LEN: usize = 32;
/// Frame MAC size.
const MAC_LEN: usize = 16;
/// `header-data = [capability-id, context-id]`, both zero: RLP `[0, 0]` = `c2 80 80`.
const HEADER_DATA: [u8; 3] = [0xc2, 0x80, 0x80];
/// The largest size a 24-bit `frame-size` can express.
pub const MAX_FRAME_SIZE: usize = (1 << 24) - 1;

/// Framing errors. All of them end the session: a MAC failure means the stream is corrupt
/// or forged, so the connection is closed without a `Disconnect` (we cannot trust the
/// keystream position); an oversized frame or bad message id gets `Disconnect(BreachOfProtocol)`
/// when a `Disconnect` can still be sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The header MAC does not match.
    #[error("header MAC mismatch")]
    HeaderMac,
    /// The frame MAC does not match.
    #[error("frame MAC mismatch")]
    FrameMac,
    /// The declared frame size is over the configured limit.
    #[error("frame of {size} bytes exceeds the {limit} byte limit")]
    TooLarge {
        /// Declared size.
        size: usize,
        /// Limit in force.
        limit: usize,
    },
    /// The frame data does not start with a valid RLP message id.
    #[error("invalid message id")]
    InvalidId,
    /// Reading or writing the socket failed.
    #[error("frame i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// One message as carried in a frame: its absolute id and its (possibly compressed) data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Absolute message id (`0x00..0x10` p2p, then the shared capabilities' ranges).
    pub id: u64,
    /// `msg-data`, still compressed if snappy is in use.
    pub data: Bytes,
}

/// The sending half: AES-256-CTR keystream and `egress-mac`.
pub struct FrameEncoder {
    aes: Aes256Ctr,
    mac: MacState,
}

/// The receiving half: AES-256-CTR keystream, `ingress-mac` and the size limit.
pub struct FrameDecoder {
    aes: Aes256Ctr,
    mac: MacState,
    /// Body length (with padding) of the frame whose header was read, and its real size.
    pending: Option<(usize, usize)>,
    max_frame_size: usize,
}

/// Encoder and decoder together, for use with [`tokio_util::codec::Framed`].
pub struct FrameCodec {
    /// Sending half.
    pub encoder: FrameEncoder,
    /// Receiving half.
    pub decoder: FrameDecoder,
}

impl FrameCodec {
    /// Builds both halves from the handshake secrets. The IV is zero: every session has
    /// fresh keys (spec; the known keystream-reuse issue is listed in `rlpx.md`).
    pub fn new(secrets: &Secrets) -> Self {
        let iv = [0u8; 16];
        Self {
            encoder: FrameEncoder {
                aes: Aes256Ctr::new(&secrets.aes.into(), &iv.into()),
                mac: MacState::new(&secrets.mac, secrets.egress_mac.clone()),
            },
            decoder: FrameDecoder {
                aes: Aes256Ctr::new(&secrets.aes.into(), &iv.into()),
                mac: MacState::new(&secrets.mac, secrets.ingress_mac.clone()),
                pending: None,
                max_frame_size: MAX_FRAME_SIZE,
            },
        }
    }

    /// Sets the largest frame the decoder accepts (at most [`MAX_FRAME_SIZE`]).
    pub fn set_max_frame_size(&mut self, limit: usize) {
        self.decoder.set_max_frame_size(limit);
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(16) * 16
}

impl FrameEncoder {
    /// Appends the frame for message `id` with payload `data` to `dst`.
    pub fn encode_frame(&mut self, id: u64, data: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        let size = id.length() + data.len();
        if size > MAX_FRAME_SIZE {
            return Err(Error::TooLarge {
                size,
                limit: MAX_FRAME_SIZE,
            });
        }
        let body_len = padded(size);
        dst.reserve(HEADER_LEN + body_len + MAC_LEN);
        let mut header = [0u8; 16];
        header[..3].copy_from_slice(&(size as u32).to_be_bytes()[1..]);
        header[3..6].copy_from_slice(&HEADER_DATA);
        self.aes.apply_keystream(&mut header);
        let header_mac = self.mac.header(&header);
        dst.put_slice(&header);
        dst.put_slice(&header_mac);

        let start = dst.len();
        id.encode(dst);
        dst.put_slice(data);
        dst.put_bytes(0, body_len - size);
        let body = &mut dst[start..]; // ok: start was dst.len() before the body was written
        self.aes.apply_keystream(body);
        let frame_mac = self.mac.frame(body);
        dst.put_slice(&frame_mac);
        Ok(())
    }
}

impl FrameDecoder {
    /// Sets the largest frame accepted (at most [`MAX_FRAME_SIZE`]).
    pub fn set_max_frame_size(&mut self, limit: usize) {
        self.max_frame_size = limit.min(MAX_FRAME_SIZE);
    }

    /// Decodes one frame from the front of `src`; `Ok(None)` means more bytes are needed.
    pub fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<RawMessage>, Error> {
        let (body_len, size) = match self.pending {
            Some(p) => p,
            None => {
                if src.len() < HEADER_LEN {
                    return Ok(None);
                }
                let mut header = [0u8; 16];
                header.copy_from_slice(&src[..16]);
                let expected = self.mac.header(&header);
                if !crate::ecies::constant_time_eq(&expected, &src[16..32]) {
                    return Err(Error::HeaderMac);
                }
                self.aes.apply_keystream(&mut header);
                let size = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
                if size > self.max_frame_size {
                    return Err(Error::TooLarge {
                        size,
                        limit: self.max_frame_size,
                    });
                }
                src.advance(HEADER_LEN);
                let p = (padded(size), size);
                self.pending = Some(p);
                p
            }
        };
        if src.len() < body_len + MAC_LEN {
            // Grow towards the frame as bytes arrive, never ahead of them: a peer that
            // declares 16 MiB and stalls costs us only what it actually sent.
            return Ok(None);
        }
        self.pending = None;
        let mut body = src.split_to(body_len);
        let expected = self.mac.frame(&body);
        let ok = crate::ecies::constant_time_eq(&expected, &src[..MAC_LEN]);
        src.advance(MAC_LEN);
        if !ok {
            return Err(Error::FrameMac);
        }
        self.aes.apply_keystream(&mut body);
        body.truncate(size);
        let mut view: &[u8] = &body;
        let id = u64::decode(&mut view).map_err(|_| Error::InvalidId)?;
        let id_len = body.len() - view.len();
        body.advance(id_len);
        Ok(Some(RawMessage {
            id,
            data: body.freeze(),
        }))
    }
}

impl Decoder for FrameDecoder {
    type Item = RawMessage;
    type Error = Error;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawMessage>, Error> {
        self.decode_frame(src)
    }
}

impl Encoder<RawMessage> for FrameEncoder {
    type Error = Error;
    fn encode(&mut self, item: RawMessage, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_frame(item.id, &item.data, dst)
    }
}

/// A message to frame, borrowed: the writer frames compressed bodies straight from its
/// reused scratch buffer, with no `Bytes` made per message.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Absolute message id.
    pub id: u64,
    /// `msg-data`, compressed already if snappy is in use.
    pub data: &'a [u8],
}

impl Encoder<Frame<'_>> for FrameEncoder {
    type Error = Error;
    fn encode(&mut self, item: Frame<'_>, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_frame(item.id, item.data, dst)
    }
}

impl Decoder for FrameCodec {
    type Item = RawMessage;
    type Error = Error;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawMessage>, Error> {
        self.decoder.decode_frame(src)
    }
}

impl Encoder<RawMessage> for FrameCodec {
    type Error = Error;
    fn encode(&mut self, item: RawMessage, dst: &mut BytesMut) -> Result<(), Error> {
        self.encoder.encode_frame(item.id, &item.data, dst)
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
