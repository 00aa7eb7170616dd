//! The public subprotocol API: how any protocol, `eth` included, plugs into a node.
//!
//! A [`Subprotocol`] is a node-level object. It declares the capabilities it offers
//! ([`Subprotocol::protocols`]) and, for every peer that negotiated one of them, the node
//! calls [`Subprotocol::handle`] with that peer's [`rlpx::ProtocolHandle`]; the returned
//! future is the per-peer handler and runs as its own task. Node-level state lives in the
//! `Subprotocol` value (behind an `Arc`), per-peer state in the handler future; they talk
//! through whatever typed channels the protocol defines.
//!
//! When a handler returns, its handle is dropped and the peer is disconnected
//! (`DisconnectRequested`) unless it already was: a protocol that stops serving a peer
//! ends the connection, as in go-ethereum.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable per-peer handler future.
pub type Handler = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A subprotocol that can run on RLPx connections.
pub trait Subprotocol: Send + Sync + 'static {
    /// The versions offered, each with its message count. Several versions of one name may
    /// be listed; the highest version both sides offer is used.
    fn protocols(&self) -> Vec<rlpx::Protocol>;

    /// Starts the handler for one peer that negotiated this protocol. `peer.shared`
    /// says which version was chosen.
    fn handle(&self, peer: rlpx::ProtocolHandle) -> Handler;
}
