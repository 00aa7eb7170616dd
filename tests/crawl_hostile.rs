//! The crawler against hostile nodes, on loopback: floods of Neighbours, garbage and
//! foreign records in ENRResponses, and slowloris RLPx listeners. Each attack must stay
//! within the crawl's bounds (nodes held, queues, dials in flight, time).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alloy_rlp::Encodable;
use devp2p::crawl::{driver, nodeset::NodeSet, probe::Prober};
use discovery::packet::{self, Endpoint, Message, Pong};
use discovery::{Node, NodeId};
use secp256k1::SecretKey;
use tokio::net::UdpSocket;

fn unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signed discv4 packet of `kind` around raw RLP `data` (for payloads our encoder
/// refuses to make).
fn raw_packet(key: &SecretKey, kind: u8, data: &[u8]) -> Vec<u8> {
    let mut signed = vec![kind];
    signed.extend_from_slice(data);
    let digest = discovery::node::keccak256(&signed);
    let sig =
        secp256k1::SECP256K1.sign_ecdsa_recoverable(secp256k1::Message::from_digest(digest), key);
    let (recid, rs) = sig.serialize_compact();
    let mut body = rs.to_vec();
    body.push(i32::from(recid) as u8);
    body.extend_from_slice(&signed);
    let mut out = discovery::node::keccak256(&body).to_vec();
    out.extend_from_slice(&body);
    out
}

/// An ENRResponse whose record has a broken signature.
fn garbage_enr_response(key: &SecretKey, request_hash: [u8; 32]) -> Vec<u8> {
    let pk = secp256k1::PublicKey::from_secret_key_global(key).serialize();
    let mut fields = Vec::new();
    [0u8; 64].as_slice().encode(&mut fields);
    1u64.encode(&mut fields);
    b"id".as_slice().encode(&mut fields);
    b"v4".as_slice().encode(&mut fields);
    b"secp256k1".as_slice().encode(&mut fields);
    pk.as_slice().encode(&mut fields);
    let mut enr = Vec::new();
    alloy_rlp::Header {
        list: true,
        payload_length: fields.len(),
    }
    .encode(&mut enr);
    enr.extend_from_slice(&fields);
    let mut payload = Vec::new();
    request_hash.as_slice().encode(&mut payload);
    payload.extend_from_slice(&enr);
    let mut data = Vec::new();
    alloy_rlp::Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(&mut data);
    data.extend_from_slice(&payload);
    raw_packet(key, 6, &data)
}

/// A discovery node that answers pings (and pings back), answers every FindNode with
/// `floods` Neighbours packets full of nodes that do not exist, and every ENRRequest
/// with a record that is garbage or another node's.
async fn hostile_discovery(
    floods: usize,
) -> (
    Node,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let key = SecretKey::new(&mut rand::rng());
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let me = Node {
        id: NodeId::from_secret_key(&key),
        ip: addr.ip(),
        udp: addr.port(),
        tcp: 0,
    };
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let enr_answers = Arc::new(AtomicUsize::new(0));
    let enr_counter = enr_answers.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut answers = 0u64;
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(p) = packet::decode(&buf[..n]) else {
                continue;
            };
            let exp = unix() + 20;
            let mut out = Vec::new();
            match p.message {
                Message::Ping(_) => {
                    let to = Endpoint {
                        ip: from.ip(),
                        udp: from.port(),
                        tcp: 0,
                    };
                    let pong = Pong {
                        to,
                        ping_hash: p.hash,
                        expiration: exp,
                        enr_seq: Some(1),
                    };
                    out.push(Message::Pong(pong).encode(&key).0);
                    let ping = packet::Ping {
                        from: Endpoint {
                            ip: addr.ip(),
                            udp: addr.port(),
                            tcp: 0,
                        },
                        to,
                        expiration: exp,
                        enr_seq: Some(1),
                    };
                    out.push(Message::Ping(ping).encode(&key).0);
                }
                Message::FindNode(_) => {
                    for _ in 0..floods {
                        let fakes: Vec<Node> = (0..12)
                            .map(|i| Node {
                                id: NodeId::from_secret_key(&SecretKey::new(&mut rand::rng())),
                                ip: [127, 0, 0, 1].into(),
                                udp: 1 + i,
                                tcp: 1 + i,
                            })
                            .collect();
                        out.extend(packet::encode_neighbors(&fakes, exp, &key));
                    }
                }
                Message::EnrRequest(_) => {
                    answers += 1;
                    enr_counter.fetch_add(1, Ordering::Relaxed);
                    if answers.is_multiple_of(2) {
                        out.push(garbage_enr_response(&key, p.hash));
                    } else {
                        let other = SecretKey::new(&mut rand::rng());
                        let enr = discovery::enr::Builder::new()
                            .ip(addr.ip())
                            .udp(addr.port())
                            .build(1, &other)
                            .unwrap();
                        let resp = packet::EnrResponse {
                            request_hash: p.hash,
                            enr,
                        };
                        out.push(Message::EnrResponse(resp).encode(&key).0);
                    }
                }
                _ => {}
            }
            for d in out {
                counter.fetch_add(1, Ordering::Relaxed);
                let _ = socket.send_to(&d, from).await;
            }
        }
    });
    (me, sent, enr_answers, task)
}

