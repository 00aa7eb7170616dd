//! The network crawler behind `devp2p crawl` and `devp2p census`.
//!
//! - [`core`]: the sans-IO crawl state machine: which node to check or dial next, at
//!   what rate, within which bounds, and what the answers do to the node set;
//! - [`v4`]: liveness checks over discovery v4 (ping, then ENRRequest), sans-IO;
//! - [`probe`]: the RLPx probe (Hello, `eth` Status, `Disconnect(ClientQuitting)`);
//! - [`driver`]: the tokio task tying them to a UDP socket, DNS lists and probe tasks;
//! - [`nodeset`]: the output, go-ethereum's `nodes.json` plus our fields;
//! - [`census`]: counts over a node set (clients, versions, eth versions, fork
//!   readiness, networks, ports, nodes over time) and [`plot`] draws them as SVG.
//!
//! The core takes nodes from any source as [`core::Candidate`]s and asks the driver to
//! check them ([`core::Action::Check`]), so another discovery protocol (discv5) plugs
//! in as one more source with its own check, beside [`v4`].

pub mod census;
pub mod core;
pub mod driver;
pub mod nodeset;
pub mod plot;
pub mod probe;
pub mod v4;
