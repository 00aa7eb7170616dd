//! Joins peers and prints each new block the node accepts (number, hash, transactions and
//! the peer that propagated it), whether it arrived by propagation or by sync. Run with the
//! peers to join (enode URLs) and optionally `--chain NAME`:
//!
//! ```sh
//! cargo run --example block_listener -- enode://...@127.0.0.1:30303
//! ```
//!
//! (Blocks are validated structurally, not executed.)

#[path = "common/watch.rs"]
mod watch;

use devp2p::node::Node;

/// Prints each block `node` accepts to `out`, one line each, until `limit` lines (or
/// forever). During a fast sync we fall behind and say how many blocks we skipped.
pub(crate) async fn print_blocks(
    node: &Node,
    out: &mut impl std::io::Write,
    limit: Option<usize>,
) -> usize {
    let Some(blocks) = node.subscribe_blocks() else {
        return 0;
    };
    watch::print_each(blocks, out, limit, "blocks", |b| {
        let from = b.from.map_or("by sync or locally".into(), |p| {
            format!("from {}", rlpx::peer::short_id(&p))
        });
        let txs = b.block.body.transactions.len();
        format!(
            "block {} {} {txs} txs {from}",
            b.block.header.number, b.hash
        )
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::builder(watch::config("blk")?).start().await?;
    eprintln!("listening as {}", node.enode());
    let mut stdout = std::io::stdout();
    tokio::select! {
        _ = print_blocks(&node, &mut stdout, None) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    node.shutdown().await;
    Ok(())
}
