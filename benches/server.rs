//! Server benchmark: memory per connected idle and busy peer, and accepted handshakes per second
//! under a flood of concurrent dialers, with the handshake's EC bound measured in the same
//! run. `cargo bench --bench server` (add `-- --peers N` to change the 500 peers, `--secs S`
//! for the length of each handshake flood, `--dialers K` for the dialers in flight (16),
//! `--handshakes` for the handshake rows alone).
//!
//! The dialers run in a child process (this binary re-executed with `--dialer`), so the
//! server's RSS is measured alone. Without `--bench` (as the test command runs it) it does
//! a small smoke pass.

use devp2p::server::{self, PeerEvent};
use protocols::Subprotocol;
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey, ecdh};
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Idle, process_cpu, rlpx_config, rss_kib, thread_cpu};

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
        "hold" | "busy" => {
            let busy = mode == "busy";
            let cfg = if busy { echo_config() } else { cfg };
            let n: usize = args[1].parse().unwrap();
            let mut peers = Vec::new();
            for _ in 0..n {
                let key = SecretKey::new(&mut rand::rng());
                let hs = rlpx::conn::connect_tcp(addr, &key, id, &cfg).await.unwrap();
                peers.push(hs.hello(&key, &cfg).await.unwrap().start(&cfg));
            }
            // Traffic starts once every session is up: started per peer, the echoes of
            // the first peers took the (pinned) core and later handshakes timed out.
            for peer in peers.iter_mut().filter(|_| busy) {
                // Send 1 KiB messages as fast as the session takes them and read the
                // echoes: traffic both ways at full speed.
                let mut h = peer.take_protocol("echo").unwrap();
                let tx = h.sender();
                tokio::spawn(async move {
                    let msg = bytes::Bytes::from(vec![0x5a; 1024]);
                    while tx.send(0, msg.clone()).await.is_ok() {}
                });
                tokio::spawn(async move { while h.recv().await.is_some() {} });
            }
            println!("ready");
            let _ = tokio::task::spawn_blocking(|| {
                let mut s = String::new();
                let _ = std::io::stdin().read_line(&mut s);
            })
            .await;
            drop(peers);
        }
        "reject" => {
            // One auth sealed to another node's key, sent again and again: the server
            // pays one ECDH to find the tag wrong, the dialer nothing (as a flooder would).
            let k: usize = args[1].parse().unwrap();
            let secs: f64 = args[2].parse().unwrap();
            let other = PublicKey::from_secret_key_global(&SecretKey::new(&mut rand::rng()));
            let key = SecretKey::new(&mut rand::rng());
            let init = rlpx::handshake::Initiator::new(&mut rand::rng(), key, other);
            let auth = bytes::Bytes::copy_from_slice(init.auth());
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let mut tasks = Vec::new();
            for _ in 0..k {
                let auth = auth.clone();
                tasks.push(tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    while Instant::now() < deadline {
                        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await
                            && s.write_all(&auth).await.is_ok()
                        {
                            let mut buf = [0u8; 64];
                            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            println!("done");
        }
        _ => {
            let k: usize = args[1].parse().unwrap();
            let secs: f64 = args[2].parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let cpu0 = process_cpu();
            let mut tasks = Vec::new();
            for _ in 0..k {
                let cfg = cfg.clone();
                tasks.push(tokio::spawn(async move {
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        let key = SecretKey::new(&mut rand::rng());
                        if let Ok(hs) = rlpx::conn::connect_tcp(addr, &key, id, &cfg).await
                            && let Ok(est) = hs.hello(&key, &cfg).await
                        {
                            est.disconnect(rlpx::DisconnectReason::DisconnectRequested)
                                .await;
                            done += 1;
                        }
                    }
                    done
                }));
            }
            let mut done = 0;
            for t in tasks {
                done += t.await.unwrap_or(0);
            }
            // The dialers' side of the CPU per handshake (the parent adds the server's).
            println!("done {done} {:.6}", (process_cpu() - cpu0).as_secs_f64());
        }
    }
}

/// RLPx settings offering the echo protocol (busy peers).
fn echo_config() -> rlpx::Config {
    rlpx::Config {
        protocols: Echo.protocols(),
        ..rlpx::Config::default()
    }
}

/// Sends every message back: with busy peers, traffic flows both ways at full speed.
struct Echo;

impl Subprotocol for Echo {
    fn protocols(&self) -> Vec<rlpx::Protocol> {
        vec![rlpx::Protocol::new("echo", 1, 1)]
    }
    fn handle(&self, mut peer: rlpx::ProtocolHandle) -> protocols::Handler {
        Box::pin(async move {
            let tx = peer.sender();
            while let Some((code, data)) = peer.recv().await {
                if tx.send(code, data).await.is_err() {
                    break;
                }
            }
        })
    }
}

/// Whether to pin: the server on CPU 0, the dialers on CPU 1 (`taskset`, with two or
/// more CPUs), so each side has one core of its own and the server's handshake rate is
/// measured against a one-core bound it actually has.
fn pinning() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        && Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Pins every thread of this process to `cpu`.
fn pin_self(cpu: usize) {
    let pid = std::process::id().to_string();
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset could not pin the server");
}

/// Starts a dialer child, on CPU 1 when `pinned`. (Whether to pin is decided once, before
/// the server pins itself: afterwards `available_parallelism` sees one CPU, and until
/// 2026-12-05 evening the children were started unpinned, on the server's CPU.)
fn child(pinned: bool, args: &[&str]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.arg("--dialer")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-exec bench binary")
}

/// Reads the child's next stdout line and checks it is `want` (a dialer that failed
/// exits without printing it).
fn expect_line(c: &mut std::process::Child, want: &str) {
    assert_eq!(read_line(c), want, "dialer child failed");
}

/// The child's next stdout line, trimmed.
fn read_line(c: &mut std::process::Child) -> String {
    let mut line = String::new();
    let _ = BufReader::new(c.stdout.as_mut().unwrap()).read_line(&mut line);
    line.trim().to_string()
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
    let flood_secs: f64 = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if full { 5.0 } else { 0.5 });
    let dialers: usize = args
        .iter()
        .position(|a| a == "--dialers")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(16);
    // `--handshakes`: only the handshake rows (for profiling the accept path).
    let handshakes_only = args.iter().any(|a| a == "--handshakes");
    let pinned = pinning();
    if pinned {
        // The runtime's workers exist already; threads started later inherit the mask.
        pin_self(0);
    }

    // Server-side EC work per accepted handshake: ECIES decrypt (1 ECDH), static ECDH,
    // recover, ephemeral public key, ECIES encrypt (public key + ECDH), ephemeral ECDH:
    // 4 ECDH + 1 recover + 2 public keys. (Our own id, in the Hello, is derived once per
    // key: `rlpx::handshake::static_id`; until 2026-12-05 the bound counted a third public
    // key for it, as every handshake derived it.)
    // Timed on this thread's CPU clock, so other processes on the core do not lower it.
    let a = SecretKey::new(&mut rand::rng());
    let b = PublicKey::from_secret_key_global(&SecretKey::new(&mut rand::rng()));
    let n = if full { 3000 } else { 50 };
    let per_op = |f: &dyn Fn()| {
        let t = thread_cpu();
        for _ in 0..n {
            f();
        }
        (thread_cpu() - t).as_secs_f64() / n as f64
    };
    let ecdh_s = per_op(&|| {
        black_box(ecdh::shared_secret_point(&b, &a));
    });
    let msg = Message::from_digest([7; 32]);
    let sig = SECP256K1.sign_ecdsa_recoverable(msg, &a);
    let recover_s = per_op(&|| {
        black_box(SECP256K1.recover_ecdsa(msg, &sig).ok());
    });
    let pub_s = per_op(&|| {
        black_box(PublicKey::from_secret_key_global(&a));
    });
    let bound = 1.0 / (4.0 * ecdh_s + recover_s + 2.0 * pub_s);
    // A rejected auth (sealed to another key): one ECDH before the tag check fails.
    let reject_bound = 1.0 / ecdh_s;

    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let key = SecretKey::new(&mut rand::rng());
        let id = PublicKey::from_secret_key_global(&key).to_string();
        let mut config = server::Config::new(key);
        config.max_peers = peers + 16;
        config.dial_ratio = usize::MAX; // no outbound slots: all inbound
        let subs: Vec<std::sync::Arc<dyn Subprotocol>> =
            vec![std::sync::Arc::new(Idle), std::sync::Arc::new(Echo)];
        let handle = server::start(config, listener, None, subs).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        let n_str = peers.to_string();
        let addr_str = addr.to_string();
        let (mut per_peer, mut per_busy) = (f64::NAN, f64::NAN);
        if !handshakes_only {
        // Memory per idle peer.
        let before = rss_kib();
        let mut holder = child(pinned, &["hold", &n_str, &addr_str, &id]);
        expect_line(&mut holder, "ready");
        until("the held peers", || handle.peers().len() >= peers).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib();
        per_peer = (after.saturating_sub(before)) as f64 / peers as f64;
        let _ = holder.stdin.as_mut().unwrap().write_all(b"\n");
        expect_success(&mut holder);
        until("the held peers to leave", || handle.peers().is_empty()).await;

        // Memory per busy peer: 1 KiB messages both ways at full speed, sampled after the
        // sessions have run for a while (queues and buffers at their working size).
        // Against the same baseline as the idle peers: the allocator keeps what the idle
        // sessions freed, and busy sessions reuse it, so RSS just before them understates.
        let mut busy = child(pinned, &["busy", &n_str, &addr_str, &id]);
        expect_line(&mut busy, "ready");
        until("the busy peers", || handle.peers().len() >= peers).await;
        tokio::time::sleep(Duration::from_secs(if full { 3 } else { 1 })).await;
        let busy_rss = rss_kib();
        per_busy = (busy_rss.saturating_sub(before)) as f64 / peers as f64;
        let _ = busy.stdin.as_mut().unwrap().write_all(b"\n");
        expect_success(&mut busy);
        until("the busy peers to leave", || handle.peers().is_empty()).await;
        }

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
        let (start, cpu0) = (Instant::now(), process_cpu());
        let secs = flood_secs.to_string();
        let mut flood = child(pinned, &["flood", &dialers.to_string(), &secs, &addr_str, &id]);
        let line = read_line(&mut flood);
        let (elapsed, cpu) = (start.elapsed().as_secs_f64(), process_cpu() - cpu0);
        let dialer_cpu: f64 = match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["done", _, cpu] => cpu.parse().unwrap_or(f64::NAN),
            _ => panic!("dialer child failed: {line:?}"),
        };
        expect_success(&mut flood);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let accepted = accepted.load(std::sync::atomic::Ordering::Relaxed);
        assert!(accepted > 0, "the server accepted no handshake from the flood");
        let rate = accepted as f64 / elapsed;
        let per_cpu = accepted as f64 / cpu.as_secs_f64();
        // Both sides' CPU per handshake (as ethrex's anchor reports it: `cpu_ms_per_hs`).
        let both_ms = 1e3 * (cpu.as_secs_f64() + dialer_cpu) / accepted as f64;

        // Auths sealed to another key, 16 dialers replaying one: rejected after one ECDH.
        let failed = || -> u64 {
            let stats = handle.stats().labelled();
            stats
                .iter()
                .filter(|(family, label, _)| *family == "handshake_failed" && label == "ecies")
                .map(|(_, _, v)| v)
                .sum()
        };
        let (start, cpu0, failed0) = (Instant::now(), process_cpu(), failed());
        let mut rejects = child(pinned, &["reject", &dialers.to_string(), &secs, &addr_str, &id]);
        expect_line(&mut rejects, "done");
        let (r_elapsed, r_cpu) = (start.elapsed().as_secs_f64(), process_cpu() - cpu0);
        expect_success(&mut rejects);
        let rejected = failed() - failed0;
        assert!(rejected > 0, "the server rejected none of the foreign auths");
        let r_rate = rejected as f64 / r_elapsed;
        let r_per_cpu = rejected as f64 / r_cpu.as_secs_f64();
        handle.shutdown().await;

        let placement = if pinned {
            "server pinned to CPU 0, dialers to CPU 1"
        } else {
            "not pinned"
        };
        println!("\n### Server (loopback, dialers in a child process; {placement})\n");
        println!("| measurement | value | bound | ratio |");
        println!("|---|---:|---:|---:|");
        println!("| RSS per connected idle peer ({peers} peers) | {per_peer:.1} KiB | – | – |");
        println!("| RSS per busy peer ({peers} peers, 1 KiB messages both ways) | {per_busy:.1} KiB | – | – |");
        println!(
            "| accepted handshakes/s, {dialers} concurrent dialers | {rate:.0} /s | {bound:.0} /s (server-side EC work, one core) | {:.0}% |",
            100.0 * rate / bound
        );
        println!(
            "| accepted handshakes per server CPU-second | {per_cpu:.0} | {bound:.0} | {:.0}% |",
            100.0 * per_cpu / bound
        );
        println!(
            "| CPU per accepted handshake, both sides (server + dialers) | {both_ms:.3} ms | – | – |"
        );
        println!(
            "| rejected auths/s (sealed to another key), {dialers} dialers | {r_rate:.0} /s | {reject_bound:.0} /s (one ECDH, one core) | {:.0}% |",
            100.0 * r_rate / reject_bound
        );
        println!(
            "| rejected auths per server CPU-second | {r_per_cpu:.0} | {reject_bound:.0} | {:.0}% |",
            100.0 * r_per_cpu / reject_bound
        );
    });
}
