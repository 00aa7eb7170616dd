//! Custom subprotocols on a bare RLPx server (no eth, no chain): `kv/1`, a replicated
//! key-value store with gossip and request ids (`common/kv.rs`), beside `echo/1`. For the
//! full node with a custom protocol, see `full_node_with_custom_protocol`. Run with:
//!
//! ```sh
//! cargo run --example custom_protocol
//! ```
//!
//! It starts three nodes on 127.0.0.1 in a line (A - B - C) that also run a second
//! protocol (`echo/1`), puts a value on A, watches it reach C through B, and asks B for
//! it by request id.

#[path = "common/kv.rs"]
pub(crate) mod kv;

use devp2p::server;
use kv::Kv;
use protocols::{Handler, Subprotocol};
use secp256k1::SecretKey;
use std::sync::Arc;

/// A second protocol on the same connections: echoes every message back.
pub(crate) struct Echo;

impl Subprotocol for Echo {
    fn protocols(&self) -> Vec<rlpx::Protocol> {
        vec![rlpx::Protocol::new("echo", 1, 1)]
    }
    fn handle(&self, mut peer: rlpx::ProtocolHandle) -> Handler {
        Box::pin(async move {
            while let Some((code, data)) = peer.recv().await {
                if peer.send(code, data).await.is_err() {
                    break;
                }
            }
        })
    }
}

/// A node on 127.0.0.1 running `kv/1` and `echo/1`, without discovery.
pub(crate) async fn start_node() -> (server::Handle, Kv) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let kv = Kv::default();
    let config = server::Config::new(SecretKey::new(&mut rand::rng()));
    let protocols: Vec<Arc<dyn Subprotocol>> = vec![Arc::new(kv.clone()), Arc::new(Echo)];
    let handle = server::start(config, listener, None, protocols).expect("start server");
    (handle, kv)
}

/// Waits (on the server's peer events, no polling) until `h` has `n` peers.
pub(crate) async fn peers(h: &server::Handle, n: usize) {
    let mut events = h.subscribe();
    while h.peers().len() < n {
        // A lag only means events were missed: the count is re-read either way.
        if let Err(tokio::sync::broadcast::error::RecvError::Closed) = events.recv().await {
            return;
        }
    }
}

/// The enode of a node started by [`start_node`].
pub(crate) fn node_of(h: &server::Handle) -> discovery::Node {
    let addr = h.listen_addr();
    discovery::Node {
        id: h.local_id(),
        ip: addr.ip(),
        udp: 0,
        tcp: addr.port(),
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() {
    let (a, kv_a) = start_node().await;
    let (b, kv_b) = start_node().await;
    let (c, kv_c) = start_node().await;
    // A line: A - B - C (B dials both).
    b.add_peer(node_of(&a)).await;
    b.add_peer(node_of(&c)).await;
    peers(&b, 2).await;
    for p in b.peers() {
        let caps: Vec<String> = p.info.shared.iter().map(|s| s.cap.to_string()).collect();
        println!("B <-> {}: {}", server::short(&p.id), caps.join(", "));
    }
    tokio::join!(kv_a.wait_peers(1), kv_b.wait_peers(2), kv_c.wait_peers(1));
    kv_a.put(b"greeting", b"hello from A");
    println!(
        "C got it by gossip through B: {:?}",
        kv_c.wait(b"greeting").await
    );
    let got = kv_a.get(&b.local_id(), b"greeting").await;
    println!("A asked B with a request id: {got:?}");
    let _ = kv_b;
    for n in [a, b, c] {
        n.shutdown().await;
    }
}
