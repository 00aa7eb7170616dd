//! Peers that make us hold bytes: a trickle reader that asks for many large answers, an
//! honest slow reader that must still be served, snappy frames that expand to 16 MiB, and
//! several such peers at once. Memory is measured with a counting allocator (live heap
//! bytes), so every test in this binary runs alone (`SERIAL`).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rlpx::codec::{FrameCodec, RawMessage};
use rlpx::handshake::id_bytes;
use rlpx::{CloseReason, Config, DisconnectReason, Hello, Peer, Protocol, conn, p2p};
use secp256k1::{PublicKey, SecretKey};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::sync::Mutex;
use tokio_util::codec::Framed;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let now = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Tests share the allocator counters, so they run one at a time (an async lock: each
/// holds it across its awaits; it does not poison).
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Resets the peak to the current live bytes and returns them.
fn baseline() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// Peak live bytes above `base` since [`baseline`], in MiB.
fn peak_growth_mib(base: usize) -> f64 {
    PEAK.load(Ordering::Relaxed).saturating_sub(base) as f64 / (1024.0 * 1024.0)
}

const MIB: usize = 1024 * 1024;

fn key() -> SecretKey {
    SecretKey::new(&mut rand::rng())
}

fn config() -> Config {
    Config {
        protocols: vec![Protocol::new("eth", 68, 17)],
        ..Config::default()
    }
}

/// `len` bytes snappy cannot shrink (xorshift).
fn noise(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// A raw attacker: handshake and Hello done by hand, then frames under its control.
async fn attacker(io: DuplexStream, node: PublicKey) -> Framed<DuplexStream, FrameCodec> {
    let key = key();
    let mut f = conn::connect(io, None, &key, node, &config())
        .await
        .unwrap()
        .into_framed();
    let hello = Hello {
        protocol_version: 5,
        client_id: "slow".into(),
        capabilities: vec![rlpx::Capability::new("eth", 68)],
        listen_port: 0,
        id: id_bytes(&PublicKey::from_secret_key_global(&key)),
    };
    f.send(RawMessage {
        id: p2p::HELLO,
        data: hello.encode_to_vec().into(),
    })
    .await
    .unwrap();
    assert_eq!(f.next().await.unwrap().unwrap().id, p2p::HELLO);
    f
}

/// Our side of a duplex with `cfg` and a connected attacker.
async fn session(cfg: &Config, buffer: usize) -> (Peer, Framed<DuplexStream, FrameCodec>) {
    let (ours, theirs) = tokio::io::duplex(buffer);
    let node_key = key();
    let node_id = PublicKey::from_secret_key_global(&node_key);
    let (peer, f) = tokio::join!(
        conn::listen_one(ours, None, &node_key, cfg),
        attacker(theirs, node_id)
    );
    (peer.unwrap(), f)
}

/// Like a node serving requests: every message in is answered with `answer` (a few
/// hundred KiB, as eth answers headers or bodies). Returns when sending fails.
fn serve(peer: &mut Peer, answer: Bytes) -> tokio::task::JoinHandle<()> {
    let mut eth = peer.take_protocol("eth").unwrap();
    tokio::spawn(async move {
        while eth.recv().await.is_some() {
            if eth.send(4, answer.clone()).await.is_err() {
                return;
            }
        }
    })
}

fn compressed(data: &[u8]) -> Bytes {
    p2p::Snappy::default().compress(data).unwrap()
}

/// Sends `n` small requests (eth id 0x13, GetBlockHeaders's slot).
async fn request(f: &mut Framed<DuplexStream, FrameCodec>, n: usize) {
    for _ in 0..n {
        let data = compressed(&[0xc0]);
        f.feed(RawMessage { id: 0x13, data }).await.unwrap();
    }
    f.flush().await.unwrap();
}

/// In the background: `requests` small requests, then `n` messages (eth id 0x10) with
/// the (already compressed) `body`, until one fails.
fn flood(
    mut f: Framed<DuplexStream, FrameCodec>,
    requests: usize,
    body: Bytes,
    n: usize,
) -> tokio::task::JoinHandle<Framed<DuplexStream, FrameCodec>> {
    tokio::spawn(async move {
        request(&mut f, requests).await;
        for _ in 0..n {
            let data = body.clone();
            if f.send(RawMessage { id: 0x10, data }).await.is_err() {
                break;
            }
        }
        f
    })
}

/// Reads frames at about `rate` wire bytes per (virtual) second and pings every 10 s, so
/// the session never looks idle. Returns the number of answers read once the session ends.
fn read_slowly(f: Framed<DuplexStream, FrameCodec>, rate: usize) -> tokio::task::JoinHandle<usize> {
    let (mut tx, mut rx) = f.split();
    tokio::spawn(async move {
        let pinger = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let ping = RawMessage {
                    id: p2p::PING,
                    data: compressed(&p2p::EMPTY_LIST),
                };
                if tx.send(ping).await.is_err() {
                    return;
                }
            }
        });
        let (mut allowance, mut answers) = (0i64, 0);
        loop {
            while allowance <= 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                allowance += rate as i64;
            }
            match rx.next().await {
                Some(Ok(m)) => {
                    allowance -= m.data.len() as i64;
                    answers += usize::from(m.id == 0x14);
                }
                _ => break,
            }
        }
        pinger.abort();
        answers
    })
}

