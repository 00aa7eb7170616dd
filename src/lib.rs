//! # devp2p
//!
//! The node and the `devp2p` command line, on top of the member crates:
//!
//! - [`rlpx`]: the encrypted transport (ECIES handshake, framing, p2p base protocol,
//!   multiplexing);
//! - [`discovery`]: Node Discovery v4, ENR, the Kademlia table and node database;
//! - [`protocols`]: subprotocols on top of RLPx.
//!
//! [`cmd`] holds what each CLI subcommand runs, as library functions taking parsed
//! arguments and a shutdown future, so everything the CLI does a library user can do.

pub use discovery;
pub use protocols;
pub use rlpx;

pub mod chain;
pub mod key;
pub mod metrics;
pub mod node;
pub mod propagate;
pub mod required;
pub mod rpc;
pub mod server;
pub mod sync;

/// The CLI subcommands as library functions.
pub mod cmd {
    pub mod bootnode;
    pub mod devnet;
    pub mod export;
    pub mod gen_chain;
    pub mod import;
    pub mod key;
    pub mod node;
    pub mod replay;
}
