//! Hostile input against a listening node, each case on a fresh connection; after every
//! case a well-behaved peer must still connect and exchange a message.

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use rlpx::codec::{FrameCodec, RawMessage};
use rlpx::handshake::{Initiator, id_bytes};
use rlpx::{CloseReason, Config, DisconnectReason, Error, Hello, Protocol, conn, p2p};
use secp256k1::{PublicKey, SecretKey};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Encoder, Framed};

type Outcome = Result<CloseReason, Error>;

struct Server {
    addr: SocketAddr,
    id: PublicKey,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
}

fn cfg() -> Config {
    Config {
        protocols: vec![Protocol::new("eth", 68, 17)],
        handshake_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

async fn server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let key = SecretKey::new(&mut rand::rng());
    let id = PublicKey::from_secret_key_global(&key);
    let (tx, outcomes) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let config = cfg();
                let peer = match conn::listen_one(stream, Some(peer), &key, &config).await {
                    Ok(p) => p,
                    Err(e) => return drop(tx.send(Err(e))),
                };
                // Echo every eth message back, like a live protocol handler.
                let mut peer = peer;
                if let Some(mut eth) = peer.take_protocol("eth") {
                    tokio::spawn(async move {
                        while let Some((code, data)) = eth.recv().await {
                            let _ = eth.send(code, data).await;
                        }
                    });
                }
                let _ = tx.send(Ok(peer.closed().await));
            });
        }
    });
    Server { addr, id, outcomes }
}

impl Server {
    async fn outcome(&mut self) -> Outcome {
        tokio::time::timeout(Duration::from_secs(10), self.outcomes.recv())
            .await
            .expect("server reported nothing")
            .expect("server gone")
    }

    /// A good peer still gets in and is served.
    async fn still_serves(&mut self) {
        let key = SecretKey::new(&mut rand::rng());
        let hs = conn::connect_tcp(self.addr, &key, self.id, &cfg())
            .await
            .unwrap();
        let mut peer = hs.hello(&key, &cfg()).await.unwrap().start(&cfg());
        let mut eth = peer.take_protocol("eth").unwrap();
        eth.send(3, Bytes::from_static(b"\xc3\x01\x02\x03"))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), eth.recv())
            .await
            .unwrap();
        assert_eq!(got, Some((3, Bytes::from_static(b"\xc3\x01\x02\x03"))));
        peer.disconnect(DisconnectReason::DisconnectRequested);
        assert_eq!(
            self.outcome().await.unwrap(),
            CloseReason::Remote(DisconnectReason::DisconnectRequested)
        );
    }

    /// Completes the ECIES handshake as a raw client, returning the framed stream.
    async fn handshaked(&self, key: &SecretKey) -> Framed<TcpStream, FrameCodec> {
        conn::connect_tcp(self.addr, key, self.id, &cfg())
            .await
            .unwrap()
            .into_framed()
    }
}

fn hello(key: &SecretKey) -> Hello {
    Hello {
        protocol_version: 5,
        client_id: "attacker".into(),
        capabilities: vec![rlpx::Capability::new("eth", 68)],
        listen_port: 0,
        id: id_bytes(&PublicKey::from_secret_key_global(key)),
    }
}

async fn send_hello(framed: &mut Framed<TcpStream, FrameCodec>, h: &Hello) {
    let msg = RawMessage {
        id: p2p::HELLO,
        data: h.encode_to_vec().into(),
    };
    framed.send(msg).await.unwrap();
}

