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
//! | byte budgets (per peer, per node) and the write-progress rule | [`budget`] | sans-IO |
//! | the node's pool of large buffers (16 MiB at most) | [`buffers`] | shared state |
//! | fixed-bucket latency histograms for metrics (here so every layer above can record) | [`histogram`] | atomics |
//! | connection typestates: [`Handshaked`] → [`Established`] → [`Peer`] | [`conn`], [`peer`] | tokio |
//!
//! A [`Peer`] runs one reader task, which routes each message by id into one bounded
//! queue per shared protocol ([`ProtocolHandle`]), filled and woken a batch at a time, and one writer task fed by a single
//! outbound queue ([`ProtocolSender`]), which also pings every 15 s. The p2p layer runs over
//! any `AsyncRead + AsyncWrite` stream, so tests use an in-memory duplex.
//!
//! What a peer can make us hold is bounded per peer and for the whole node ([`budget`]):
//! by default 8 MiB of received messages and 4 MiB queued for sending per peer (or one
//! larger message, up to the 16 MiB limit), within 128 MiB and 64 MiB for all peers
//! sharing a [`NodeBudget`]; and a peer that does not take what it is sent (2 MiB per
//! 20 s while messages are queued for it) is dropped.
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

pub mod budget;
pub mod buffers;
pub mod caps;
pub mod codec;
pub mod conn;
pub mod ecies;
pub mod handshake;
pub mod histogram;
mod inbox;
pub mod mac;
pub mod p2p;
pub mod peer;

pub use budget::NodeBudget;
pub use caps::{Protocol, Shared};
pub use conn::{Established, Handshaked};
pub use p2p::{Capability, DisconnectReason, Hello};
pub use peer::{CloseReason, Info, Peer, ProtocolHandle, ProtocolSender, SendError};

use std::time::Duration;

const MIB: usize = 1024 * 1024;

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
    /// A write that stalls this long ends the session, and so does a peer that, while
    /// messages are queued for it, takes fewer than [`Config::min_write_progress`] bytes
    /// in this long (the period is not restarted by small writes: see [`budget`]). Either
    /// closes with `Local(TcpSubsystemError)` (go-ethereum's `DiscNetworkError` for a
    /// failed write). Default 20 s (geth `frameWriteTimeout`).
    pub write_timeout: Duration,
    /// Bytes a peer must take per [`Config::write_timeout`] while messages are queued for
    /// it. Default 2 MiB, one eth answer at the soft limit: about 100 KiB/s, a fifth of
    /// what geth demands of its largest messages (10 MiB per 20 s write timeout). A single
    /// message larger than this must still be written within one period.
    pub min_write_progress: usize,
    /// Messages buffered per protocol before the reader waits. Default 64.
    pub protocol_queue: usize,
    /// Uncompressed bytes of received messages held per peer before the reader waits,
    /// taken on the size a snappy body declares, before it is expanded. Default 8 MiB:
    /// eth answers stop at the 2 MiB soft limit, so this holds four while the protocol
    /// handles another; a single larger message (up to the 16 MiB limit, e.g. a 10 MiB
    /// `NewBlock`) is admitted alone.
    pub inbound_budget: usize,
    /// Messages queued for sending per peer. Default 256.
    pub outbound_queue: usize,
    /// Bytes queued for sending per peer before senders wait. Default 4 MiB: two 2 MiB eth
    /// answers, one being written and the next ready (go-ethereum writes one message at a
    /// time and buffers none); a single larger message is queued alone.
    pub outbound_budget: usize,
    /// The node-wide cap on the bytes held by all sessions started with this `Config` or a
    /// clone of it (so one server's peers share it). Default
    /// [`budget::DEFAULT_NODE_INBOUND`] received, [`budget::DEFAULT_NODE_OUTBOUND`] queued
    /// for sending: with the per-peer budgets above, 16 peers at their limits.
    pub node_budget: NodeBudget,
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
            min_write_progress: 2 * MIB,
            protocol_queue: 64,
            inbound_budget: 8 * MIB,
            outbound_queue: 256,
            outbound_budget: 4 * MIB,
            node_budget: NodeBudget::default(),
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
