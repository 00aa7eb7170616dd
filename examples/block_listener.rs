//! Joins peers and prints each new block the node accepts (number, hash, transactions and
//! the peer it came from), whether it arrived by sync or by propagation. Run with the
//! peers to join (enode URLs) and optionally `--chain NAME`:
//!
//! ```sh
//! cargo run --example block_listener -- enode://...@127.0.0.1:30303
//! ```
//!
//! (Blocks are validated structurally, not executed.)

use devp2p::node::{Config, Node};
use std::io::Write;
use tokio::sync::broadcast::error::RecvError;

/// Prints each block `node` accepts to `out`, one line each, until `limit` lines (or
/// forever). During a fast sync we fall behind and say how many blocks we skipped.
pub(crate) async fn print_blocks(node: &Node, out: &mut impl Write, limit: Option<usize>) -> usize {
    let Some(mut blocks) = node.subscribe_blocks() else {
        return 0;
    };
    let mut printed = 0;
    while limit.is_none_or(|l| printed < l) {
        let line = match blocks.recv().await {
            Ok(b) => format!(
                "block {} {} {} txs from {}",
                b.block.header.number,
                b.hash,
                b.block.body.transactions.len(),
                b.from
                    .map_or("us".into(), |p| rlpx::peer::short_id(&p).to_string()),
            ),
            Err(RecvError::Lagged(n)) => format!("({n} blocks skipped)"),
            Err(RecvError::Closed) => break,
        };
        if writeln!(out, "{line}").is_err() {
            break;
        }
        printed += 1;
    }
    printed
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config {
        port: 0,
        datadir: Some(std::env::temp_dir().join(format!("devp2p-blk-{}", std::process::id()))),
        ..Config::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--chain" => config.chain = args.next().ok_or("--chain needs a name")?,
            url => {
                let node = discovery::parse_node(url)?;
                // Private chains take block gossip only from named sources.
                config.block_sources.push(node.id);
                config.static_nodes.push(node);
            }
        }
    }
    let node = Node::builder(config).start().await?;
    eprintln!("listening as {}", node.enode());
    let mut stdout = std::io::stdout();
    tokio::select! {
        _ = print_blocks(&node, &mut stdout, None) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    node.shutdown().await;
    Ok(())
}
