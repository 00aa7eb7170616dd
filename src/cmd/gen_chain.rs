//! `devp2p gen-chain`: writes a synthetic chain (placeholder, being built).

use std::path::PathBuf;

/// Arguments of `devp2p gen-chain`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The file to write.
    pub file: PathBuf,
}

/// Not built yet.
pub fn run(_args: Args) -> Result<(), Box<dyn std::error::Error>> {
    Err("gen-chain is not built yet".into())
}