fn prober() -> Prober {
    let spec = devp2p::chain::presets::ethtest().unwrap();
    let mut p = Prober::new(
        SecretKey::new(&mut rand::rng()),
        "crawler-test".into(),
        &spec,
    );
    p.handshake_timeout = Duration::from_secs(1);
    p.status_timeout = Duration::from_secs(1);
    p
}

fn settings(bootnodes: Vec<Node>, timeout: Duration) -> driver::Settings {
    let mut s = driver::Settings::new(SecretKey::new(&mut rand::rng()));
    s.bind = "127.0.0.1:0".parse().unwrap();
    s.discovery.bootnodes = bootnodes;
    // The hostile node sends far more than an honest peer: keep its packets.
    s.discovery.rate_limit = 10_000;
    s.discovery.rate_burst = 10_000;
    s.timeout = timeout;
    s.progress_interval = Duration::ZERO;
    s
}

/// A node answering every lookup with floods of Neighbours (hundreds of nodes that do
/// not exist) and every ENRRequest with a garbage or foreign record: none of them
/// enters the set, what is queued stays within the bounds, the packets we send stay
/// within the rate, and the crawl ends on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbour_floods_and_garbage_records_stay_within_bounds() {
    let (hostile, hostile_sent, enr_answers, task) = hostile_discovery(40).await;
    let mut s = settings(vec![hostile], Duration::from_secs(4));
    s.crawl.max_nodes = 8;
    s.crawl.max_queue = 32;
    s.crawl.max_checks = 8;
    s.packets_per_sec = 50.0;
    let started = Instant::now();
    let out = driver::crawl(s, prober(), NodeSet::new(), std::future::pending())
        .await
        .unwrap();
    let took = started.elapsed();
    task.abort();
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(
        hostile_sent.load(Ordering::Relaxed) >= 40,
        "the flood happened: {}",
        hostile_sent.load(Ordering::Relaxed)
    );
    assert!(
        enr_answers.load(Ordering::Relaxed) >= 2,
        "a foreign and a garbage record were sent"
    );
    assert!(
        out.nodes.is_empty(),
        "no garbage record nor fake node enters the set: {:?}",
        out.nodes.keys().collect::<Vec<_>>()
    );
    let p = &out.progress;
    assert!(p.unreachable >= 1, "{p:?}");
    assert!(p.checking <= 32, "queue bound: {p:?}");
    // 50 packets a second with a burst of 50, for 4 s.
    assert!(out.sent <= 50 + 50 * 5, "sent {}", out.sent);
}

