//! The `p2p` base protocol messages (spec: `rlpx.md`, "p2p Capability"): Hello,
//! Disconnect, Ping and Pong, plus snappy (EIP-706) helpers.

use alloy_rlp::{BufMut, Decodable, Encodable, Header};
use bytes::Bytes;
use secp256k1::PublicKey;

/// The p2p protocol version we speak: 5 adds snappy compression (EIP-706).
pub const PROTOCOL_VERSION: u64 = 5;
/// Message ids `0x00..0x10` are reserved for p2p; subprotocols start here.
pub const BASE_OFFSET: u64 = 0x10;
/// Hello message id.
pub const HELLO: u64 = 0x00;
/// Disconnect message id.
pub const DISCONNECT: u64 = 0x01;
/// Ping message id.
pub const PING: u64 = 0x02;
/// Pong message id.
pub const PONG: u64 = 0x03;
/// Largest uncompressed message (spec: "larger than 16 MiB should be rejected").
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// Largest Hello frame we read before the session exists. Real Hellos are a few hundred
/// bytes; this bounds what an unauthenticated-by-Hello peer can make us buffer.
pub const MAX_HELLO_SIZE: usize = 64 * 1024;
/// Longest client id accepted (geth's are ~60 bytes; the field is free text).
pub const MAX_CLIENT_ID_LEN: usize = 1024;
/// Most capabilities accepted in a Hello (real clients send fewer than 16).
pub const MAX_CAPABILITIES: usize = 64;
/// Longest capability name accepted. The spec says eight characters; we allow a little more
/// so an unknown future capability does not cost us the peer, but keep it bounded.
pub const MAX_CAP_NAME_LEN: usize = 32;

/// Errors decoding base-protocol messages; each is answered with
/// `Disconnect(BreachOfProtocol)` (or `UselessPeer` for an unusable Hello, see [`crate::Error`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The RLP does not have the expected shape.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A field is over its bound.
    #[error("{0} too long")]
    TooLong(&'static str),
    /// Snappy decompression failed or declared too large an output.
    #[error("snappy: {0}")]
    Snappy(String),
}

/// A capability as advertised in Hello: name and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Capability {
    /// Short ASCII name, e.g. `eth`.
    pub name: String,
    /// Version number.
    pub version: u32,
}

impl Capability {
    /// A capability from name and version.
    pub fn new(name: impl Into<String>, version: u32) -> Self {
        Self {
            name: name.into(),
            version,
        }
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.name, self.version)
    }
}

impl Encodable for Capability {
    fn encode(&self, out: &mut dyn BufMut) {
        let payload_length = self.name.as_bytes().length() + self.version.length();
        Header {
            list: true,
            payload_length,
        }
        .encode(out);
        self.name.as_bytes().encode(out);
        self.version.encode(out);
    }
    fn length(&self) -> usize {
        let p = self.name.as_bytes().length() + self.version.length();
        p + alloy_rlp::length_of_length(p)
    }
}

/// The Hello message (0x00).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// p2p version; any value is accepted (EIP-8), 5 and above enable snappy.
    pub protocol_version: u64,
    /// Free-text client identity, bounded by [`MAX_CLIENT_ID_LEN`].
    pub client_id: String,
    /// Advertised capabilities.
    pub capabilities: Vec<Capability>,
    /// Legacy listen port; informational only.
    pub listen_port: u16,
    /// The node id (64-byte public key).
    pub id: [u8; 64],
}

fn list_payload<'a>(buf: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], Error> {
    let h = Header::decode(buf).map_err(|_| Error::Malformed(what))?;
    if !h.list || h.payload_length > buf.len() {
        return Err(Error::Malformed(what));
    }
    let (payload, rest) = buf.split_at(h.payload_length);
    *buf = rest;
    Ok(payload)
}

fn bytes_field<'a>(buf: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], Error> {
    let h = Header::decode(buf).map_err(|_| Error::Malformed(what))?;
    if h.list || h.payload_length > buf.len() {
        return Err(Error::Malformed(what));
    }
    let (payload, rest) = buf.split_at(h.payload_length);
    *buf = rest;
    Ok(payload)
}

