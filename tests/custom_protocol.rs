//! The custom protocol example (`examples/custom_protocol.rs`) between real nodes on
//! loopback, alongside a second protocol on the same connections.

#[path = "../examples/custom_protocol.rs"]
#[allow(dead_code)]
mod example;

use bytes::Bytes;
use example::{node_of, start_node};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_gossips_across_a_line_and_answers_requests_beside_echo() {
    let (a, kv_a) = start_node().await;
    let (b, kv_b) = start_node().await;
    let (c, kv_c) = start_node().await;
    b.add_peer(node_of(&a)).await;
    b.add_peer(node_of(&c)).await;
    tokio::time::timeout(Duration::from_secs(10), example::peers(&b, 2))
        .await
        .expect("B connects to A and C");
    for p in b.peers() {
        let caps: Vec<String> = p.info.shared.iter().map(|s| s.cap.to_string()).collect();
        assert_eq!(caps, ["echo/1", "kv/1"]);
    }
    // Gossip: A's put reaches C, which is not connected to A (once every kv session is up:
    // the server admits a peer before its protocols run).
    assert!(a.peers().iter().all(|p| p.id != c.local_id()));
    tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(kv_a.wait_peers(1), kv_b.wait_peers(2), kv_c.wait_peers(1))
    })
    .await
    .expect("kv sessions up");
    kv_a.put(b"k1", b"v1");
    tokio::time::timeout(Duration::from_secs(10), kv_c.wait(b"k1"))
        .await
        .expect("gossip reaches C");
    assert_eq!(kv_b.local(b"k1"), Some(Bytes::from_static(b"v1")));
    // Request/response by id, several at once.
    kv_c.put(b"k2", b"v2");
    tokio::time::timeout(Duration::from_secs(10), kv_a.wait(b"k2"))
        .await
        .expect("k2 reaches A");
    let b_id = b.local_id();
    let (x, y, z) = tokio::join!(
        kv_a.get(&b_id, b"k1"),
        kv_a.get(&b_id, b"k2"),
        kv_a.get(&b_id, b"missing"),
    );
    assert_eq!(x.unwrap(), Some(Bytes::from_static(b"v1")));
    assert_eq!(y.unwrap(), Some(Bytes::from_static(b"v2")));
    assert_eq!(z.unwrap(), None);
    assert!(
        kv_a.get(&c.local_id(), b"k1").await.is_err(),
        "A has no session with C"
    );
    for n in [a, b, c] {
        n.shutdown().await;
    }
}
