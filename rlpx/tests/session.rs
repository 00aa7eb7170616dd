//! Sessions end to end: handshake + Hello + multiplexed subprotocols over an in-memory
//! duplex and over loopback TCP, keepalive, and disconnect reasons.

use bytes::Bytes;
use rlpx::{CloseReason, Config, DisconnectReason, Peer, Protocol, conn};
use secp256k1::{PublicKey, SecretKey};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn key() -> SecretKey {
    SecretKey::new(&mut rand::rng())
}

fn config(protocols: Vec<Protocol>) -> Config {
    Config {
        protocols,
        ..Config::default()
    }
}

/// Two peers connected over an in-memory duplex.
async fn spawn_pair(a_cfg: &Config, b_cfg: &Config) -> (Peer, Peer) {
    let (a_io, b_io) = tokio::io::duplex(256 * 1024);
    let (a_key, b_key) = (key(), key());
    let b_id = PublicKey::from_secret_key_global(&b_key);
    let (a, b) = tokio::join!(
        conn::dial(a_io, None, &a_key, b_id, a_cfg),
        conn::listen_one(b_io, None, &b_key, b_cfg),
    );
    (a.unwrap(), b.unwrap())
}

#[tokio::test]
async fn duplex_handshake_hello_and_ping() {
    let cfg = config(vec![Protocol::new("eth", 68, 17)]);
    let (a, b) = spawn_pair(&cfg, &cfg).await;
    // Each side's Hello names the key its handshake proved.
    assert_eq!(b.info().hello.public_key(), Some(*b.id()));
    assert_eq!(a.info().hello.public_key(), Some(*a.id()));
    assert_ne!(a.id(), b.id());
    assert_eq!(b.info().hello.client_id, cfg.client_id);
    assert!(a.info().snappy && b.info().snappy);
    assert_eq!(a.info().shared.len(), 1);
    assert_eq!(a.info().shared[0].offset, 0x10);
    a.ping();
    // A generous deadline: the Pong needs a scheduler turn on each side, nothing more, but
    // the machine may be busy with other tests.
    tokio::time::timeout(Duration::from_secs(10), async {
        while a.info().stats.pongs.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("pong within 10 s");
    assert_eq!(a.info().stats.pongs.load(Ordering::Relaxed), 1);
    a.disconnect(DisconnectReason::TooManyPeers);
    assert_eq!(
        a.closed().await,
        CloseReason::Local(DisconnectReason::TooManyPeers)
    );
    assert_eq!(
        b.closed().await,
        CloseReason::Remote(DisconnectReason::TooManyPeers)
    );
}

fn payload(len: usize, seed: u8) -> Bytes {
    // Half the cases compressible, half not, so snappy is exercised both ways. The
    // incompressible ones are pseudo-random from `seed`, so the receiver can rebuild them.
    if seed.is_multiple_of(2) {
        Bytes::from((0..len).map(|i| (i / 64) as u8 ^ seed).collect::<Vec<_>>())
    } else {
        let mut v = vec![0u8; len];
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(u64::from(seed));
        rand::RngCore::fill_bytes(&mut rng, &mut v);
        Bytes::from(v)
    }
}

const SIZES: [usize; 7] = [0, 1, 100, 4096, 65_536, 1_048_576, 1_300_000];

/// Sends every size on `code` and checks the other side gets them in order.
async fn exchange(tx: rlpx::ProtocolSender, mut rx: rlpx::ProtocolHandle, code: u8, seed: u8) {
    let send = async {
        for (i, &len) in SIZES.iter().enumerate() {
            tx.send(code, payload(len, seed.wrapping_add(i as u8)))
                .await
                .unwrap();
        }
    };
    let recv = async {
        let mut got = Vec::new();
        while got.len() < SIZES.len() {
            let (c, data) = rx.recv().await.expect("peer closed early");
            assert_eq!(c, code);
            got.push(data);
        }
        got
    };
    let ((), got) = tokio::join!(send, recv);
    for (i, data) in got.iter().enumerate() {
        assert_eq!(data.len(), SIZES[i]);
        assert!(
            data == &payload(SIZES[i], seed.wrapping_add(i as u8)),
            "message {i} ({} bytes) on code {code} arrived altered",
            SIZES[i]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_two_subprotocols_interleaved_both_directions() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let a_cfg = config(vec![
        Protocol::new("alpha", 1, 4),
        Protocol::new("beta", 1, 3),
        Protocol::new("beta", 2, 5),
        Protocol::new("gamma", 1, 2), // only A has it
    ]);
    let b_cfg = config(vec![
        Protocol::new("beta", 2, 5),
        Protocol::new("alpha", 1, 4),
        Protocol::new("delta", 3, 1), // only B has it
    ]);
    let b_key = key();
    let b_id = PublicKey::from_secret_key_global(&b_key);
    let server = tokio::spawn(async move {
        let (stream, peer_addr) = listener.accept().await.unwrap();
        let hs = conn::accept(stream, Some(peer_addr), &b_key, &b_cfg)
            .await
            .unwrap();
        hs.hello(&b_key, &b_cfg).await.unwrap().start(&b_cfg)
    });
    let a_key = key();
    let hs = conn::connect_tcp(addr, &a_key, b_id, &a_cfg).await.unwrap();
    let mut a = hs.hello(&a_key, &a_cfg).await.unwrap().start(&a_cfg);
    let mut b = server.await.unwrap();

    for p in [&a, &b] {
        let shared: Vec<_> = p
            .info()
            .shared
            .iter()
            .map(|s| (s.cap.to_string(), s.offset, s.messages))
            .collect();
        assert_eq!(
            shared,
            vec![("alpha/1".into(), 0x10, 4), ("beta/2".into(), 0x14, 5)]
        );
    }
    assert!(a.take_protocol("gamma").is_none());
    assert!(b.take_protocol("delta").is_none());
    let (a_alpha, a_beta) = (
        a.take_protocol("alpha").unwrap(),
        a.take_protocol("beta").unwrap(),
    );
    let (b_alpha, b_beta) = (
        b.take_protocol("alpha").unwrap(),
        b.take_protocol("beta").unwrap(),
    );
    // Four concurrent streams: alpha and beta, each direction, each mixing sizes.
    let (a_alpha_tx, b_alpha_tx) = (a_alpha.sender(), b_alpha.sender());
    let (a_beta_tx, b_beta_tx) = (a_beta.sender(), b_beta.sender());
    let run = async {
        tokio::join!(
            exchange(a_alpha_tx, b_alpha, 3, 0),
            exchange(b_alpha_tx, a_alpha, 1, 1),
            exchange(a_beta_tx, b_beta, 4, 2),
            exchange(b_beta_tx, a_beta, 0, 3),
        )
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("exchange timed out");
    // Traffic is counted per subprotocol as well as in total.
    let sum = SIZES.iter().sum::<usize>() as u64;
    let n = SIZES.len() as u64;
    for p in [&a, &b] {
        let stats = &p.info().stats;
        assert_eq!(stats.bytes_out.load(Ordering::Relaxed), 2 * sum);
        assert_eq!(stats.bytes_in.load(Ordering::Relaxed), 2 * sum);
        assert_eq!(stats.protocols.len(), 2);
        for per in stats.protocols.iter() {
            let got = [
                &per.messages_in,
                &per.messages_out,
                &per.bytes_in,
                &per.bytes_out,
            ]
            .map(|c| c.load(Ordering::Relaxed));
            assert_eq!(got, [n, n, sum, sum]);
        }
    }
    assert!(a.info().addr.is_some());
    a.disconnect(DisconnectReason::ClientQuitting);
    assert_eq!(
        b.closed().await,
        CloseReason::Remote(DisconnectReason::ClientQuitting)
    );
}

#[tokio::test]
async fn send_checks_code_range_and_size() {
    let cfg = config(vec![Protocol::new("eth", 68, 17)]);
    let (mut a, _b) = spawn_pair(&cfg, &cfg).await;
    let eth = a.take_protocol("eth").unwrap();
    assert_eq!(
        eth.send(17, Bytes::new()).await,
        Err(rlpx::SendError::InvalidCode(17))
    );
    let big = Bytes::from(vec![0u8; rlpx::p2p::MAX_MESSAGE_SIZE + 1]);
    assert!(matches!(
        eth.send(0, big).await,
        Err(rlpx::SendError::TooLarge(_))
    ));
}

#[tokio::test]
async fn no_shared_capability_is_useless_peer() {
    let (a_io, b_io) = tokio::io::duplex(64 * 1024);
    let (a_key, b_key) = (key(), key());
    let b_id = PublicKey::from_secret_key_global(&b_key);
    let a_cfg = config(vec![Protocol::new("eth", 68, 17)]);
    let b_cfg = config(vec![Protocol::new("snap", 1, 8)]);
    let (a, b) = tokio::join!(
        conn::dial(a_io, None, &a_key, b_id, &a_cfg),
        conn::listen_one(b_io, None, &b_key, &b_cfg),
    );
    // Both sides find nothing shared; whichever reads first sees the other's Disconnect.
    for r in [a.err().unwrap(), b.err().unwrap()] {
        assert!(
            matches!(
                r,
                rlpx::Error::NoSharedCapabilities
                    | rlpx::Error::Disconnected(DisconnectReason::UselessPeer)
            ),
            "{r}"
        );
    }
}

/// In virtual time: the drop comes at the idle timeout, which the test does not wait out.
#[tokio::test(start_paused = true)]
async fn silent_peer_is_dropped_with_ping_timeout_after_being_pinged() {
    let cfg = Config {
        protocols: vec![Protocol::new("eth", 68, 17)],
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..Config::default()
    };
    let (a_io, b_io) = tokio::io::duplex(64 * 1024);
    let (a_key, b_key) = (key(), key());
    let b_id = PublicKey::from_secret_key_global(&b_key);
    // B completes handshake and Hello but never starts its tasks: it never answers.
    let (a, b) = tokio::join!(conn::dial(a_io, None, &a_key, b_id, &cfg), async {
        let hs = conn::accept(b_io, None, &b_key, &cfg).await.unwrap();
        hs.hello(&b_key, &cfg).await.unwrap()
    });
    let a = a.unwrap();
    let started = tokio::time::Instant::now();
    let reason = tokio::time::timeout(Duration::from_secs(5), a.closed())
        .await
        .unwrap();
    assert_eq!(reason, CloseReason::Local(DisconnectReason::PingTimeout));
    assert!(
        started.elapsed() >= cfg.idle_timeout,
        "{:?}",
        started.elapsed()
    );
    drop(b);
}
