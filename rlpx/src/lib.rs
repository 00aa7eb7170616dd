//! # RLPx: the encrypted transport of devp2p
//!
//! The layers, bottom up (spec: `rlpx.md`; EIP-8; EIP-706):
//!
//! | layer | module | kind |
//! |---|---|---|
//! | ECIES encryption | [`ecies`] | pure functions |
//! | auth/ack handshake and secret derivation | [`handshake`] | sans-IO |
//! | frame MAC | [`mac`] | pure state |
//! | framing (`Decoder`/`Encoder`) | [`codec`] | sans-IO codec |
//! | p2p messages: Hello, Disconnect, Ping/Pong, snappy | [`p2p`] | pure |
//! | capability negotiation and id routing | [`caps`] | pure |
//! | connection typestates: [`Handshaked`] → [`Established`] → [`Peer`] | [`conn`], [`peer`] | tokio |
//!
//! A [`Peer`] runs one reader task, which routes each message by id into one bounded
//! channel per shared protocol ([`ProtocolHandle`]), and one writer task fed by a single
//! outbound queue ([`ProtocolSender`]), which also pings every 15 s. The p2p layer runs over
//! any `AsyncRead + AsyncWrite` stream, so tests use an in-memory duplex.
//!
//! # Example
//!
//! Two nodes over an in-memory pipe, sharing one subprotocol:
//!
//! ```
//! use rlpx::{Config, Protocol, conn};
//! use secp256k1::{PublicKey, SecretKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rlpx::Error> {
//! let (a_io, b_io) = tokio::io::duplex(64 * 1024);
//! let (a_key, b_key) = (SecretKey::new(&mut rand::rng()), SecretKey::new(&mut rand::rng()));
//! let b_id = PublicKey::from_secret_key_global(&b_key);
//! let config = Config { protocols: vec![Protocol::new("chat", 1, 2)], ..Config::default() };
//!
//! let (a, b) = tokio::join!(
//!     conn::dial(a_io, None, &a_key, b_id, &config),
//!     conn::listen_one(b_io, None, &b_key, &config),
//! );
//! let (mut a, mut b) = (a?, b?);
//! let a_chat = a.take_protocol("chat").unwrap();
//! let mut b_chat = b.take_protocol("chat").unwrap();
//! a_chat.send(1, bytes::Bytes::from_static(b"\xc5hello")).await.unwrap();
//! assert_eq!(b_chat.recv().await, Some((1, bytes::Bytes::from_static(b"\xc5hello"))));
//! # Ok(()) }
//! ```
//!
//! # Errors and disconnects
//!
//! Each layer has one error enum: [`ecies::Error`] → [`handshake::Error`] →
//! [`codec::Error`] / [`p2p::Error`] → [`Error`]. [`Error::disconnect_reason`] says which
//! `Disconnect` reason, if any, the peer is sent for each.

pub mod caps;
pub mod codec;
pub mod conn;
pub mod ecies;
pub mod handshake;
pub mod mac;
pub mod p2p;
pub mod peer;

pub use caps::{Protocol, Shared};
pub use conn::{Established, Handshaked};
pub use p2p::{Capability, DisconnectReason, Hello};
pub use peer::{CloseReason, Info, Peer, ProtocolHandle, ProtocolSender, SendError};

use std::time::Duration;

