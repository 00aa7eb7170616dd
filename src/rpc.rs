//! JSON-RPC 2.0 admin API over HTTP (in progress), and the bounded HTTP server it shares
//! with [`crate::metrics`].

pub mod http;
