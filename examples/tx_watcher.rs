//! Joins peers and prints each new pooled transaction (hash, type, sender, size) as it
//! arrives. Run with the peers to join (enode URLs) and optionally `--chain NAME`:
//!
//! ```sh
//! cargo run --example tx_watcher -- --chain sepolia
//! cargo run --example tx_watcher -- enode://...@127.0.0.1:30303
//! ```

#[path = "common/watch.rs"]
mod watch;

use devp2p::node::Node;

/// Prints each transaction `node` pools to `out`, one line each, until `limit` lines (or
/// forever).
pub(crate) async fn print_transactions(
    node: &Node,
    out: &mut impl std::io::Write,
    limit: Option<usize>,
) -> usize {
    let Some(txs) = node.subscribe_transactions() else {
        return 0;
    };
    watch::print_each(txs, out, limit, "transactions", |tx| {
        format!(
            "{} type {} from {} {} bytes",
            tx.hash, tx.kind, tx.sender, tx.size
        )
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::builder(watch::config("txw")?).start().await?;
    eprintln!("watching as {}", node.enode());
    let mut stdout = std::io::stdout();
    tokio::select! {
        _ = print_transactions(&node, &mut stdout, None) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    node.shutdown().await;
    Ok(())
}
