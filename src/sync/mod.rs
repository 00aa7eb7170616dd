//! Catch-up sync: bringing a node that is behind its peers up to their head.
//!
//! - [`downloader`]: the sans-IO state machine (common ancestor, skeleton, parallel header
//!   and body download, ordered import, penalties), driven by events and `now`; what it
//!   believes of a peer's claimed head and how withholding and stalling peers are dropped
//!   is in [`trust`]; one round's own state machine (its phases, gaps, downloaded blocks
//!   and import cursor, checking answers against them) is `round::Round`, which the
//!   downloader owns and feeds; how much is asked of a peer at once and how often
//!   (a token bucket under the peer's request budget, body requests sized by bytes, the
//!   byte window) is `pacing`;
//! - [`driver`]: the tokio task running it over the [`protocols::eth::Handle`] and the
//!   [`crate::chain::Importer`];
//! - [`receipts`]: the sans-IO fetcher of the receipts of imported blocks (from sync and
//!   propagation alike), run beside the downloader by the same [`Syncer`]; import never
//!   waits on it.
//!
//! Progress is logged as `Imported new chain segment` (target `sync`) and readable as a
//! [`SyncStatus`] through [`Handle::status`].
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use devp2p::chain::{Importer, Store};
//! use devp2p::sync;
//!
//! # async fn node(eth: protocols::eth::Handle, store: Arc<Store>) {
//! let importer = Importer::new(store, Some(eth.pool().clone()));
//! let syncer = sync::spawn(eth, importer, sync::Config::default());
//! let status = syncer.handle().status();
//! println!("at {} of {}", status.current, status.highest);
//! syncer.shutdown().await;
//! # }
//! ```

mod config;
pub mod downloader;
pub mod driver;
mod pacing;
pub mod receipts;
mod receipts_driver;
mod round;
pub mod trust;

pub use downloader::{Config, SyncStatus};
pub use driver::{Handle, Syncer, spawn};
