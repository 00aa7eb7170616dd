//! # devp2p
//!
//! The node and the `devp2p` command line, on top of the member crates:
//!
//! - [`rlpx`]: the encrypted transport (ECIES handshake, framing, p2p base protocol,
//!   multiplexing);
//! - [`discovery`]: Node Discovery v4, ENR, the Kademlia table and node database;
//! - [`protocols`]: subprotocols on top of RLPx.
//!
//! In this crate, from the top:
//!
//! - [`node`]: the full node as a library, [`node::Node::builder`] over a
//!   [`node::Config`]; it wires everything below and runs any other
//!   [`protocols::Subprotocol`] beside `eth` on the same connections;
//! - [`server`]: listening, dialling and peer limits; [`sync`]: the downloader (sans-IO)
//!   and its driver; [`propagate`]: block propagation (sans-IO core and driver);
//!   [`chain`]: chain specs, structural validation, the block store and the
//!   [`chain::Importer`] every block goes through; [`rpc`] and [`metrics`]: the HTTP
//!   endpoints;
//! - [`cmd`]: the CLI subcommands, thin clients of the above (nothing below imports it).
//!
//! A "full node" here stores and serves full blocks and validates them structurally; it
//! does not execute transactions.
//!
//! # Example
//!
//! A node on a free loopback port that joins a peer and prints the blocks it accepts:
//!
//! ```no_run
//! use devp2p::node::{Config, Node};
//!
//! # async fn run(peer: devp2p::discovery::Node) -> Result<(), devp2p::node::Error> {
//! let config = Config {
//!     static_nodes: vec![peer],
//!     ..Config::local("/tmp/devp2p-doc")
//! };
//! let node = Node::builder(config).start().await?;
//! let mut blocks = node.subscribe_blocks().expect("eth runs by default");
//! while let Ok(b) = blocks.recv().await {
//!     println!("{} {} from {:?}", b.block.header.number, b.hash, b.from);
//! }
//! node.shutdown().await;
//! # Ok(()) }
//! ```

pub use discovery;
pub use protocols;
pub use rlpx;

pub mod chain;
pub mod conformance;
pub mod crawl;
pub mod histogram;
pub mod key;
pub mod metrics;
pub mod nat;
pub mod node;
pub mod propagate;
pub mod required;
pub mod rpc;
pub mod server;
pub mod sim;
pub mod sync;

/// The CLI subcommands as library functions.
pub mod cmd {
    pub mod bootnode;
    pub mod census;
    pub mod crawl;
    pub mod devnet;
    pub mod dns;
    pub mod export;
    pub mod gen_chain;
    pub mod import;
    pub mod key;
    pub mod node;
    pub mod replay;
    pub mod sim;
    pub mod test;
}