/// A peer asks for 64 answers of 512 KiB and reads them at 50 KiB/s: every single answer
/// gets through within the 20 s write timeout, yet the peer holds our queue full for
/// ever. It must be dropped for not keeping up, and the blocked sender released.
#[tokio::test(start_paused = true)]
async fn trickle_reader_is_dropped_for_not_keeping_up() {
    let _serial = SERIAL.lock().await;
    let cfg = config();
    let (mut peer, mut f) = session(&cfg, 64 * 1024).await;
    let server = serve(&mut peer, noise(512 * 1024, 1));
    request(&mut f, 64).await;
    let reader = read_slowly(f, 50 * 1024);
    let start = tokio::time::Instant::now();
    let reason = tokio::time::timeout(Duration::from_secs(120), peer.closed())
        .await
        .expect("a trickle reader kept its session for 120 s");
    println!(
        "trickle reader dropped after {:?} (virtual)",
        start.elapsed()
    );
    assert_eq!(
        reason,
        CloseReason::Local(DisconnectReason::TcpSubsystemError)
    );
    // The handler blocked in `send` is released, not left waiting.
    tokio::time::timeout(Duration::from_secs(1), server)
        .await
        .expect("the sender stayed blocked after the session ended")
        .unwrap();
    let answers = reader.await.unwrap();
    assert!(answers < 64, "{answers}");
}

/// The same requests read at 400 KiB/s (a slow but honest link) are all served.
#[tokio::test(start_paused = true)]
async fn slow_but_steady_reader_is_served_everything() {
    let _serial = SERIAL.lock().await;
    let cfg = config();
    let (mut peer, mut f) = session(&cfg, 64 * 1024).await;
    let _server = serve(&mut peer, noise(512 * 1024, 2));
    request(&mut f, 64).await;
    let reader = read_slowly(f, 400 * 1024);
    let closed = peer.closed();
    tokio::pin!(closed);
    let until_all = tokio::time::sleep(Duration::from_secs(200));
    tokio::select! {
        r = &mut closed => panic!("an honest slow reader was dropped: {r:?}"),
        _ = until_all => {}
    }
    peer.disconnect(DisconnectReason::ClientQuitting);
    assert_eq!(reader.await.unwrap(), 64);
}

/// Snappy frames of about 0.8 MB that each expand to 16 MiB, sent to a protocol that is
/// not reading (like the eth handler blocked in `send`): the receive budget must be taken
/// on the declared size before decompressing, so only what the budget allows is ever
/// expanded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_bombs_are_budgeted_before_decompressing() {
    let _serial = SERIAL.lock().await;
    let cfg = config();
    let (mut peer, f) = session(&cfg, MIB).await;
    let _eth = peer.take_protocol("eth").unwrap(); // held, never read
    let bomb = compressed(&vec![0u8; p2p::MAX_MESSAGE_SIZE]);
    let base = baseline();
    let attack = flood(f, 0, bomb, 8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = peak_growth_mib(base);
    println!("snappy bombs into a blocked protocol: peak heap +{grown:.1} MiB for one peer");
    assert!(
        grown < 24.0,
        "one peer made us hold {grown:.1} MiB (budget: one 16 MiB message)"
    );
    peer.disconnect(DisconnectReason::ClientQuitting);
    attack.abort();
}

