//! # protocols: subprotocols on top of RLPx
//!
//! - [`api`]: the public API any subprotocol implements ([`Subprotocol`]); the node runs
//!   every registered subprotocol on the same connections.
//! - [`eth`]: the `eth` wire protocol (eth/68, eth/69) as one such subprotocol
//!   ([`eth::Eth`]), serving the node's chain through the [`eth::Chain`] trait.
//!
//! # Example
//!
//! An echo protocol: every message a peer sends comes back to it.
//!
//! ```
//! use protocols::{Handler, Subprotocol};
//!
//! struct Echo;
//!
//! impl Subprotocol for Echo {
//!     fn protocols(&self) -> Vec<rlpx::Protocol> {
//!         vec![rlpx::Protocol::new("echo", 1, 1)]
//!     }
//!     fn handle(&self, mut peer: rlpx::ProtocolHandle) -> Handler {
//!         Box::pin(async move {
//!             while let Some((code, data)) = peer.recv().await {
//!                 if peer.send(code, data).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         })
//!     }
//! }
//! # let _ = Echo.protocols();
//! ```

pub mod api;
pub mod eth;

pub use api::{Handler, Subprotocol};