impl Hello {
    /// RLP-encodes the Hello body.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let caps_len: usize = self.capabilities.iter().map(Encodable::length).sum();
        let payload_length = self.protocol_version.length()
            + self.client_id.as_bytes().length()
            + caps_len
            + alloy_rlp::length_of_length(caps_len)
            + self.listen_port.length()
            + self.id.length();
        let mut out = Vec::with_capacity(payload_length + 4);
        Header {
            list: true,
            payload_length,
        }
        .encode(&mut out);
        self.protocol_version.encode(&mut out);
        self.client_id.as_bytes().encode(&mut out);
        Header {
            list: true,
            payload_length: caps_len,
        }
        .encode(&mut out);
        for c in &self.capabilities {
            c.encode(&mut out);
        }
        self.listen_port.encode(&mut out);
        self.id.encode(&mut out);
        out
    }

    /// Decodes a Hello body, ignoring additional list elements (EIP-8) and enforcing the
    /// size bounds above. The node id is checked against the handshake key by the caller.
    pub fn decode(mut buf: &[u8]) -> Result<Self, Error> {
        let mut f = list_payload(&mut buf, "hello")?;
        let protocol_version = u64::decode(&mut f).map_err(|_| Error::Malformed("version"))?;
        let client_id = bytes_field(&mut f, "client id")?;
        if client_id.len() > MAX_CLIENT_ID_LEN {
            return Err(Error::TooLong("client id"));
        }
        let client_id = String::from_utf8_lossy(client_id).into_owned();
        // Lossy decoding can triple invalid bytes; keep the bound on what we store.
        if client_id.len() > MAX_CLIENT_ID_LEN {
            return Err(Error::TooLong("client id"));
        }
        let mut caps_buf = list_payload(&mut f, "capabilities")?;
        let mut capabilities = Vec::new();
        while !caps_buf.is_empty() {
            if capabilities.len() == MAX_CAPABILITIES {
                return Err(Error::TooLong("capability list"));
            }
            let mut c = list_payload(&mut caps_buf, "capability")?;
            let name = bytes_field(&mut c, "capability name")?;
            if name.len() > MAX_CAP_NAME_LEN {
                return Err(Error::TooLong("capability name"));
            }
            let version = u32::decode(&mut c).map_err(|_| Error::Malformed("cap version"))?;
            let name = String::from_utf8_lossy(name).into_owned();
            if name.len() > MAX_CAP_NAME_LEN {
                return Err(Error::TooLong("capability name"));
            }
            capabilities.push(Capability { name, version });
        }
        let listen_port = u16::decode(&mut f).map_err(|_| Error::Malformed("listen port"))?;
        let id = <[u8; 64]>::decode(&mut f).map_err(|_| Error::Malformed("node id"))?;
        Ok(Self {
            protocol_version,
            client_id,
            capabilities,
            listen_port,
            id,
        })
    }

    /// The node id as a public key, if it is a valid curve point.
    pub fn public_key(&self) -> Option<PublicKey> {
        crate::handshake::id_to_key(&self.id)
    }
}

/// Disconnect reasons (spec table under "Disconnect (0x01)").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// 0x00 Disconnect requested.
    DisconnectRequested,
    /// 0x01 TCP sub-system error.
    TcpSubsystemError,
    /// 0x02 Breach of protocol, e.g. a malformed message, bad RLP.
    BreachOfProtocol,
    /// 0x03 Useless peer.
    UselessPeer,
    /// 0x04 Too many peers.
    TooManyPeers,
    /// 0x05 Already connected.
    AlreadyConnected,
    /// 0x06 Incompatible P2P protocol version.
    IncompatibleVersion,
    /// 0x07 Null node identity received.
    NullIdentity,
    /// 0x08 Client quitting.
    ClientQuitting,
    /// 0x09 Unexpected identity in handshake.
    UnexpectedIdentity,
    /// 0x0a Identity is the same as this node (connected to itself).
    ConnectedToSelf,
    /// 0x0b Ping timeout.
    PingTimeout,
    /// 0x10 Some other reason specific to a subprotocol.
    SubprotocolError,
    /// A code the spec does not define; kept so it can be logged and counted.
    Unknown(u8),
}

impl DisconnectReason {
    /// The wire code.
    pub fn code(self) -> u8 {
        use DisconnectReason::*;
        match self {
            DisconnectRequested => 0x00,
            TcpSubsystemError => 0x01,
            BreachOfProtocol => 0x02,
            UselessPeer => 0x03,
            TooManyPeers => 0x04,
            AlreadyConnected => 0x05,
            IncompatibleVersion => 0x06,
            NullIdentity => 0x07,
            ClientQuitting => 0x08,
            UnexpectedIdentity => 0x09,
            ConnectedToSelf => 0x0a,
            PingTimeout => 0x0b,
            SubprotocolError => 0x10,
            Unknown(c) => c,
        }
    }

    /// The reason for a wire code.
    pub fn from_code(code: u8) -> Self {
        use DisconnectReason::*;
        match code {
            0x00 => DisconnectRequested,
            0x01 => TcpSubsystemError,
            0x02 => BreachOfProtocol,
            0x03 => UselessPeer,
            0x04 => TooManyPeers,
            0x05 => AlreadyConnected,
            0x06 => IncompatibleVersion,
            0x07 => NullIdentity,
            0x08 => ClientQuitting,
            0x09 => UnexpectedIdentity,
            0x0a => ConnectedToSelf,
            0x0b => PingTimeout,
            0x10 => SubprotocolError,
            c => Unknown(c),
        }
    }

