//! A full node (eth: store, sync, propagation) that also speaks a protocol of its own,
//! `kv/1` (`common/kv.rs`), on the same connections. Node A has the bundled chain; node
//! B dials A, syncs the chain from it and receives A's kv entry. Run with:
//!
//! ```sh
//! cargo run --example full_node_with_custom_protocol
//! ```
//!
//! ("Full" here: stores and serves full blocks and validates them structurally; it does
//! not execute transactions.)

#[path = "common/chain.rs"]
pub(crate) mod chain;
// Shared with `custom_protocol`, which also uses its request/response half.
#[allow(dead_code)]
#[path = "common/kv.rs"]
pub(crate) mod kv;

use devp2p::node::{Config, Node};
use std::path::Path;

/// Runs the two nodes in `dir`; returns B's head once synced and the value B received.
pub(crate) async fn run(
    dir: &Path,
    blocks: u64,
) -> Result<(u64, bytes::Bytes), devp2p::node::Error> {
    let (kv_a, kv_b) = (kv::Kv::default(), kv::Kv::default());
    let a = Node::builder(Config::local(dir.join("a")))
        .protocol(kv_a.clone())
        .start()
        .await?;
    a.importer()
        .expect("eth")
        .import(chain::blocks(blocks), None)
        .await
        .result?;
    let b_config = Config {
        static_nodes: vec![a.enode()],
        ..Config::local(dir.join("b"))
    };
    let b = Node::builder(b_config)
        .protocol(kv_b.clone())
        .start()
        .await?;
    let synced = b
        .sync()
        .expect("eth")
        .wait_for(|s| s.current >= blocks)
        .await;
    tokio::join!(kv_a.wait_peers(1), kv_b.wait_peers(1));
    kv_a.put(b"greeting", b"hello from A");
    let value = kv_b.wait(b"greeting").await;
    b.shutdown().await;
    a.shutdown().await;
    Ok((synced.current, value))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), devp2p::node::Error> {
    let dir = std::env::temp_dir().join(format!("devp2p-example-{}", std::process::id()));
    let (head, value) = run(&dir, 600).await?;
    println!("B synced to block {head} and got kv entry {value:?} from A");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
