//! Joins peers and prints each new pooled transaction (hash, type, sender, size) as it
//! arrives. Run with the peers to join (enode URLs) and optionally `--chain NAME`:
//!
//! ```sh
//! cargo run --example tx_watcher -- --chain sepolia
//! cargo run --example tx_watcher -- enode://...@127.0.0.1:30303
//! ```

use devp2p::node::{Config, Node};
use std::io::Write;
use tokio::sync::broadcast::error::RecvError;

/// Prints each transaction `node` pools to `out`, one line each, until `limit` lines (or
/// forever). A burst faster than we print loses the oldest; we say how many.
pub(crate) async fn print_transactions(
    node: &Node,
    out: &mut impl Write,
    limit: Option<usize>,
) -> usize {
    let Some(mut txs) = node.subscribe_transactions() else {
        return 0;
    };
    let mut printed = 0;
    while limit.is_none_or(|l| printed < l) {
        let line = match txs.recv().await {
            Ok(tx) => format!(
                "{} type {} from {} {} bytes",
                tx.hash, tx.kind, tx.sender, tx.size
            ),
            Err(RecvError::Lagged(n)) => format!("({n} transactions missed)"),
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
        datadir: Some(std::env::temp_dir().join(format!("devp2p-txw-{}", std::process::id()))),
        ..Config::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--chain" => config.chain = args.next().ok_or("--chain needs a name")?,
            url => config.static_nodes.push(discovery::parse_node(url)?),
        }
    }
    let node = Node::builder(config).start().await?;
    eprintln!("watching as {}", node.enode());
    let mut stdout = std::io::stdout();
    tokio::select! {
        _ = print_transactions(&node, &mut stdout, None) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    node.shutdown().await;
    Ok(())
}
