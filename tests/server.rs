//! The p2p server on loopback: discovery-driven dialling, peer limits, admission reasons,
//! and resilience against garbage and stalled connections.

mod support;

use devp2p::server::{self, Handle, PeerEvent};
use discovery::{Node, NodeId};
use protocols::{Handler, Subprotocol};
use rlpx::{CloseReason, DisconnectReason};
use secp256k1::{PublicKey, SecretKey};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// A trivial protocol both sides run: echoes every message.
struct Echo(&'static str, u32);

impl Subprotocol for Echo {
    fn protocols(&self) -> Vec<rlpx::Protocol> {
        vec![rlpx::Protocol::new(self.0, self.1, 2)]
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

fn protocols() -> Vec<Arc<dyn Subprotocol>> {
    vec![Arc::new(Echo("echo", 1)), Arc::new(Echo("ping", 1))]
}

fn disc_config(bootnodes: Vec<Node>, tcp_port: u16) -> discovery::Config {
    // Every node shares 127.0.0.1, so the per-IP rate limit is raised.
    discovery::Config {
        rate_limit: 2_000,
        rate_burst: 2_000,
        bootnodes,
        tcp_port,
        external_ip: Some([127, 0, 0, 1].into()),
        ..discovery::Config::default()
    }
}

struct TestNode {
    server: Handle,
    disc: Option<discovery::Handle>,
    key: SecretKey,
}

impl TestNode {
    fn node(&self) -> Node {
        let addr = self.server.listen_addr();
        let udp = self.disc.as_ref().map_or(0, |d| d.local_node().udp);
        Node {
            id: self.server.local_id(),
            ip: addr.ip(),
            udp,
            tcp: addr.port(),
        }
    }
}

async fn spawn(cfg: impl FnOnce(&mut server::Config), bootnodes: Option<Vec<Node>>) -> TestNode {
    let key = SecretKey::new(&mut rand::rng());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let disc = match bootnodes {
        Some(b) => {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            Some(discovery::Service::spawn(socket, key, disc_config(b, port), None).unwrap())
        }
        None => None,
    };
    let mut config = server::Config::new(key);
    config.rlpx.handshake_timeout = Duration::from_secs(2);
    cfg(&mut config);
    let server = server::start(config, listener, disc.clone(), protocols()).unwrap();
    TestNode { server, disc, key }
}

async fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootnode_and_six_nodes_reach_their_outbound_targets() {
    let boot = spawn(|_| {}, Some(vec![])).await;
    let boot_node = boot.node();
    let mut nodes = Vec::new();
    for _ in 0..6 {
        // 6 peers, 1 in 3 for dynamic dials: each node's outbound target is 2.
        nodes.push(spawn(|c| c.max_peers = 6, Some(vec![boot_node])).await);
    }
    until(30, "every node reaches 2 outbound peers", || {
        nodes.iter().all(|n| n.server.peer_counts().1 >= 2)
    })
    .await;
    for n in &nodes {
        for p in n.server.peers() {
            let caps: Vec<String> = p.info.shared.iter().map(|s| s.cap.to_string()).collect();
            assert_eq!(caps, ["echo/1", "ping/1"], "both protocols negotiated");
            assert_ne!(p.id, n.server.local_id());
        }
        assert!(n.server.peers().len() <= 6);
    }
    for n in nodes.iter().chain([&boot]) {
        n.server.shutdown().await;
        if let Some(d) = &n.disc {
            d.shutdown().await;
        }
    }
}

/// Dials `to` with a fresh key (or `key`) and returns how the session ended.
async fn dial_and_wait(to: &TestNode, key: Option<SecretKey>) -> Result<CloseReason, rlpx::Error> {
    let key = key.unwrap_or_else(|| SecretKey::new(&mut rand::rng()));
    let cfg = rlpx::Config {
        protocols: vec![rlpx::Protocol::new("echo", 1, 2)],
        ..rlpx::Config::default()
    };
    let remote = to.node().id.public_key().unwrap();
    let hs = rlpx::conn::connect_tcp(to.server.listen_addr(), &key, remote, &cfg).await?;
    let peer = hs.hello(&key, &cfg).await?.start(&cfg);
    Ok(tokio::time::timeout(Duration::from_secs(3), peer.closed())
        .await
        .unwrap_or(CloseReason::Failed("still connected".into())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_peers_rejects_the_extra_inbound_peer_but_admits_trusted() {
    // dial_ratio 4 leaves all 3 slots for inbound peers.
    let s = spawn(
        |c| {
            c.max_peers = 3;
            c.dial_ratio = 4;
        },
        None,
    )
    .await;
    let mut keep = Vec::new();
    for _ in 0..3 {
        let key = SecretKey::new(&mut rand::rng());
        let cfg = rlpx::Config {
            protocols: vec![rlpx::Protocol::new("echo", 1, 2)],
            ..Default::default()
        };
        let remote = s.node().id.public_key().unwrap();
        let hs = rlpx::conn::connect_tcp(s.server.listen_addr(), &key, remote, &cfg)
            .await
            .unwrap();
        keep.push(hs.hello(&key, &cfg).await.unwrap().start(&cfg));
    }
    until(5, "three peers admitted", || s.server.peers().len() == 3).await;
    assert_eq!(
        dial_and_wait(&s, None).await.unwrap(),
        CloseReason::Remote(DisconnectReason::TooManyPeers)
    );
    let trusted = SecretKey::new(&mut rand::rng());
    s.server
        .add_trusted(NodeId::from_secret_key(&trusted))
        .await;
    assert_eq!(
        dial_and_wait(&s, Some(trusted)).await.unwrap(),
        CloseReason::Failed("still connected".into()),
        "a trusted peer gets in when full"
    );
    // The dialler is done once Hello is exchanged; the server registers the peer just
    // after.
    until(5, "the trusted peer admitted", || {
        s.server.peers().len() == 4
    })
    .await;
    s.server.shutdown().await;
    for p in keep {
        assert_eq!(
            p.closed().await,
            CloseReason::Remote(DisconnectReason::ClientQuitting)
        );
    }
}

/// Dials `to` from the local address `from` with a fresh key and returns the session (or
/// how the handshake failed).
async fn dial_from(to: &TestNode, from: [u8; 4]) -> Result<rlpx::Peer, rlpx::Error> {
    let key = SecretKey::new(&mut rand::rng());
    let cfg = rlpx::Config {
        protocols: vec![rlpx::Protocol::new("echo", 1, 2)],
        ..rlpx::Config::default()
    };
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let stream = socket.connect(to.server.listen_addr()).await.unwrap();
    let addr = stream.peer_addr().ok();
    let remote = to.node().id.public_key().unwrap();
    let hs = rlpx::conn::connect(stream, addr, &key, remote, &cfg).await?;
    Ok(hs.hello(&key, &cfg).await?.start(&cfg))
}

/// How a session ends within 3 s, or "still connected".
async fn outcome(peer: &rlpx::Peer) -> CloseReason {
    tokio::time::timeout(Duration::from_secs(3), peer.closed())
        .await
        .unwrap_or(CloseReason::Failed("still connected".into()))
}

/// One address (and one /24) cannot take every inbound slot: past the per-IP and
/// per-subnet caps it gets `TooManyPeers` while other addresses still get in. Loopback is
/// exempt by default; this test removes the exemption and uses 127.0.0.x as the sources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_peers_are_capped_per_ip_and_subnet() {
    let s = spawn(
        |c| {
            c.max_peers = 20;
            c.ip_limit_exempt = None;
            c.max_inbound_per_ip = 2;
            c.max_inbound_per_subnet = 3;
        },
        None,
    )
    .await;
    let mut keep = Vec::new();
    for _ in 0..2 {
        let p = dial_from(&s, [127, 0, 0, 1]).await.unwrap();
        keep.push(p);
    }
    until(5, "two peers from 127.0.0.1", || {
        s.server.peers().len() == 2
    })
    .await;
    let third = dial_from(&s, [127, 0, 0, 1]).await.unwrap();
    assert_eq!(
        outcome(&third).await,
        CloseReason::Remote(DisconnectReason::TooManyPeers),
        "a third peer from one address"
    );
    let other = dial_from(&s, [127, 0, 0, 2]).await.unwrap();
    assert_eq!(
        outcome(&other).await,
        CloseReason::Failed("still connected".into())
    );
    let crowded = dial_from(&s, [127, 0, 0, 3]).await.unwrap();
    assert_eq!(
        outcome(&crowded).await,
        CloseReason::Remote(DisconnectReason::TooManyPeers),
        "a fourth peer from one /24"
    );
    assert_eq!(s.server.peers().len(), 3);
    s.server.shutdown().await;
    drop((keep, other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_dial_and_duplicate_connection_get_their_reasons() {
    let s = spawn(|_| {}, None).await;
    let mut events = s.server.subscribe();
    // Our own key dialling in: ConnectedToSelf.
    assert_eq!(
        dial_and_wait(&s, Some(s.key)).await.unwrap(),
        CloseReason::Remote(DisconnectReason::ConnectedToSelf)
    );
    // Adding ourselves as a static node is ignored: no dial is made.
    s.server.add_peer(s.node()).await;
    // The same remote key twice: the second gets AlreadyConnected.
    let key = SecretKey::new(&mut rand::rng());
    let cfg = rlpx::Config {
        protocols: vec![rlpx::Protocol::new("echo", 1, 2)],
        ..Default::default()
    };
    let remote = s.node().id.public_key().unwrap();
    let hs = rlpx::conn::connect_tcp(s.server.listen_addr(), &key, remote, &cfg)
        .await
        .unwrap();
    let first = hs.hello(&key, &cfg).await.unwrap().start(&cfg);
    match tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap()
    {
        PeerEvent::Added(p) => assert_eq!(p.id, NodeId::from_secret_key(&key)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        dial_and_wait(&s, Some(key)).await.unwrap(),
        CloseReason::Remote(DisconnectReason::AlreadyConnected)
    );
    assert_eq!(
        s.server.peers().len(),
        1,
        "no self peer, one peer for the duplicated key"
    );
    assert!(
        s.server
            .stats()
            .dials
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    );
    first.disconnect(DisconnectReason::DisconnectRequested);
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stalled_connections_do_not_lock_out_a_good_peer() {
    let s = spawn(|_| {}, None).await;
    let addr = s.server.listen_addr();
    let mut conns = Vec::new();
    for i in 0..200 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            // Garbage: a plausible size prefix and junk.
            let _ = c.write_all(&[0x01, 0x80]).await;
            let _ = c.write_all(&[0x5a; 384]).await;
        } else {
            // Stall: a declared 2 KB auth that never arrives.
            let _ = c.write_all(&[0x07, 0xf0, 1, 2, 3]).await;
        }
        conns.push(c);
    }
    // A good peer gets in: at once if a pending slot is free, or once the stalled
    // handshakes time out (2 s here).
    let key = SecretKey::new(&mut rand::rng());
    let cfg = rlpx::Config {
        protocols: vec![rlpx::Protocol::new("echo", 1, 2)],
        ..Default::default()
    };
    let remote: PublicKey = s.node().id.public_key().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let peer = loop {
        let attempt = async {
            let hs = rlpx::conn::connect_tcp(addr, &key, remote, &cfg).await?;
            Ok::<_, rlpx::Error>(hs.hello(&key, &cfg).await?.start(&cfg))
        };
        match attempt.await {
            Ok(p) => break p,
            Err(e) => {
                assert!(Instant::now() < deadline, "good peer locked out: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut echo = {
        let mut p = peer;
        let h = p.take_protocol("echo").unwrap();
        (p, h)
    };
    echo.1
        .send(1, bytes::Bytes::from_static(b"\xc1\x01"))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), echo.1.recv())
        .await
        .unwrap();
    assert_eq!(got, Some((1, bytes::Bytes::from_static(b"\xc1\x01"))));
    // The server let go of every hostile connection though they stay open: each was
    // refused (pending-handshake cap) or failed its handshake (garbage, or the 2 s
    // timeout), as its counters record. (What a connection costs in memory is measured
    // by `benches/server.rs` in a process of its own, not here among other tests.)
    let let_go = || {
        s.server
            .stats()
            .labelled()
            .iter()
            .filter(|(family, _, _)| ["inbound_rejected", "handshake_failed"].contains(family))
            .map(|(_, _, n)| n)
            .sum::<u64>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while let_go() < 200 {
        assert!(
            Instant::now() < deadline,
            "server still holds hostile connections: {:?}",
            s.server.stats().labelled()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(conns);
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_dropped_for_a_breach_is_refused_for_a_while() {
    let s = spawn(|_| {}, None).await;
    let key = SecretKey::new(&mut rand::rng());
    let cfg = rlpx::Config {
        protocols: vec![rlpx::Protocol::new("echo", 1, 2)],
        ..rlpx::Config::default()
    };
    let remote = s.node().id.public_key().unwrap();
    // Speak frames directly to send a message id no shared protocol owns.
    let hs = rlpx::conn::connect_tcp(s.server.listen_addr(), &key, remote, &cfg)
        .await
        .unwrap();
    let est = hs.hello(&key, &cfg).await.unwrap();
    let offsets: u64 = est.shared().iter().map(|c| u64::from(c.messages)).sum();
    let peer = est.start(&cfg);
    let mut events = s.server.subscribe();
    until(5, "peer admitted", || s.server.peers().len() == 1).await;
    // Dropping the session's last handle ends it (DisconnectRequested).
    drop(peer);
    assert_eq!(
        next_drop(&mut events).await,
        CloseReason::Remote(DisconnectReason::DisconnectRequested)
    );
    // Reconnect raw and send an id past every shared range.
    let hs = rlpx::conn::connect_tcp(s.server.listen_addr(), &key, remote, &cfg)
        .await
        .unwrap();
    let mut framed = hs.into_framed();
    use futures::SinkExt;
    let hello = rlpx::Hello {
        protocol_version: 5,
        client_id: "breach".into(),
        capabilities: vec![rlpx::Capability::new("echo", 1)],
        listen_port: 0,
        id: rlpx::handshake::id_bytes(&PublicKey::from_secret_key_global(&key)),
    };
    framed
        .send(rlpx::codec::RawMessage {
            id: 0,
            data: hello.encode_to_vec().into(),
        })
        .await
        .unwrap();
    let body = rlpx::p2p::Snappy::default().compress(&[0xc0]).unwrap();
    framed
        .send(rlpx::codec::RawMessage {
            id: 0x10 + offsets + 5,
            data: body,
        })
        .await
        .unwrap();
    assert_eq!(
        next_drop(&mut events).await,
        CloseReason::Local(DisconnectReason::BreachOfProtocol)
    );
    // Now it is refused on sight.
    assert_eq!(
        dial_and_wait(&s, Some(key)).await.unwrap(),
        CloseReason::Remote(DisconnectReason::UselessPeer)
    );
    s.server.shutdown().await;
}

/// The reason of the next `Dropped` event, skipping `Added` ones.
async fn next_drop(events: &mut tokio::sync::broadcast::Receiver<PeerEvent>) -> CloseReason {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
        if let PeerEvent::Dropped { reason, .. } = ev.expect("no peer event").expect("events") {
            return reason;
        }
    }
}

/// A penalty decided while the peer's eth handler is blocked in `send` (the peer asked for
/// many answers and stopped reading) still bans the peer: the session closes at once with
/// the penalty's reason. (A penalty queued behind the blocked send lost to the write
/// timeout, whose `Failed` is no ban reason.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_penalty_while_the_handler_is_blocked_still_bans() {
    use protocols::eth::messages::{BlockId, GetBlockHeaders, Message, RequestPair};
    let dir = support::tempdir("server-ban-blocked");
    let store = support::ethtest_store(&dir);
    store
        .insert_blocks(&support::chain_blocks(u64::MAX))
        .unwrap();
    let chain = Arc::new(devp2p::chain::eth::EthChain::new(store.clone()));
    let (proto, eth, _events) = protocols::eth::Eth::new(chain.clone(), Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let key = SecretKey::new(&mut rand::rng());
    let mut config = server::Config::new(key);
    // A small queue, so the handler blocks after a few answers.
    config.rlpx.outbound_budget = 1 << 20;
    let server = server::start(config, listener, None, vec![Arc::new(proto)]).unwrap();
    let mut events = server.subscribe();

    // The attacker: a real eth/68 Status, then a burst of requests it never reads.
    let attacker = SecretKey::new(&mut rand::rng());
    let attacker_id = PublicKey::from_secret_key_global(&attacker);
    let cfg = rlpx::Config {
        protocols: vec![rlpx::Protocol::new("eth", 68, 17)],
        protocol_queue: 1,
        inbound_budget: 64 * 1024,
        ..rlpx::Config::default()
    };
    let remote = PublicKey::from_secret_key_global(&key);
    let dial = || async {
        let hs = rlpx::conn::connect_tcp(server.listen_addr(), &attacker, remote, &cfg)
            .await
            .unwrap();
        hs.hello(&attacker, &cfg).await.unwrap().start(&cfg)
    };
    let mut peer = dial().await;
    let mut raw = peer.take_protocol("eth").unwrap();
    let status = Message::Status(protocols::eth::status::local(&*chain, 68));
    raw.send(status.code(), status.encode()).await.unwrap();
    assert_eq!(raw.recv().await.unwrap().0, status.code());
    for id in 0..100 {
        let req = Message::GetBlockHeaders(RequestPair {
            request_id: id,
            message: GetBlockHeaders {
                origin: BlockId::Number(0),
                amount: 1024,
                skip: 0,
                reverse: false,
            },
        });
        raw.send(req.code(), req.encode()).await.unwrap();
    }
    // Wait until the node has stopped getting answers out: its handler is blocked.
    until(10, "attacker admitted", || server.peers().len() == 1).await;
    let out = || {
        server.peers()[0]
            .info
            .stats
            .messages_out
            .load(Ordering::Relaxed)
    };
    let mut last = out();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = out();
        if now == last && now > 1 {
            break;
        }
        last = now;
    }
    eth.disconnect(&attacker_id, DisconnectReason::BreachOfProtocol)
        .await
        .unwrap();
    assert_eq!(
        next_drop(&mut events).await,
        CloseReason::Local(DisconnectReason::BreachOfProtocol)
    );
    drop((raw, peer));
    // And it is refused on its return.
    let peer = dial().await;
    let reason = tokio::time::timeout(Duration::from_secs(3), peer.closed()).await;
    assert_eq!(
        reason.unwrap(),
        CloseReason::Remote(DisconnectReason::UselessPeer)
    );
    server.shutdown().await;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A peer on another chain gets `SubprotocolError` (what go-ethereum sends for a Status
/// mismatch) and is then held off like one that breached the protocol: redialled at once,
/// it is refused on sight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_on_another_network_is_refused_for_a_while() {
    use protocols::eth::messages::{Message, Status};
    let dir = support::tempdir("server-ban-network");
    let store = support::ethtest_store(&dir);
    let chain = Arc::new(devp2p::chain::eth::EthChain::new(store.clone()));
    let (proto, _eth, _events) = protocols::eth::Eth::new(chain.clone(), Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let key = SecretKey::new(&mut rand::rng());
    let server = server::start(
        server::Config::new(key),
        listener,
        None,
        vec![Arc::new(proto)],
    )
    .unwrap();
    let mut events = server.subscribe();

    let other = SecretKey::new(&mut rand::rng());
    let cfg = rlpx::Config {
        protocols: vec![rlpx::Protocol::new("eth", 68, 17)],
        ..rlpx::Config::default()
    };
    let remote = PublicKey::from_secret_key_global(&key);
    let dial = || async {
        let hs = rlpx::conn::connect_tcp(server.listen_addr(), &other, remote, &cfg)
            .await
            .unwrap();
        hs.hello(&other, &cfg).await.unwrap().start(&cfg)
    };
    let mut peer = dial().await;
    let raw = peer.take_protocol("eth").unwrap();
    let Status::V68(mut status) = protocols::eth::status::local(&*chain, 68) else {
        panic!("eth/68 status");
    };
    status.network_id ^= 1;
    let status = Message::Status(Status::V68(status));
    raw.send(status.code(), status.encode()).await.unwrap();
    assert_eq!(
        next_drop(&mut events).await,
        CloseReason::Local(DisconnectReason::SubprotocolError)
    );
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(3), peer.closed())
            .await
            .unwrap(),
        CloseReason::Remote(DisconnectReason::SubprotocolError)
    );
    let peer = dial().await;
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(3), peer.closed())
            .await
            .unwrap(),
        CloseReason::Remote(DisconnectReason::UselessPeer)
    );
    server.shutdown().await;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The admin API cannot grow the trusted set without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_set_is_capped() {
    let s = spawn(|_| {}, None).await;
    for i in 0..server::MAX_TRUSTED as u32 {
        let mut id = [0x55u8; 64];
        id[..4].copy_from_slice(&i.to_be_bytes());
        assert!(s.server.add_trusted(NodeId(id)).await);
    }
    assert!(!s.server.add_trusted(NodeId([0x66; 64])).await, "set full");
    let mut known = [0x55u8; 64];
    known[..4].copy_from_slice(&0u32.to_be_bytes());
    assert!(s.server.add_trusted(NodeId(known)).await, "known id");
    s.server.shutdown().await;
}

/// Stalled handshakes from one /24 hold at most its pending slots: another peer from that
/// /24 is dropped unread while one from another /24 completes its handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_handshakes_are_capped_per_subnet() {
    let s = spawn(
        |c| {
            c.ip_limit_exempt = None;
            c.max_pending_per_subnet = 2;
        },
        None,
    )
    .await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let mut c = socket.connect(s.server.listen_addr()).await.unwrap();
        c.write_all(b"\x01").await.unwrap();
        stalled.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        dial_from(&s, [127, 0, 0, 2]).await.is_err(),
        "a third handshake from the /24"
    );
    let other = dial_from(&s, [127, 0, 1, 1]).await.unwrap();
    assert_eq!(
        outcome(&other).await,
        CloseReason::Failed("still connected".into())
    );
    s.server.shutdown().await;
    drop(stalled);
}