/// Slowloris RLPx listeners (they accept and never answer) hold at most `max_dials`
/// probes at once, each for the handshake timeout, and an honest node behind them is
/// still probed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_listeners_hold_at_most_the_dial_slots() {
    let boot = discovery::bind(
        "127.0.0.1:0".parse().unwrap(),
        SecretKey::new(&mut rand::rng()),
        discovery::Config::default(),
        None,
    )
    .await
    .unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let mut discs = Vec::new();
    for _ in 0..6 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, most) = (open.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let open = open.clone();
                tokio::spawn(async move {
                    // Hold the connection until the crawler gives up on it.
                    let mut b = [0u8; 1024];
                    while let Ok(n) = tokio::io::AsyncReadExt::read(&mut s, &mut b).await {
                        if n == 0 {
                            break;
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }));
        let config = discovery::Config {
            tcp_port: port,
            bootnodes: vec![boot.local_node()],
            ..discovery::Config::default()
        };
        let key = SecretKey::new(&mut rand::rng());
        discs.push(
            discovery::bind("127.0.0.1:0".parse().unwrap(), key, config, None)
                .await
                .unwrap(),
        );
    }
    // One honest node: a p2p server without subprotocols still says Hello.
    let key = SecretKey::new(&mut rand::rng());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server =
        devp2p::server::start(devp2p::server::Config::new(key), listener, None, vec![]).unwrap();
    let config = discovery::Config {
        tcp_port: server.listen_addr().port(),
        bootnodes: vec![boot.local_node()],
        ..discovery::Config::default()
    };
    let honest = discovery::bind("127.0.0.1:0".parse().unwrap(), key, config, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut s = settings(vec![boot.local_node()], Duration::from_secs(7));
    s.crawl.max_dials = 2;
    s.crawl.dials_per_sec = 100.0;
    let out = driver::crawl(s, prober(), NodeSet::new(), std::future::pending())
        .await
        .unwrap();
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "at most 2 dials at once: {}",
        most.load(Ordering::SeqCst)
    );
    assert!(
        most.load(Ordering::SeqCst) >= 1,
        "the slowloris nodes were dialled"
    );
    let e = &out.nodes[&honest.local_node().id];
    assert!(e.hello.is_some(), "the honest node was probed: {e:?}");
    let slow_failed = out
        .nodes
        .values()
        .filter(|e| {
            e.dial_error
                .as_deref()
                .is_some_and(|d| d.contains("timed out"))
        })
        .count();
    assert_eq!(slow_failed, 6, "{:?}", out.progress);
    for t in tasks {
        t.abort();
    }
    server.shutdown().await;
    for d in discs.iter().chain([&honest, &boot]) {
        d.shutdown().await;
    }
}

/// A node that says nothing until it has our Status (not what clients do, but the spec
/// allows it) gets ours after the grace period: the genesis Status of our chain, which
/// decodes; the probe then reads its Status and leaves with ClientQuitting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_waiting_for_our_status_gets_it() {
    use protocols::eth::messages::{self, Message, Status, Status68, code};
    let spec = devp2p::chain::presets::ethtest().unwrap();
    let key = SecretKey::new(&mut rand::rng());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = Node {
        id: NodeId::from_secret_key(&key),
        ip: [127, 0, 0, 1].into(),
        udp: 0,
        tcp: listener.local_addr().unwrap().port(),
    };
    let genesis = spec.genesis_hash;
    let remote = tokio::spawn(async move {
        let cfg = rlpx::Config {
            client_id: "Patient/v1".into(),
            protocols: vec![rlpx::Protocol::new("eth", 68, messages::ETH68_MESSAGES)],
            ..rlpx::Config::default()
        };
        let (s, _) = listener.accept().await.unwrap();
        let hs = rlpx::conn::accept(s, None, &key, &cfg).await.unwrap();
        let mut peer = hs.hello(&key, &cfg).await.unwrap().start(&cfg);
        let mut eth = peer.take_protocol("eth").unwrap();
        let (c, data) = eth.recv().await.unwrap();
        let ours = match Message::decode(68, c, &data).unwrap() {
            Message::Status(Status::V68(s)) => s,
            m => panic!("not a status: {m:?}"),
        };
        let theirs = Status68 {
            network_id: 77,
            ..ours.clone()
        };
        eth.send(code::STATUS, Message::Status(Status::V68(theirs)).encode())
            .await
            .unwrap();
        (ours, peer.closed().await)
    });
    let out = prober().probe(node).await.unwrap();
    let (ours, closed) = tokio::time::timeout(Duration::from_secs(5), remote)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.hello.client_id, "Patient/v1");
    assert_eq!(
        out.status.as_ref().map(|s| s.network_id),
        Some(77),
        "{out:?}"
    );
    assert_eq!(
        (ours.network_id, ours.genesis, ours.head),
        (spec.network_id, genesis, genesis)
    );
    assert_eq!(ours.fork_id, spec.fork_id(0, spec.genesis_header.timestamp));
    assert_eq!(
        closed,
        rlpx::CloseReason::Remote(rlpx::DisconnectReason::ClientQuitting)
    );
}
