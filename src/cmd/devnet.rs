//! `devp2p devnet`: a local network on loopback (placeholder, being built).

use std::future::Future;

/// Arguments of `devp2p devnet`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
}

/// Not built yet.
pub async fn run(
    _args: Args,
    _shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error>> {
    Err("devnet is not built yet".into())
}
