//! Node Discovery v4 (`discv4.md`) with Ethereum Node Records (`enr.md`, EIP-778, EIP-868).
//!
//! # Layers
//!
//! - Wire: [`packet`] encodes, signs, decodes and verifies the six packet types (lenient per
//!   EIP-8); [`enr`] builds, signs and verifies records and their `enr:` text form;
//!   [`node`] has node ids, distances and `enode://` URLs; [`cidr`] the `--netrestrict` list.
//! - Sans-IO core (no sockets, no clock, seeded randomness): [`table::Table`] is the Kademlia
//!   table with IP limits, [`lookup::Lookup`] the iterative FindNode state machine, and
//!   [`proto::Protocol`] ties them together with bonding (endpoint proofs), revalidation,
//!   refresh, rate limiting and external-address votes.
//! - Persistence: [`db::NodeDb`] stores bonded nodes in redb.
//! - Driver: [`service::Service`] runs a `Protocol` over a tokio `UdpSocket`;
//!   [`service::Handle`] queries it.
//! - DNS node lists (EIP-1459): [`dns`] resolves and publishes signed trees of ENRs.
//! - Discovery v5: [`v5`] runs sigp's `discv5` crate beside v4 (its own UDP port), with our key
//!   and record, and turns what its lookups find into dial candidates.
//! - Simulation: [`sim::Fleet`] runs many `Protocol`s over a simulated network in virtual time
//!   ([`sim::Sim`] is a fixed-latency one for tests), optionally with the cheap signature
//!   stand-in [`sim::FastCrypto`].
//!
//! # Example
//!
//! Two nodes on loopback; the second knows only the first and finds it through a lookup.
//!
//! ```
//! use discovery::{Config, Service};
//! use secp256k1::SecretKey;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let boot = discovery::bind("127.0.0.1:0".parse()?, SecretKey::new(&mut rand::rng()), Config::default(), None).await?;
//! let config = Config { bootnodes: vec![boot.local_node()], ..Config::default() };
//! let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
//! let node = Service::spawn(socket, SecretKey::new(&mut rand::rng()), config, None)?;
//! let found = node.lookup(node.local_node().id).await?;
//! assert_eq!(found[0].id, boot.local_node().id);
//! println!("{}", node.local_enr().await?);
//! node.shutdown().await;
//! boot.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod cidr;
pub mod config;
pub mod db;
pub mod dns;
pub mod enr;
mod limits;
pub mod lookup;
pub mod node;
pub mod packet;
pub mod proto;
mod rlp;
pub mod service;
pub mod sim;
pub mod table;
pub mod v5;

pub use cidr::{Cidr, NetRestrict};
pub use config::Config;
pub use db::NodeDb;
pub use enr::Enr;
pub use node::{Node, NodeId, ParseError, parse_node};
pub use proto::{Event, Protocol};
pub use service::{Handle, RandomNodes, Service, bind};
pub use table::Table;
