//! The test suites' RLPx connection (go-ethereum's `ethtest.Conn`): raw frames over our
//! handshake and framing, with message ids as go-ethereum's test client numbers them (p2p
//! 0x00–0x0f, then eth from 0x10), snappy once the Hello exchange asks for it, and a 2 s
//! deadline on every read and write.

use std::time::Duration;

use alloy_rlp::{Encodable, Header};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rlpx::codec::{FrameCodec, RawMessage};
use rlpx::p2p::{self, DisconnectReason, Hello, Snappy};
use secp256k1::SecretKey;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Read and write deadline (go-ethereum's `timeout` in `conn.go`, 2 s): a loopback or LAN
/// peer answers a header or body request well within it.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);

/// p2p message ids.
pub(crate) const HANDSHAKE_MSG: u64 = 0x00;
pub(crate) const DISC_MSG: u64 = 0x01;
pub(crate) const PING_MSG: u64 = 0x02;
pub(crate) const PONG_MSG: u64 = 0x03;
/// Where eth messages start (go-ethereum's `baseProtoLen`).
pub(crate) const ETH_OFFSET: u64 = 16;
/// eth messages the test client numbers (`ethProtoLen`).
pub(crate) const ETH_LEN: u64 = 18;

/// Why a read or write failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("i/o timeout after {TIMEOUT:?}")]
    Timeout,
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Frame(#[from] rlpx::codec::Error),
    #[error("{0}")]
    P2p(#[from] p2p::Error),
}

/// Capabilities as a Hello carries them: `(name, version)`, the name as raw bytes.
pub(crate) type Caps = Vec<(Vec<u8>, u32)>;

/// One connection to the node under test.
pub(crate) struct Conn {
    framed: Framed<TcpStream, FrameCodec>,
    snappy: Option<Snappy>,
    key: SecretKey,
    /// The capabilities our Hello offers.
    pub(crate) caps: Caps,
    /// The highest eth version we speak (go-ethereum's `ourHighestProtoVersion`).
    pub(crate) our_highest: u32,
    /// The eth version agreed in the Hello exchange, 0 before it.
    pub(crate) negotiated: u32,
}

/// The RLP of a Hello with arbitrary fields: `[version, "", [[name, version], ...], 0, id]`
/// (go-ethereum's `protoHandshake` with empty `Name` and zero `ListenPort`), which can
/// carry what our [`Hello`] type will not hold (non-UTF-8 names, ids of any length).
pub(crate) fn encode_hello(version: u64, caps: &[(Vec<u8>, u32)], id: &[u8]) -> Vec<u8> {
    let mut caps_rlp = Vec::new();
    for (name, v) in caps {
        let payload_length = name.as_slice().length() + v.length();
        Header {
            list: true,
            payload_length,
        }
        .encode(&mut caps_rlp);
        name.as_slice().encode(&mut caps_rlp);
        v.encode(&mut caps_rlp);
    }
    let mut body = Vec::new();
    version.encode(&mut body);
    b"".as_slice().encode(&mut body);
    Header {
        list: true,
        payload_length: caps_rlp.len(),
    }
    .encode(&mut body);
    body.extend_from_slice(&caps_rlp);
    0u64.encode(&mut body);
    id.encode(&mut body);
    let mut out = Vec::with_capacity(body.len() + 4);
    Header {
        list: true,
        payload_length: body.len(),
    }
    .encode(&mut out);
    out.extend_from_slice(&body);
    out
}

/// Our public key as go-ethereum's `crypto.FromECDSAPub(..)[1:]`: 64 bytes.
pub(crate) fn pub64(key: &SecretKey) -> Vec<u8> {
    let full = secp256k1::PublicKey::from_secret_key_global(key).serialize_uncompressed();
    full[1..].to_vec()
}

impl Conn {
    /// Dials `node` and runs the ECIES handshake as `key` (go-ethereum's `dialAs`), offering
    /// eth/70 and eth/69 as go-ethereum's test client does.
    pub(crate) async fn dial_as(node: &discovery::Node, key: SecretKey) -> Result<Self, String> {
        let remote = node
            .id
            .public_key()
            .ok_or("the node id is not a valid public key")?;
        let config = rlpx::Config::default();
        let hs = rlpx::conn::connect_tcp(node.tcp_addr(), &key, remote, &config)
            .await
            .map_err(|e| format!("dial {}: {e}", node.tcp_addr()))?;
        Ok(Self {
            framed: hs.into_framed(),
            snappy: None,
            key,
            caps: vec![(b"eth".to_vec(), 70), (b"eth".to_vec(), 69)],
            our_highest: 70,
            negotiated: 0,
        })
    }

    /// Dials with a fresh key (go-ethereum's `dial`).
    pub(crate) async fn dial(node: &discovery::Node) -> Result<Self, String> {
        let key = SecretKey::new(&mut rand::rng());
        Self::dial_as(node, key).await
    }

    /// The next message: its id and (decompressed) data, within [`TIMEOUT`].
    pub(crate) async fn read(&mut self) -> Result<(u64, Bytes), ConnError> {
        let msg = tokio::time::timeout(TIMEOUT, self.framed.next())
            .await
            .map_err(|_| ConnError::Timeout)?
            .ok_or(ConnError::Closed)??;
        let data = match &mut self.snappy {
            Some(s) => s.decompress(&msg.data)?,
            None => msg.data,
        };
        Ok((msg.id, data))
    }

    /// Sends message `id` (compressed once snappy is on), within [`TIMEOUT`].
    pub(crate) async fn write(&mut self, id: u64, payload: &[u8]) -> Result<(), ConnError> {
        let data = match &mut self.snappy {
            Some(s) => s.compress(payload)?,
            None => Bytes::copy_from_slice(payload),
        };
        tokio::time::timeout(TIMEOUT, self.framed.send(RawMessage { id, data }))
            .await
            .map_err(|_| ConnError::Timeout)??;
        Ok(())
    }

    /// Sends an eth message (code relative to the eth offset).
    pub(crate) async fn write_eth(&mut self, code: u8, payload: &[u8]) -> Result<(), ConnError> {
        self.write(ETH_OFFSET + u64::from(code), payload).await
    }

    /// Reads until a message with id `id` (go-ethereum's `ReadMsg`), returning its data.
    pub(crate) async fn read_msg(&mut self, id: u64) -> Result<Bytes, ConnError> {
        loop {
            let (got, data) = self.read().await?;
            if got == id {
                return Ok(data);
            }
        }
    }

    /// Reads until an eth message (go-ethereum's `ReadEth`): answers pings, and turns a
    /// Disconnect into `Err(None)`.
    pub(crate) async fn read_eth(&mut self) -> Result<(u8, Bytes), Option<ConnError>> {
        loop {
            let (id, data) = self.read().await.map_err(Some)?;
            if id == DISC_MSG {
                return Err(None);
            }
            if id == PING_MSG {
                let _ = self.write(PONG_MSG, &p2p::EMPTY_LIST).await;
                continue;
            }
            if (ETH_OFFSET..ETH_OFFSET + ETH_LEN).contains(&id) {
                return Ok((u8::try_from(id - ETH_OFFSET).unwrap_or(u8::MAX), data));
            }
        }
    }

    /// The Hello exchange (go-ethereum's `handshake`): ours out, theirs in, snappy on if
    /// they speak p2p 5, and an eth version agreed.
    pub(crate) async fn handshake(&mut self) -> Result<(), String> {
        let hello = encode_hello(5, &self.caps, &pub64(&self.key));
        self.write(HANDSHAKE_MSG, &hello)
            .await
            .map_err(|e| format!("write to connection failed: {e}"))?;
        let (code, data) = self
            .read()
            .await
            .map_err(|e| format!("erroring reading handshake: {e}"))?;
        if code != HANDSHAKE_MSG {
            return Err(format!("bad handshake: got msg code {code}"));
        }
        let msg = Hello::decode(&data).map_err(|e| format!("error decoding handshake msg: {e}"))?;
        if msg.protocol_version >= 5 {
            self.snappy = Some(Snappy::default());
        }
        self.negotiated = msg
            .capabilities
            .iter()
            .filter(|c| c.name == "eth" && c.version <= self.our_highest)
            .map(|c| c.version)
            .max()
            .unwrap_or(0);
        if self.negotiated == 0 {
            let caps: Vec<String> = msg
                .capabilities
                .iter()
                .map(|c| format!("{}/{}", c.name, c.version))
                .collect();
            return Err(format!(
                "could not negotiate eth protocol (remote caps: {caps:?}, local eth version: {})",
                self.our_highest
            ));
        }
        Ok(())
    }
}

/// The reason in a Disconnect body, for messages.
pub(crate) fn disconnect_reason(data: &[u8]) -> String {
    match DisconnectReason::decode_body(data) {
        Ok(r) => format!("{r} ({:#04x})", r.code()),
        Err(_) => format!(
            "undecodable reason 0x{}",
            hex::encode(&data[..data.len().min(8)])
        ),
    }
}