/// Reads frames until a Disconnect, returning its reason.
async fn disconnect_reason(framed: &mut Framed<TcpStream, FrameCodec>) -> DisconnectReason {
    let read = async {
        while let Some(Ok(m)) = framed.next().await {
            if m.id == p2p::DISCONNECT {
                let plain = p2p::Snappy::default()
                    .decompress(&m.data)
                    .unwrap_or(m.data.clone());
                return DisconnectReason::decode_body(&plain).unwrap();
            }
        }
        panic!("no Disconnect before the connection closed");
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_handshakes() {
    let mut s = server().await;

    // Garbage instead of auth: a plausible size prefix and random bytes.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let mut junk = vec![0x01, 0x20];
    junk.extend((0..0x120).map(|i| (i * 7 + 3) as u8));
    c.write_all(&junk).await.unwrap();
    let r = s.outcome().await;
    assert!(
        matches!(r, Err(Error::Handshake(rlpx::handshake::Error::Ecies(_)))),
        "{r:?}"
    );
    s.still_serves().await;

    // A truncated auth, then EOF.
    let key = SecretKey::new(&mut rand::rng());
    let init = Initiator::new(&mut rand::rng(), key, s.id);
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(&init.auth()[..init.auth().len() / 2])
        .await
        .unwrap();
    c.shutdown().await.unwrap();
    let r = s.outcome().await;
    assert!(
        matches!(r, Err(Error::Handshake(rlpx::handshake::Error::Closed))),
        "{r:?}"
    );
    s.still_serves().await;

    // A huge size prefix is refused on the prefix alone.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(&[0xff, 0xfe, 1, 2, 3]).await.unwrap();
    let r = s.outcome().await;
    assert!(
        matches!(
            r,
            Err(Error::Handshake(rlpx::handshake::Error::TooLarge(0xfffe)))
        ),
        "{r:?}"
    );
    s.still_serves().await;
}

/// A truncated auth, then silence: the handshake timeout ends it, no sooner. In virtual
/// time, so the test does not wait out the timeout.
#[tokio::test(start_paused = true)]
async fn truncated_auth_ends_at_the_handshake_timeout() {
    let mut s = server().await;
    let init = Initiator::new(&mut rand::rng(), SecretKey::new(&mut rand::rng()), s.id);
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let sent = tokio::time::Instant::now();
    c.write_all(&init.auth()[..100]).await.unwrap();
    let r = s.outcome().await;
    assert!(
        matches!(r, Err(Error::Handshake(rlpx::handshake::Error::Timeout))),
        "{r:?}"
    );
    assert!(
        sent.elapsed() >= cfg().handshake_timeout,
        "{:?}",
        sent.elapsed()
    );
    drop(c);
    s.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_and_hellos() {
    let mut s = server().await;
    let key = SecretKey::new(&mut rand::rng());

    // A frame with a corrupted header MAC.
    let mut f = s.handshaked(&key).await;
    let mut wire = BytesMut::new();
    let msg = RawMessage {
        id: p2p::HELLO,
        data: hello(&key).encode_to_vec().into(),
    };
    f.codec_mut().encode(msg, &mut wire).unwrap();
    wire[20] ^= 0xff;
    f.get_mut().write_all(&wire).await.unwrap();
    let r = s.outcome().await;
    assert!(
        matches!(r, Err(Error::Frame(rlpx::codec::Error::HeaderMac))),
        "{r:?}"
    );
    s.still_serves().await;

    // A frame whose size is over the pre-Hello limit: refused on the header.
    let mut f = s.handshaked(&key).await;
    let big = RawMessage {
        id: p2p::HELLO,
        data: vec![0xc0; p2p::MAX_HELLO_SIZE + 1].into(),
    };
    let mut wire = BytesMut::new();
    f.codec_mut().encode(big, &mut wire).unwrap();
    f.get_mut().write_all(&wire[..32]).await.unwrap();
    let r = s.outcome().await;
    assert!(
        matches!(r, Err(Error::Frame(rlpx::codec::Error::TooLarge { .. }))),
        "{r:?}"
    );
    assert_eq!(
        disconnect_reason(&mut f).await,
        DisconnectReason::BreachOfProtocol
    );
    s.still_serves().await;

    // A Hello with a 2 KB client id.
    let mut f = s.handshaked(&key).await;
    let mut h = hello(&key);
    h.client_id = "x".repeat(2048);
    send_hello(&mut f, &h).await;
    let r = s.outcome().await;
    assert!(
        matches!(r, Err(Error::P2p(p2p::Error::TooLong("client id")))),
        "{r:?}"
    );
    assert_eq!(
        disconnect_reason(&mut f).await,
        DisconnectReason::BreachOfProtocol
    );
    s.still_serves().await;

    // A Hello whose node id is not the handshake key.
    let mut f = s.handshaked(&key).await;
    let other = SecretKey::new(&mut rand::rng());
    send_hello(&mut f, &hello(&other)).await;
    let r = s.outcome().await;
    assert!(matches!(r, Err(Error::UnexpectedIdentity)), "{r:?}");
    assert_eq!(
        disconnect_reason(&mut f).await,
        DisconnectReason::UnexpectedIdentity
    );
    s.still_serves().await;

    // A message other than Hello first.
    let mut f = s.handshaked(&key).await;
    f.send(RawMessage {
        id: 0x10,
        data: Bytes::from_static(&[0xc0]),
    })
    .await
    .unwrap();
    let r = s.outcome().await;
    assert!(matches!(r, Err(Error::ExpectedHello(0x10))), "{r:?}");
    s.still_serves().await;
}

/// Completes handshake and Hello as a raw client, ready to send post-Hello frames.
async fn session(s: &Server, key: &SecretKey) -> Framed<TcpStream, FrameCodec> {
    let mut f = s.handshaked(key).await;
    send_hello(&mut f, &hello(key)).await;
    let first = f.next().await.unwrap().unwrap();
    assert_eq!(first.id, p2p::HELLO);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_after_hello() {
    let mut s = server().await;
    let key = SecretKey::new(&mut rand::rng());

    // A snappy body declaring 200 MB of output.
    let mut f = session(&s, &key).await;
    let mut bomb = Vec::new();
    let mut n: u64 = 200_000_000;
    while n >= 0x80 {
        bomb.push(n as u8 | 0x80);
        n >>= 7;
    }
    bomb.push(n as u8);
    bomb.extend_from_slice(&[0u8; 32]);
    f.send(RawMessage {
        id: 0x10,
        data: bomb.into(),
    })
    .await
    .unwrap();
    let r = s.outcome().await;
    assert_eq!(
        r.unwrap(),
        CloseReason::Local(DisconnectReason::BreachOfProtocol)
    );
    assert_eq!(
        disconnect_reason(&mut f).await,
        DisconnectReason::BreachOfProtocol
    );
    s.still_serves().await;

    // A message id outside every shared protocol (eth/68 owns 0x10..0x21).
    let mut f = session(&s, &key).await;
    let body = p2p::Snappy::default().compress(&[0xc0]).unwrap();
    f.send(RawMessage {
        id: 0x21,
        data: body,
    })
    .await
    .unwrap();
    let r = s.outcome().await;
    assert_eq!(
        r.unwrap(),
        CloseReason::Local(DisconnectReason::BreachOfProtocol)
    );
    assert_eq!(
        disconnect_reason(&mut f).await,
        DisconnectReason::BreachOfProtocol
    );
    s.still_serves().await;

    // A second Hello mid-session.
    let mut f = session(&s, &key).await;
    send_hello(&mut f, &hello(&key)).await;
    let r = s.outcome().await;
    assert_eq!(
        r.unwrap(),
        CloseReason::Local(DisconnectReason::BreachOfProtocol)
    );
    s.still_serves().await;

    // Ping is answered, and a flood of them does not end or stall the session.
    let mut f = session(&s, &key).await;
    let ping = p2p::Snappy::default().compress(&p2p::EMPTY_LIST).unwrap();
    for _ in 0..1000 {
        f.feed(RawMessage {
            id: p2p::PING,
            data: ping.clone(),
        })
        .await
        .unwrap();
    }
    f.flush().await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), f.next())
        .await
        .unwrap();
    assert_eq!(pong.unwrap().unwrap().id, p2p::PONG);
    s.still_serves().await;
    drop(f);
    let r = s.outcome().await;
    assert!(matches!(r, Ok(CloseReason::Failed(_))), "{r:?}");
}
