//! Flood benchmark (issue #11, "floods and long runs"): thousands of garbage or stalled TCP
//! connections from many source addresses (127.0.X.Y across 40 /24s, so the per-IP and
//! per-subnet limits apply as they would on the internet) and a UDP flood at the discovery
//! port, while a good peer from its own /24 dials now and then. Reports the good peer's
//! handshake times (target: under 1 s), what the server refused and why, and the RSS.
//!
//! `cargo bench --bench flood` (10,000 connections for 20 s; `-- --conns N --secs S`).
//! Without `--bench` (as the test command runs it) a small smoke pass: 400 connections for
//! 3 s, asserting the good peer gets in every time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use devp2p::server;
use secp256k1::{PublicKey, SecretKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::{Idle, rlpx_config, rss_kib};

/// Attacker source `i`: 127.1.S.H, one /24 per S in 1..=40 (round robin, so even a small
/// flood spans all 40), hosts H in 1..=250.
fn source_ip(i: usize) -> IpAddr {
    let subnet = 1 + i % 40;
    let host = 1 + (i / 40) % 250;
    Ipv4Addr::new(127, 1, subnet as u8, host as u8).into()
}

#[derive(Default)]
struct Counts {
    tcp_opened: AtomicU64,
    tcp_failed: AtomicU64,
    udp_sent: AtomicU64,
}

/// Keeps `slot`'s connection going until `until`: connect from its source, send garbage
/// (odd slots) or nothing (even slots: stalled), hold it until the server closes it, again.
async fn attacker(slot: usize, server: SocketAddr, until: Instant, counts: Arc<Counts>) {
    let garbage = vec![0xa5u8; 307];
    while Instant::now() < until {
        let socket = match tokio::net::TcpSocket::new_v4() {
            Ok(s) => s,
            Err(_) => return,
        };
        if socket.bind(SocketAddr::new(source_ip(slot), 0)).is_err() {
            return;
        }
        let mut stream = match socket.connect(server).await {
            Ok(s) => s,
            Err(_) => {
                counts.tcp_failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        counts.tcp_opened.fetch_add(1, Ordering::Relaxed);
        if slot % 2 == 1 {
            let _ = stream.write_all(&garbage).await;
        }
        let mut buf = [0u8; 512];
        let left = until.saturating_duration_since(Instant::now());
        // Held until the server lets go (or the run ends).
        let _ = tokio::time::timeout(left, async {
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// Sends 200-byte garbage datagrams (and truncated ping-like packets) at the discovery port
/// from 40 sources until `until`.
async fn udp_flood(target: SocketAddr, until: Instant, counts: Arc<Counts>) {
    let mut sockets = Vec::new();
    for s in 0..40 {
        if let Ok(sock) = tokio::net::UdpSocket::bind((source_ip(s), 0)).await {
            sockets.push(sock);
        }
    }
    let mut packet = vec![0u8; 200];
    let mut n = 0u64;
    while Instant::now() < until {
        for sock in &sockets {
            packet[0] = n as u8;
            packet[97] = 0x01; // a ping's type byte at the discv4 header offset
            let _ = sock.send_to(&packet, target).await;
            n += 1;
        }
        tokio::task::yield_now().await;
    }
    counts.udp_sent.fetch_add(n, Ordering::Relaxed);
}

/// The good peer: a full RLPx handshake and Hello from 127.0.200.1 (its own /24).
async fn good_dial(server: SocketAddr, id: PublicKey) -> Result<Duration, String> {
    let key = SecretKey::new(&mut rand::rng());
    let cfg = rlpx_config();
    let started = Instant::now();
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(Ipv4Addr::new(127, 0, 200, 1).into(), 0))
        .map_err(|e| e.to_string())?;
    let stream = socket.connect(server).await.map_err(|e| e.to_string())?;
    let peer = tokio::time::timeout(
        Duration::from_secs(10),
        rlpx::conn::dial(stream, Some(server), &key, id, &cfg),
    )
    .await
    .map_err(|_| "no handshake within 10 s".to_string())?
    .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    peer.disconnect(rlpx::DisconnectReason::DisconnectRequested);
    Ok(took)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let conns = flag("--conns", if bench { 10_000 } else { 400 }) as usize;
    let secs = flag("--secs", if bench { 20 } else { 3 });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let key = SecretKey::new(&mut rand::rng());
        let id = PublicKey::from_secret_key_global(&key);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let udp_addr = udp.local_addr().unwrap();
        let disc_config = discovery::Config {
            tcp_port: listener.local_addr().unwrap().port(),
            ..discovery::Config::default()
        };
        let disc = discovery::Service::spawn(udp, key, disc_config, None).unwrap();
        let mut config = server::Config::new(key);
        // Loopback sources stand for internet addresses here: the per-IP and per-subnet
        // limits apply to them.
        config.ip_limit_exempt = None;
        config.rlpx = rlpx_config();
        let srv = server::start(
            config,
            listener,
            Some(disc.clone()),
            vec![Arc::new(Idle) as Arc<dyn protocols::Subprotocol>],
        )
        .unwrap();
        let addr = srv.listen_addr();
        let rss_before = rss_kib();

        let counts = Arc::new(Counts::default());
        let until = Instant::now() + Duration::from_secs(secs);
        // The attackers run on a runtime (thread) of their own, as they would elsewhere;
        // they still share the machine's two cores with the node.
        let attack_counts = counts.clone();
        let attack = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                for slot in 0..conns {
                    set.spawn(attacker(slot, addr, until, attack_counts.clone()));
                    if slot % 200 == 199 {
                        tokio::task::yield_now().await;
                    }
                }
                while set.join_next().await.is_some() {}
            });
        });
        let udp_counts = counts.clone();
        let udp_attack = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(udp_flood(udp_addr, until, udp_counts));
        });

        // The good peer dials every half second during the flood.
        let mut times = Vec::new();
        let mut failures = Vec::new();
        let mut rss_peak = rss_before;
        tokio::time::sleep(Duration::from_millis(500)).await;
        while Instant::now() + Duration::from_millis(500) < until {
            match good_dial(addr, id).await {
                Ok(t) => times.push(t),
                Err(e) => failures.push(e),
            }
            rss_peak = rss_peak.max(rss_kib());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        while !attack.is_finished() {
            rss_peak = rss_peak.max(rss_kib());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = attack.join();
        let _ = udp_attack.join();
        // Once the flood is over, the held handshake slots must come back.
        let after = good_dial(addr, id).await;

        times.sort();
        let worst = times.last().copied().unwrap_or_default();
        let median = times.get(times.len() / 2).copied().unwrap_or_default();
        println!("flood: {conns} TCP sources over 40 /24s for {secs} s, plus a UDP flood");
        println!("| figure | value |");
        println!("|---|---:|");
        println!(
            "| attacker TCP connections opened / failed | {} / {} |",
            counts.tcp_opened.load(Ordering::Relaxed),
            counts.tcp_failed.load(Ordering::Relaxed)
        );
        println!(
            "| UDP datagrams sent | {} |",
            counts.udp_sent.load(Ordering::Relaxed)
        );
        println!(
            "| good-peer handshakes during the flood (ok / failed) | {} / {} |",
            times.len(),
            failures.len()
        );
        println!("| good-peer handshake, median / worst | {median:?} / {worst:?} |");
        println!(
            "| good-peer handshake after the flood | {:?} |",
            after.as_ref().map_err(|e| e.as_str())
        );
        println!(
            "| RSS before / peak (whole process, attackers included) | {} / {} KiB |",
            rss_before, rss_peak
        );
        let mut by = srv.stats().labelled();
        by.sort();
        for (family, label, v) in by {
            println!("| server {family}: {label} | {v} |");
        }
        for f in failures.iter().take(3) {
            println!("good-peer failure: {f}");
        }
        if !bench {
            assert!(
                counts.tcp_opened.load(Ordering::Relaxed) > 0,
                "the flood ran"
            );
            assert!(!times.is_empty(), "the good peer dialled during the flood");
            assert!(
                failures.is_empty(),
                "the good peer was kept out: {failures:?}"
            );
            assert!(after.is_ok(), "after the flood: {after:?}");
        }
        srv.shutdown().await;
        disc.shutdown().await;
    });
}
