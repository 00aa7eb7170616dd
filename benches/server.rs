//! Server benchmark: memory per connected idle peer, and accepted handshakes per second
//! under a flood of concurrent dialers, with the handshake's EC bound measured in the same
//! run. `cargo bench --bench server` (add `-- --peers N` to change the 500 peers).
//!
//! The dialers run in a child process (this binary re-executed with `--dialer`), so the
//! server's RSS is measured alone. Without `--bench` (as the test command runs it) it does
//! a small smoke pass.

use devp2p::server::{self, PeerEvent};
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey, ecdh};
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Idle, rlpx_config, rss_kib};

/// Child mode: `--dialer hold N ADDR ID` keeps N sessions open until stdin closes;
/// `--dialer flood K SECS ADDR ID` runs K concurrent connect-Hello-disconnect loops.
async fn dialer(args: &[String]) {
    let cfg = rlpx_config();
    let mode = args[0].as_str();
    let (addr, id): (SocketAddr, PublicKey) = {
        let n = args.len();
        (args[n - 2].parse().unwrap(), args[n - 1].parse().unwrap())
    };
    match mode {
        "hold" => {
            let n: usize = args[1].parse().unwrap();
            let mut peers = Vec::new();
            for _ in 0..n {
                let key = SecretKey::new(&mut rand::rng());
                let hs = rlpx::conn::connect_tcp(addr, &key, id, &cfg).await.unwrap();
                peers.push(hs.hello(&key, &cfg).await.unwrap().start(&cfg));
            }
            println!("ready");
            let _ = tokio::task::spawn_blocking(|| {
                let mut s = String::new();
                let _ = std::io::stdin().read_line(&mut s);
            })
            .await;
            drop(peers);
        }
        _ => {
            let k: usize = args[1].parse().unwrap();
            let secs: f64 = args[2].parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let mut tasks = Vec::new();
            for _ in 0..k {
                let cfg = cfg.clone();
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let key = SecretKey::new(&mut rand::rng());
                        if let Ok(hs) = rlpx::conn::connect_tcp(addr, &key, id, &cfg).await
                            && let Ok(est) = hs.hello(&key, &cfg).await
                        {
                            est.disconnect(rlpx::DisconnectReason::DisconnectRequested)
                                .await;
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            println!("done");
        }
    }
}

fn child(args: &[&str]) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("--dialer")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-exec bench binary")
}

/// Reads the child's next stdout line and checks it is `want` (a dialer that failed
/// exits without printing it).
fn expect_line(c: &mut std::process::Child, want: &str) {
    let mut line = String::new();
    let _ = BufReader::new(c.stdout.as_mut().unwrap()).read_line(&mut line);
    assert_eq!(line.trim(), want, "dialer child failed");
}

/// Waits for the child and checks it exited with success.
fn expect_success(c: &mut std::process::Child) {
    let status = c.wait().expect("wait for the dialer child");
    assert!(status.success(), "dialer child exited with {status}");
}

/// Polls `cond` every 20 ms; panics after 60 s (the full run connects 500 peers in a few).
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(i) = args.iter().position(|a| a == "--dialer") {
        rt.block_on(dialer(&args[i + 1..]));
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    let peers: usize = args
        .iter()
        .position(|a| a == "--peers")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if full { 500 } else { 10 });
    let flood_secs = if full { 5.0 } else { 0.5 };

    // Server-side EC work per accepted handshake: ECIES decrypt (1 ECDH), static ECDH,
    // recover, ephemeral public key, ECIES encrypt (public key + ECDH), ephemeral ECDH,
    // and the Hello's own public key: 4 ECDH + 1 recover + 3 public keys.
    let a = SecretKey::new(&mut rand::rng());
    let b = PublicKey::from_secret_key_global(&SecretKey::new(&mut rand::rng()));
    let t = Instant::now();
    let n = if full { 3000 } else { 50 };
    for _ in 0..n {
        black_box(ecdh::shared_secret_point(&b, &a));
    }
    let ecdh_s = t.elapsed().as_secs_f64() / n as f64;
    let msg = Message::from_digest([7; 32]);
    let sig = SECP256K1.sign_ecdsa_recoverable(msg, &a);
    let t = Instant::now();
    for _ in 0..n {
        black_box(SECP256K1.recover_ecdsa(msg, &sig).ok());
    }
    let recover_s = t.elapsed().as_secs_f64() / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        black_box(PublicKey::from_secret_key_global(&a));
    }
    let pub_s = t.elapsed().as_secs_f64() / n as f64;
    let bound = 1.0 / (4.0 * ecdh_s + recover_s + 3.0 * pub_s);

    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let key = SecretKey::new(&mut rand::rng());
        let id = PublicKey::from_secret_key_global(&key).to_string();
        let mut config = server::Config::new(key);
        config.max_peers = peers + 16;
        config.dial_ratio = usize::MAX; // no outbound slots: all inbound
        let handle = server::start(config, listener, None, vec![std::sync::Arc::new(Idle)]).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        // Memory per idle peer.
        let before = rss_kib();
        let n_str = peers.to_string();
        let addr_str = addr.to_string();
        let mut holder = child(&["hold", &n_str, &addr_str, &id]);
        expect_line(&mut holder, "ready");
        until("the held peers", || handle.peers().len() >= peers).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib();
        let per_peer = (after.saturating_sub(before)) as f64 / peers as f64;
        let _ = holder.stdin.as_mut().unwrap().write_all(b"\n");
        expect_success(&mut holder);
        until("the held peers to leave", || handle.peers().is_empty()).await;

        // Accepted handshakes per second under 16 concurrent dialers.
        let mut events = handle.subscribe();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if matches!(ev, PeerEvent::Added(_)) {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        let start = Instant::now();
        let secs = flood_secs.to_string();
        let mut flood = child(&["flood", "16", &secs, &addr_str, &id]);
        expect_line(&mut flood, "done");
        let elapsed = start.elapsed().as_secs_f64();
        expect_success(&mut flood);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let accepted = accepted.load(std::sync::atomic::Ordering::Relaxed);
        assert!(accepted > 0, "the server accepted no handshake from the flood");
        let rate = accepted as f64 / elapsed;
        handle.shutdown().await;

        println!("\n### Server (loopback, dialers in a child process)\n");
        println!("| measurement | value | bound | ratio |");
        println!("|---|---:|---:|---:|");
        println!("| RSS per connected idle peer ({peers} peers) | {per_peer:.1} KiB | – | – |");
        println!(
            "| accepted handshakes/s, 16 concurrent dialers | {rate:.0} /s | {bound:.0} /s (server-side EC work, one core) | {:.0}% |",
            100.0 * rate / bound
        );
    });
}