/// The attack as found: a peer asks for many 2 MiB answers (the eth soft limit), reads
/// none of them, and sends snappy frames that expand to 16 MiB. What one such peer makes
/// us hold is the receive budget (here one 16 MiB message), the send budget, and the copies
/// of the one answer being written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_asking_much_and_reading_nothing() {
    let _serial = SERIAL.lock().await;
    let cfg = config();
    let (mut peer, f) = session(&cfg, MIB).await;
    let answer = noise(2 * MIB, 3);
    let mut eth = peer.take_protocol("eth").unwrap();
    // Serves like eth: a fresh answer per request.
    let server = tokio::spawn(async move {
        while eth.recv().await.is_some() {
            if eth.send(4, Bytes::from(answer.to_vec())).await.is_err() {
                return;
            }
        }
    });
    let bomb = compressed(&vec![0u8; p2p::MAX_MESSAGE_SIZE]);
    let base = baseline();
    let attack = flood(f, 64, bomb, 8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = peak_growth_mib(base);
    println!(
        "one peer asking 64 x 2 MiB, reading nothing, sending bombs: peak heap +{grown:.1} MiB"
    );
    assert!(grown < 36.0, "one peer made us hold {grown:.1} MiB");
    peer.disconnect(DisconnectReason::ClientQuitting);
    attack.abort();
    server.abort();
}

/// Once a 12 MiB message has been received and another sent, the session's frame buffers
/// shrink back: a peer cannot make us keep the largest frame it ever sent (or we sent it)
/// allocated for the rest of the session, outside every budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_messages_leave_no_big_buffers_behind() {
    let _serial = SERIAL.lock().await;
    let cfg = config();
    let (mut peer, mut f) = session(&cfg, MIB).await;
    let mut eth = peer.take_protocol("eth").unwrap();
    let big = noise(12 * MIB, 5);
    let body = compressed(&big);
    let sender = eth.sender();
    let base = baseline();
    let (sent, got) = tokio::join!(
        async {
            f.send(RawMessage {
                id: 0x10,
                data: body,
            })
            .await
            .unwrap();
            sender.send(4, Bytes::from(big.to_vec())).await.unwrap();
            loop {
                let m = f.next().await.unwrap().unwrap();
                if m.id == 0x14 {
                    break m.data.len();
                }
            }
        },
        async { eth.recv().await.unwrap().1.len() }
    );
    assert!(sent > 11 * MIB && got == 12 * MIB);
    // The attacker's own buffers are in this process too: shrink them by hand.
    let r = f.read_buffer_mut();
    *r = bytes::BytesMut::from(&r[..]);
    let w = f.write_buffer_mut();
    *w = bytes::BytesMut::from(&w[..]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kept = LIVE.load(Ordering::Relaxed).saturating_sub(base) as f64 / MIB as f64;
    println!("after a 12 MiB message each way: +{kept:.1} MiB still allocated");
    assert!(kept < 4.0, "the session kept {kept:.1} MiB of buffers");
    peer.disconnect(DisconnectReason::ClientQuitting);
}

