//! The `eth` wire protocol and the chain facts it exchanges.
//!
//! - [`forkid`]: EIP-2124/EIP-6122 fork identifiers and the peer filter.

pub mod forkid;