    /// The Disconnect body: `[reason]`.
    pub fn encode_body(self) -> Vec<u8> {
        let code = self.code();
        let mut out = Vec::with_capacity(3);
        Header {
            list: true,
            payload_length: code.length(),
        }
        .encode(&mut out);
        code.encode(&mut out);
        out
    }

    /// Decodes a Disconnect body. Real clients send `[reason]`, a bare `reason`, or `[]`
    /// (read as `DisconnectRequested`); all are accepted.
    pub fn decode_body(mut buf: &[u8]) -> Result<Self, Error> {
        let Some(&first) = buf.first() else {
            return Ok(Self::DisconnectRequested);
        };
        if first >= 0xc0 {
            let mut payload = list_payload(&mut buf, "disconnect")?;
            if payload.is_empty() {
                return Ok(Self::DisconnectRequested);
            }
            let code = u8::decode(&mut payload).map_err(|_| Error::Malformed("reason"))?;
            return Ok(Self::from_code(code));
        }
        let code = u8::decode(&mut buf).map_err(|_| Error::Malformed("reason"))?;
        Ok(Self::from_code(code))
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use DisconnectReason::*;
        let s = match self {
            DisconnectRequested => "disconnect requested",
            TcpSubsystemError => "TCP sub-system error",
            BreachOfProtocol => "breach of protocol",
            UselessPeer => "useless peer",
            TooManyPeers => "too many peers",
            AlreadyConnected => "already connected",
            IncompatibleVersion => "incompatible p2p protocol version",
            NullIdentity => "null node identity",
            ClientQuitting => "client quitting",
            UnexpectedIdentity => "unexpected identity",
            ConnectedToSelf => "connected to self",
            PingTimeout => "ping timeout",
            SubprotocolError => "subprotocol error",
            Unknown(c) => return write!(f, "unknown reason {c:#04x}"),
        };
        f.write_str(s)
    }
}

/// The RLP empty list, the body of Ping and Pong.
pub const EMPTY_LIST: [u8; 1] = [0xc0];

/// The size a snappy body declares it expands to, checked against [`MAX_MESSAGE_SIZE`]:
/// what receiving it will cost, known before anything is allocated for it.
pub fn decompressed_len(data: &[u8]) -> Result<usize, Error> {
    let len = snap::raw::decompress_len(data).map_err(|e| Error::Snappy(e.to_string()))?;
    if len > MAX_MESSAGE_SIZE {
        return Err(Error::Snappy(format!(
            "declared size {len} exceeds {MAX_MESSAGE_SIZE}"
        )));
    }
    Ok(len)
}

/// Snappy compression state for one session (the encoder keeps its hash table).
pub struct Snappy {
    enc: snap::raw::Encoder,
    dec: snap::raw::Decoder,
}

impl Default for Snappy {
    fn default() -> Self {
        Self {
            enc: snap::raw::Encoder::new(),
            dec: snap::raw::Decoder::new(),
        }
    }
}

impl Snappy {
    /// Compresses a message body.
    pub fn compress(&mut self, data: &[u8]) -> Result<Bytes, Error> {
        self.enc
            .compress_vec(data)
            .map(Bytes::from)
            .map_err(|e| Error::Snappy(e.to_string()))
    }

    /// Compresses a message body into `scratch` (grown as needed and kept, so a session
    /// compressing many messages allocates and zeroes its buffer once); the compressed
    /// bytes.
    pub fn compress_into<'a>(
        &mut self,
        data: &[u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], Error> {
        let max = snap::raw::max_compress_len(data.len());
        if scratch.len() < max {
            scratch.resize(max, 0);
        }
        let n = self
            .enc
            .compress(data, scratch)
            .map_err(|e| Error::Snappy(e.to_string()))?;
        Ok(&scratch[..n])
    }

    /// Expands a message body into `out`, which must hold exactly
    /// [`decompressed_len`] bytes; the bytes written.
    pub fn decompress_into(&mut self, data: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        self.dec
            .decompress(data, out)
            .map_err(|e| Error::Snappy(e.to_string()))
    }

    /// Decompresses a message body, checking the declared length against
    /// [`MAX_MESSAGE_SIZE`] before allocating anything for it.
    pub fn decompress(&mut self, data: &[u8]) -> Result<Bytes, Error> {
        let len = decompressed_len(data)?;
        let mut out = vec![0u8; len];
        let n = self
            .dec
            .decompress(data, &mut out)
            .map_err(|e| Error::Snappy(e.to_string()))?;
        out.truncate(n);
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
#[path = "p2p_tests.rs"]
mod tests;