/// A large message (2 MiB, the eth soft limit, each way) is expanded and compressed in
/// buffers from the node's pool, which go back there when done with: the second round
/// reuses them (the pool does not grow), and the pool stays within its stated bound.
/// (A 12 MiB message's buffers are not kept at all: the test above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_message_buffers_are_reused_from_the_node_pool() {
    let _serial = SERIAL.lock().await;
    let cfg = config();
    let node = cfg.node_budget.clone();
    let (mut peer, mut f) = session(&cfg, MIB).await;
    let mut eth = peer.take_protocol("eth").unwrap();
    let sender = eth.sender();
    let big = Bytes::from(vec![7u8; 2 * MIB]);
    assert_eq!(node.pooled_bytes(), 0);
    let mut pooled = Vec::new();
    for _ in 0..2 {
        f.send(RawMessage {
            id: 0x10,
            data: compressed(&big),
        })
        .await
        .unwrap();
        let got = eth.recv().await.unwrap().1;
        assert_eq!(got, big);
        drop(got);
        sender.send(4, big.clone()).await.unwrap();
        loop {
            let m = f.next().await.unwrap().unwrap();
            if m.id == 0x14 {
                break;
            }
        }
        // The writer gives its scratch back once the batch is flushed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while node.pooled_bytes() < 4 * MIB && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pooled.push(node.pooled_bytes());
    }
    println!("pooled after each round: {pooled:?}");
    assert!(
        pooled[0] >= 4 * MIB,
        "body and scratch are pooled: {pooled:?}"
    );
    assert_eq!(pooled[0], pooled[1], "the second round reused them");
    assert!(pooled[1] <= rlpx::buffers::DEFAULT_BUFFER_POOL);
    peer.disconnect(DisconnectReason::ClientQuitting);
}

/// Four peers share one node budget (12 MiB received, 8 MiB queued for sending). Each sends
/// 8 MiB to a protocol that is not reading, while its protocol queues 8 MiB for it and it
/// reads none of it: together they hold no more than the node budget plus the frames in
/// hand, where the per-peer budgets alone would allow 48 MiB. Once the others are gone,
/// their share returns and the last peer is served in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_sharing_a_node_budget_hold_no_more_than_it() {
    let _serial = SERIAL.lock().await;
    let node = rlpx::NodeBudget::new(12 * MIB, 8 * MIB);
    let cfg = Config {
        node_budget: node.clone(),
        ..config()
    };
    let mut peers = Vec::new();
    for _ in 0..4 {
        let (mut peer, f) = session(&cfg, MIB).await;
        let eth = peer.take_protocol("eth").unwrap();
        peers.push((peer, eth, f));
    }
    let msg = noise(MIB, 7);
    let base = baseline();
    let mut attackers = Vec::new();
    let mut handles = Vec::new();
    for (peer, eth, f) in peers {
        attackers.push(flood(f, 0, compressed(&msg), 8));
        let sender = eth.sender();
        let out = msg.clone();
        tokio::spawn(async move {
            for _ in 0..8 {
                // A fresh copy each, as answers are.
                let answer = Bytes::from(out.to_vec());
                if sender.send(4, answer).await.is_err() {
                    return;
                }
            }
        });
        handles.push((peer, eth));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = peak_growth_mib(base);
    println!("4 peers within a 12 + 8 MiB node budget: peak heap +{grown:.1} MiB");
    assert!(node.inbound_in_use() <= 12 * MIB && node.outbound_in_use() <= 8 * MIB);
    assert!(node.inbound_in_use() >= 8 * MIB, "{node:?}");
    // Measured 47.5 MiB: 20 MiB of budget plus about 7 MiB per peer outside any budget
    // (the frame in the reader's hand, the writer's compressed and framed copies of the
    // message it is writing, the attacker's own buffers, and the answer each sender holds
    // while it waits). With the per-peer budgets alone: 71 MiB.
    assert!(
        grown < 58.0,
        "four peers made us hold {grown:.1} MiB with a 20 MiB node budget"
    );
    // The others leave (as the progress rule makes peers that do not read) and their
    // protocols end; the last peer's messages then all arrive.
    let (last, mut last_eth) = handles.pop().unwrap();
    for (peer, eth) in handles {
        peer.disconnect(DisconnectReason::ClientQuitting);
        drop(eth);
    }
    for _ in 0..8 {
        let got = tokio::time::timeout(Duration::from_secs(5), last_eth.recv()).await;
        assert_eq!(got.unwrap().unwrap().1.len(), MIB);
    }
    last.disconnect(DisconnectReason::ClientQuitting);
    for a in attackers {
        a.abort();
    }
}