/// Session settings. Defaults follow go-ethereum where it has a value.
#[derive(Debug, Clone)]
pub struct Config {
    /// Client id sent in Hello. Default `devp2p-rs/<version>`.
    pub client_id: String,
    /// Subprotocols we offer. Default none (p2p only).
    pub protocols: Vec<Protocol>,
    /// Listen port advertised in Hello (legacy, informational). Default 0.
    pub listen_port: u16,
    /// Time allowed for the ECIES handshake, and separately for the Hello exchange.
    /// Default 5 s.
    pub handshake_timeout: Duration,
    /// Ping interval. Default 15 s (geth `pingInterval`).
    pub ping_interval: Duration,
    /// A peer that sends nothing at all for this long is dropped with `PingTimeout`.
    /// Default 30 s: two missed ping rounds (geth `frameReadTimeout`).
    pub idle_timeout: Duration,
    /// A frame write that stalls this long fails the session. Default 20 s (geth
    /// `frameWriteTimeout`).
    pub write_timeout: Duration,
    /// Messages buffered per protocol before the reader waits. Default 64.
    pub protocol_queue: usize,
    /// Uncompressed bytes of received messages buffered per peer before the reader waits.
    /// Must be at least the 16 MiB message limit. Default 32 MiB.
    pub inbound_budget: usize,
    /// Messages queued for sending per peer. Default 256.
    pub outbound_queue: usize,
    /// Bytes queued for sending per peer before senders wait. Default 32 MiB.
    pub outbound_budget: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            client_id: concat!("devp2p-rs/v", env!("CARGO_PKG_VERSION")).into(),
            protocols: Vec::new(),
            listen_port: 0,
            handshake_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(20),
            protocol_queue: 64,
            inbound_budget: 2 * p2p::MAX_MESSAGE_SIZE,
            outbound_queue: 256,
            outbound_budget: 2 * p2p::MAX_MESSAGE_SIZE,
        }
    }
}

/// Session-level errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ECIES handshake failed. No `Disconnect` is sent (no session keys yet).
    #[error(transparent)]
    Handshake(#[from] handshake::Error),
    /// A frame was corrupt (MAC mismatch: the connection is closed without `Disconnect`)
    /// or too large / badly numbered (`Disconnect(BreachOfProtocol)`).
    #[error(transparent)]
    Frame(#[from] codec::Error),
    /// A base-protocol message was malformed or over a bound: `Disconnect(BreachOfProtocol)`.
    #[error(transparent)]
    P2p(#[from] p2p::Error),
    /// The first message after the handshake was neither Hello nor Disconnect:
    /// `Disconnect(BreachOfProtocol)`.
    #[error("expected Hello, got message {0:#x}")]
    ExpectedHello(u64),
    /// The Hello's node id differs from the handshake key: `Disconnect(UnexpectedIdentity)`.
    #[error("hello node id differs from the handshake identity")]
    UnexpectedIdentity,
    /// The Hello's node id is all zeros: `Disconnect(NullIdentity)`.
    #[error("null node identity")]
    NullIdentity,
    /// None of our protocols is shared: `Disconnect(UselessPeer)`.
    #[error("no shared capabilities")]
    NoSharedCapabilities,
    /// A message decompressed (or arrived) larger than 16 MiB: `Disconnect(BreachOfProtocol)`.
    #[error("message of {0} bytes exceeds the 16 MiB limit")]
    MessageTooLarge(usize),
    /// The remote sent `Disconnect` with this reason; nothing is sent back.
    #[error("remote disconnected: {0}")]
    Disconnected(DisconnectReason),
    /// A step did not finish in time; the connection is closed without `Disconnect`.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The remote closed the connection.
    #[error("connection closed")]
    Closed,
}

impl Error {
    /// The `Disconnect` reason sent to the peer for this error, or `None` when the
    /// connection is just closed.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        use DisconnectReason as R;
        match self {
            Error::Handshake(_) | Error::Disconnected(_) | Error::Timeout(_) | Error::Closed => {
                None
            }
            Error::Frame(
                codec::Error::HeaderMac | codec::Error::FrameMac | codec::Error::Io(_),
            ) => None,
            Error::Frame(_)
            | Error::P2p(_)
            | Error::ExpectedHello(_)
            | Error::MessageTooLarge(_) => Some(R::BreachOfProtocol),
            Error::UnexpectedIdentity => Some(R::UnexpectedIdentity),
            Error::NullIdentity => Some(R::NullIdentity),
            Error::NoSharedCapabilities => Some(R::UselessPeer),
        }
    }
}
