//! Deterministic in-process network simulation: the real protocol cores over a virtual
//! network with virtual time, seeded randomness, inter-region latency, upload bandwidth
//! with queuing, loss and churn.
//!
//! - [`latency`]: regions and the RTT between them;
//! - [`net`]: the virtual network ([`net::Net`]): links, timers, events in time order;
//! - [`report`]: CSV, SVG plots and stdout tables;
//! - one module per scenario: [`discovery`] (Node Discovery v4 tables and lookups) and
//!   [`propagation`] (block and transaction propagation with
//!   the eth fan-out, the block propagation core and the transaction fetcher).
//!
//! The scenarios are what `devp2p sim` runs; see docs/simulation.md for the model and
//! its figures.

pub mod latency;
pub mod net;
pub mod report;
// Scenarios.
pub mod discovery;
pub mod propagation;
