//! RLPx benchmark: primitives, handshakes and session throughput, printed as markdown
//! tables with each figure's ratio to the bound its primitives imply (measured in the
//! same run, since these machines are shared and noisy).
//!
//! `cargo bench -p rlpx --bench rlpx` runs it; add `-- --js` to also run the
//! `@ethereumjs/devp2p` benchmark (`tests/interop/bench.mjs`) on the same machine and print
//! the ratios. Without `--bench` (as `cargo test --all-targets` runs it) it does a quick
//! smoke pass so the code stays exercised.
//!
//! `-- --e2e SIZE COUNT` runs only the end-to-end case (COUNT random, or with
//! `--compressible` compressible, messages of SIZE
//! bytes through the `Peer` API over a duplex), for profiling: under
//! `valgrind --tool=callgrind` two runs with different COUNTs give the instructions per
//! message by difference, free of the setup (keys, handshake). `--tcp` makes the same run
//! go over loopback TCP to a sender in a child process (this binary re-executed with
//! `--tcp-sender`); `--task` makes the receiver a spawned task (as a node's protocol
//! handlers are) instead of the `block_on` thread. It also prints the CPU time per message against the codec's (both
//! sides' frame work on one core), unless `--no-codec` (for callgrind) is given.

use aes::Aes256;
use bytes::{Bytes, BytesMut};
use cipher::{KeyIvInit, StreamCipher};
use keccak_asm::{Digest, Keccak256};
use rand::{RngCore, SeedableRng, rngs::StdRng};
use rlpx::codec::FrameCodec;
use rlpx::handshake::{self, Initiator, Read, id_bytes};
use rlpx::p2p::{self, Hello, Snappy};
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey, ecdh};
use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "rlpx/peer.rs"]
mod peer;
use peer::{async_handshakes, async_throughput, tcp_sender, tcp_throughput};

struct Opts {
    full: bool,
    js: bool,
}

/// Runs `f` repeatedly for about `budget`, returning operations per second
/// (`f` returns how many operations it did).
fn rate(budget: Duration, mut f: impl FnMut() -> u64) -> f64 {
    let _ = f(); // warm-up
    let start = Instant::now();
    let mut ops = 0;
    while start.elapsed() < budget {
        ops += f();
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

/// CPU time this thread has run (`CLOCK_THREAD_CPUTIME_ID`, exact to the call).
fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of every thread of this process so far (`CLOCK_PROCESS_CPUTIME_ID`).
fn process_cpu() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The codec's CPU time per payload byte for `payload`, sender and receiver (compress,
/// encrypt, MAC; MAC, decrypt, decompress), each on this thread's CPU clock: what the
/// two sides of a session cannot do without, whatever else runs on the machine.
fn codec_cpu_per_byte(payload: &[u8], total: usize) -> f64 {
    let (mut a, mut b) = fresh_pair();
    let mut snappy = Snappy::default();
    let count = (total / payload.len()).max(4);
    let mut wire = BytesMut::new();
    let (mut cpu, mut bytes) = (Duration::ZERO, 0);
    // At least 100 ms of CPU, so that cheap (compressible) payloads are timed as well.
    while cpu < Duration::from_millis(100) || bytes == 0 {
        let start = thread_cpu();
        for _ in 0..count {
            let c = snappy.compress(payload).unwrap();
            a.encoder.encode_frame(0x10, &c, &mut wire).unwrap();
        }
        let mut got = 0;
        while let Some(m) = b.decoder.decode_frame(&mut wire).unwrap() {
            got += snappy.decompress(&m.data).unwrap().len();
        }
        cpu += thread_cpu() - start;
        assert_eq!(got, count * payload.len());
        bytes += got;
    }
    cpu.as_secs_f64() / bytes as f64
}

fn mb(bytes_per_sec: f64) -> f64 {
    bytes_per_sec / 1e6
}

fn random(len: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// A repeated 64-byte random block: the same "compressible" payload as
/// `tests/interop/bench.mjs`, so the ethereumjs comparison is like for like.
fn compressible(len: usize, rng: &mut StdRng) -> Vec<u8> {
    let block = random(64, rng);
    block.iter().copied().cycle().take(len).collect()
}

#[derive(Clone, Copy)]
struct Primitives {
    aes: f64,
    keccak: f64,
    ecdh: f64,
    sign: f64,
    recover: f64,
    pubgen: f64,
}

fn primitives(budget: Duration, rng: &mut StdRng) -> Primitives {
    let mut buf = random(1 << 20, rng);
    let mut ctr = ctr::Ctr128BE::<Aes256>::new(&[7u8; 32].into(), &[0u8; 16].into());
    let aes = rate(budget, || {
        ctr.apply_keystream(&mut buf);
        buf.len() as u64
    });
    let mut h = Keccak256::new();
    let keccak = rate(budget, || {
        h.update(&buf);
        buf.len() as u64
    });
    black_box(h.finalize());
    let a = SecretKey::new(rng);
    let b = PublicKey::from_secret_key_global(&SecretKey::new(rng));
    let ecdh = rate(budget, || {
        black_box(ecdh::shared_secret_point(&b, &a));
        1
    });
    let msg = Message::from_digest([9u8; 32]);
    let sign = rate(budget, || {
        black_box(SECP256K1.sign_ecdsa_recoverable(msg, &a));
        1
    });
    let sig = SECP256K1.sign_ecdsa_recoverable(msg, &a);
    let recover = rate(budget, || {
        black_box(SECP256K1.recover_ecdsa(msg, &sig).ok());
        1
    });
    let pubgen = rate(budget, || {
        black_box(PublicKey::from_secret_key_global(&a));
        1
    });
    Primitives {
        aes,
        keccak,
        ecdh,
        sign,
        recover,
        pubgen,
    }
}

struct Quick {
    aes: f64,
    keccak: f64,
    snap_c: f64,
    snap_d: f64,
}

/// Byte-rate primitives on `payload`-sized buffers.
fn primitives_quick(budget: Duration, payload: &[u8]) -> Quick {
    let mut buf = payload.to_vec();
    let mut ctr = ctr::Ctr128BE::<Aes256>::new(&[7u8; 32].into(), &[0u8; 16].into());
    let aes = rate(budget, || {
        ctr.apply_keystream(&mut buf);
        buf.len() as u64
    });
    let mut h = Keccak256::new();
    let keccak = rate(budget, || {
        h.update(payload);
        payload.len() as u64
    });
    black_box(h.finalize());
    let mut snappy = Snappy::default();
    let snap_c = rate(budget, || {
        black_box(snappy.compress(payload).unwrap());
        payload.len() as u64
    });
    let compressed = snappy.compress(payload).unwrap();
    let snap_d = rate(budget, || {
        snappy.decompress(&compressed).unwrap().len() as u64
    });
    Quick {
        aes,
        keccak,
        snap_c,
        snap_d,
    }
}

/// One complete in-memory handshake: auth, ack, secrets, and the Hello exchange through
/// the frame codec on both sides. Returns the two codecs so callers can keep using them.
fn handshake_once(
    rng: &mut StdRng,
    a: &SecretKey,
    b: &SecretKey,
    b_pub: &PublicKey,
    hellos: &(Vec<u8>, Vec<u8>),
) -> (FrameCodec, FrameCodec) {
    let init = Initiator::new(rng, *a, *b_pub);
    let Ok(Read::Done(auth, _)) = handshake::read_auth(b, init.auth(), &mut false) else {
        panic!("auth")
    };
    let (ack, sb) = handshake::respond(rng, &auth);
    let Ok(Read::Done(ack, _)) = handshake::read_ack(a, &ack, &mut false) else {
        panic!("ack")
    };
    let sa = init.finish(&ack);
    let (mut ca, mut cb) = (FrameCodec::new(&sa), FrameCodec::new(&sb));
    let mut wire = BytesMut::new();
    ca.encoder
        .encode_frame(p2p::HELLO, &hellos.0, &mut wire)
        .unwrap();
    cb.encoder
        .encode_frame(p2p::HELLO, &hellos.1, &mut wire)
        .unwrap();
    let mut wire_b = wire.split_to(wire.len() / 2);
    let hb = cb.decoder.decode_frame(&mut wire_b).unwrap().unwrap();
    let ha = ca.decoder.decode_frame(&mut wire).unwrap().unwrap();
    black_box(Hello::decode(&ha.data).unwrap());
    black_box(Hello::decode(&hb.data).unwrap());
    (ca, cb)
}

fn hello_for(key: &SecretKey) -> Vec<u8> {
    Hello {
        protocol_version: 5,
        client_id: "devp2p-rs/bench".into(),
        capabilities: vec![
            p2p::Capability::new("eth", 68),
            p2p::Capability::new("snap", 1),
        ],
        listen_port: 30303,
        id: id_bytes(&PublicKey::from_secret_key_global(key)),
    }
    .encode_to_vec()
}

struct Row {
    what: String,
    value: f64,
    unit: &'static str,
    bound: Option<f64>,
}

fn print(title: &str, rows: &[Row]) {
    println!("\n### {title}\n");
    println!("| measurement | value | bound from primitives | ratio |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        match r.bound {
            Some(b) => println!(
                "| {} | {:.1} {} | {:.1} {} | {:.0}% |",
                r.what,
                r.value,
                r.unit,
                b,
                r.unit,
                100.0 * r.value / b
            ),
            None => println!("| {} | {:.1} {} | – | – |", r.what, r.value, r.unit),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--tcp-sender") {
        return tcp_sender(&args[i + 1..]);
    }
    if let Some(i) = args.iter().position(|a| a == "--e2e") {
        let size: usize = args[i + 1].parse().expect("--e2e SIZE COUNT");
        let count: usize = args[i + 2].parse().expect("--e2e SIZE COUNT");
        let payload = if args.iter().any(|a| a == "--compressible") {
            compressible(size, &mut StdRng::seed_from_u64(7))
        } else {
            random(size, &mut StdRng::seed_from_u64(7))
        };
        let (rate, cpu) = if args.iter().any(|a| a == "--tcp") {
            tcp_throughput(&payload, size * count)
        } else {
            let task = args.iter().any(|a| a == "--task");
            async_throughput(&payload, size * count, task)
        };
        if args.iter().any(|a| a == "--no-codec") {
            // Under callgrind: count the session's instructions alone.
            println!("{size} B x {count}: {:.1} MB/s", mb(rate));
            return;
        }
        let codec = codec_cpu_per_byte(&payload, size * count);
        println!(
            "{size} B x {count}: {:.1} MB/s; CPU per message {:.2} us, codec {:.2} us ({:.0}%)",
            mb(rate),
            cpu * size as f64 * 1e6,
            codec * size as f64 * 1e6,
            100.0 * codec / cpu
        );
        return;
    }
    let opts = Opts {
        full: args.iter().any(|a| a == "--bench"),
        js: args.iter().any(|a| a == "--js"),
    };
    let budget = if opts.full {
        Duration::from_millis(700)
    } else {
        Duration::from_millis(5)
    };
    let mut rng = StdRng::seed_from_u64(42);

    let p = primitives(budget, &mut rng);
    // What timing one message costs a handler (the eth handlers' per-type histograms):
    // two clock reads and one observation.
    let histogram = rlpx::histogram::Histogram::new(rlpx::histogram::HANDLING_BUCKETS);
    let timed = rate(budget, || {
        for _ in 0..1000 {
            let start = Instant::now();
            histogram.observe(black_box(start).elapsed());
        }
        1000
    });
    let mut snappy = Snappy::default();
    let sample_r = random(1 << 20, &mut rng);
    let sample_c = compressible(1 << 20, &mut rng);
    let comp_r = snappy.compress(&sample_r).unwrap();
    let comp_c = snappy.compress(&sample_c).unwrap();
    let mut compress_rate = |data: &[u8]| {
        rate(budget, || {
            black_box(snappy.compress(data).unwrap());
            data.len() as u64
        })
    };
    let (snap_c_r, snap_c_c) = (compress_rate(&sample_r), compress_rate(&sample_c));
    let snap_d_r = rate(budget, || snappy.decompress(&comp_r).unwrap().len() as u64);
    let snap_d_c = rate(budget, || snappy.decompress(&comp_c).unwrap().len() as u64);
    print(
        "Primitives (one core)",
        &[
            Row {
                what: "AES-256-CTR".into(),
                value: mb(p.aes),
                unit: "MB/s",
                bound: None,
            },
            Row {
                what: "Keccak-256 (keccak-asm)".into(),
                value: mb(p.keccak),
                unit: "MB/s",
                bound: None,
            },
            Row {
                what: "snappy compress, random".into(),
                value: mb(snap_c_r),
                unit: "MB/s",
                bound: None,
            },
            Row {
                what: "snappy compress, compressible".into(),
                value: mb(snap_c_c),
                unit: "MB/s",
                bound: None,
            },
            Row {
                what: "snappy decompress, random".into(),
                value: mb(snap_d_r),
                unit: "MB/s",
                bound: None,
            },
            Row {
                what: "snappy decompress, compressible".into(),
                value: mb(snap_d_c),
                unit: "MB/s",
                bound: None,
            },
            Row {
                what: "ECDH (secp256k1)".into(),
                value: p.ecdh,
                unit: "op/s",
                bound: None,
            },
            Row {
                what: "ECDSA sign (recoverable)".into(),
                value: p.sign,
                unit: "op/s",
                bound: None,
            },
            Row {
                what: "ECDSA recover".into(),
                value: p.recover,
                unit: "op/s",
                bound: None,
            },
            Row {
                what: "timing a message (2 clock reads + histogram observe)".into(),
                value: timed,
                unit: "op/s",
                bound: None,
            },
            Row {
                what: "public key from secret".into(),
                value: p.pubgen,
                unit: "op/s",
                bound: None,
            },
        ],
    );

    // Handshakes. EC work per full handshake (both sides): 8 ECDH (static x2, ECIES
    // encrypt x2, ECIES decrypt x2, ephemeral x2), 1 sign, 1 recover, 4 public keys from
    // secrets (two ECIES `R`, the initiator's own id, the recipient's ephemeral).
    let ec_secs = 8.0 / p.ecdh + 1.0 / p.sign + 1.0 / p.recover + 4.0 / p.pubgen;
    let (a, b) = (SecretKey::new(&mut rng), SecretKey::new(&mut rng));
    let b_pub = PublicKey::from_secret_key_global(&b);
    let hellos = (hello_for(&a), hello_for(&b));
    let hs = rate(budget * 2, || {
        black_box(handshake_once(&mut rng, &a, &b, &b_pub, &hellos));
        1
    });
    let hs_async = async_handshakes(if opts.full { 300 } else { 3 });
    print(
        "Handshakes (ECIES auth/ack + Hello exchange, both sides on one core)",
        &[
            Row {
                what: "in memory, sans-IO".into(),
                value: hs,
                unit: "hs/s",
                bound: Some(1.0 / ec_secs),
            },
            Row {
                what: "async over tokio duplex (conn::dial + listen_one, 2 threads)".into(),
                value: hs_async,
                unit: "hs/s",
                bound: Some(1.0 / ec_secs),
            },
        ],
    );

    // Session throughput, one direction, split into the sender's and receiver's work.
    let mut rows = Vec::new();
    let mut cpu_rows = Vec::new();
    for (label, size) in [
        ("1 KiB", 1024usize),
        ("64 KiB", 64 * 1024),
        ("1 MiB", 1 << 20),
    ] {
        for (kind, gen_c) in [("random", false), ("compressible", true)] {
            let payload = if gen_c {
                compressible(size, &mut rng)
            } else {
                random(size, &mut rng)
            };
            let ratio = snappy.compress(&payload).unwrap().len() as f64 / size as f64;
            // Re-measure the byte-rate primitives right before each case, on this payload:
            // the machine is shared, and a bound taken at a quieter or busier moment would
            // skew the ratio.
            let local = primitives_quick(budget / 4, &payload);
            let (snap_c, snap_d) = (local.snap_c, local.snap_d);
            let p = Primitives {
                aes: local.aes,
                keccak: local.keccak,
                ..p
            };
            // Per frame the spec also mandates fixed work: AES over the 16-byte header and
            // two MAC seeds, Keccak over the header and seeds (48 bytes), and three digest
            // finalisations (one 136-byte Keccak block each; a fourth is cached).
            let fixed = (48.0 / p.aes + (48.0 + 3.0 * 136.0) / p.keccak) / size as f64;
            let wire_cost = ratio * (1.0 / p.aes + 1.0 / p.keccak) + fixed;
            let send_bound = 1.0 / (1.0 / snap_c + wire_cost);
            let recv_bound = 1.0 / (1.0 / snap_d + wire_cost);
            let (ca, cb) = handshake_once(&mut rng, &a, &b, &b_pub, &hellos);
            let (send, recv) = session_rates(budget, ca, cb, &payload);
            rows.push(Row {
                what: format!("send {label} {kind} (snappy {ratio:.2})"),
                value: mb(send),
                unit: "MB/s",
                bound: Some(mb(send_bound)),
            });
            rows.push(Row {
                what: format!("receive {label} {kind}"),
                value: mb(recv),
                unit: "MB/s",
                bound: Some(mb(recv_bound)),
            });
            // Compressible payloads cost a tenth of the codec work per byte: 8x the bytes
            // keeps their runs as long as the random ones' (64 MiB of compressible 1 MiB
            // messages took 25 ms, too short a window on a shared machine).
            let total = match (opts.full, gen_c) {
                (false, _) => 1 << 20,
                (true, false) => 64 << 20,
                (true, true) => 512 << 20,
            };
            let codec_cpu = codec_cpu_per_byte(&payload, total.min(128 << 20));
            let (e2e, e2e_cpu) = async_throughput(&payload, total, false);
            let (_, task_cpu) = async_throughput(&payload, total, true);
            rows.push(Row {
                what: format!("end to end {label} {kind} (Peer API over duplex)"),
                value: mb(e2e),
                unit: "MB/s",
                bound: Some(mb(send_bound.min(recv_bound))),
            });
            let (tcp, tcp_cpu) = tcp_throughput(&payload, total);
            let cpu = [e2e_cpu, task_cpu, tcp_cpu];
            cpu_rows.push((format!("{label} {kind}"), codec_cpu, cpu));
            rows.push(Row {
                what: format!("end to end {label} {kind} (Peer API, TCP between processes)"),
                value: mb(tcp),
                unit: "MB/s",
                bound: Some(mb(send_bound.min(recv_bound))),
            });
        }
    }
    print("Session payload throughput, one direction", &rows);
    println!("\n### End to end, CPU: the codec's work over the CPU the session used\n");
    println!(
        "Both sides' codec work (one core each, thread CPU clock) over the CPU time of every \
         thread of both sides (process CPU clocks) during the run, per payload byte: robust to a busy machine, \
         where the wall-clock rows above are not.\n"
    );
    println!(
        "| payload | codec CPU | duplex, receiver on `block_on` | ratio | duplex, receiver a task | ratio | TCP, two processes | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (what, codec, cpu) in &cpu_rows {
        let mut line = format!("| {what} | {:.2} ns/B |", codec * 1e9);
        for c in cpu {
            line += &format!(" {:.2} ns/B | {:.0}% |", c * 1e9, 100.0 * codec / c);
        }
        println!("{line}");
    }

    if opts.js {
        js_comparison(hs, &rows);
    }
}

/// Sender work (compress + encrypt + MAC) and receiver work (MAC + decrypt + decompress)
/// for one message size, in payload bytes per second.
fn session_rates(
    budget: Duration,
    mut ca: FrameCodec,
    cb: FrameCodec,
    payload: &[u8],
) -> (f64, f64) {
    let mut snappy = Snappy::default();
    let mut wire = BytesMut::new();
    // Fill a batch of frames for the receiver benchmark while timing the sender.
    let batch = (8 << 20) / payload.len().max(1) + 1;
    let send = rate(budget, || {
        wire.clear();
        for _ in 0..batch.min(64) {
            let c = snappy.compress(payload).unwrap();
            ca.encoder.encode_frame(0x10, &c, &mut wire).unwrap();
        }
        (batch.min(64) * payload.len()) as u64
    });
    // Receiver: decode the same stream; each pass needs frames from a fresh encoder state,
    // so pre-encode a long stream once and replay it through fresh decoders.
    let mut total = 0usize;
    let mut elapsed = Duration::ZERO;
    while elapsed < budget {
        let (mut ea, mut eb) = fresh_pair();
        let mut wire = BytesMut::new();
        for _ in 0..batch.min(64) {
            let c = snappy.compress(payload).unwrap();
            ea.encoder.encode_frame(0x10, &c, &mut wire).unwrap();
        }
        let start = Instant::now();
        while let Some(m) = eb.decoder.decode_frame(&mut wire).unwrap() {
            total += snappy.decompress(&m.data).unwrap().len();
        }
        elapsed += start.elapsed();
    }
    drop(cb);
    (send, total as f64 / elapsed.as_secs_f64())
}

fn fresh_pair() -> (FrameCodec, FrameCodec) {
    let mut rng = StdRng::seed_from_u64(1);
    let (a, b) = (SecretKey::new(&mut rng), SecretKey::new(&mut rng));
    let b_pub = PublicKey::from_secret_key_global(&b);
    let hellos = (hello_for(&a), hello_for(&b));
    handshake_once(&mut rng, &a, &b, &b_pub, &hellos)
}

/// Runs the ethereumjs benchmark and prints our figures as multiples of theirs.
fn js_comparison(hs: f64, rows: &[Row]) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop");
    let out = std::process::Command::new("node")
        .arg("bench.mjs")
        .current_dir(dir)
        .output();
    let Ok(out) = out else {
        println!("\n(node not available: skipping the @ethereumjs/devp2p comparison)");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().rev().find(|l| l.contains("\"bench\"")) else {
        println!("\n(ethereumjs bench printed nothing usable; run `npm ci` in tests/interop)");
        return;
    };
    let v: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => return,
    };
    println!(
        "\n### Against @ethereumjs/devp2p {} on this machine\n",
        v["devp2p_version"]
    );
    println!("| measurement | ours | ethereumjs | ours / theirs |");
    println!("|---|---:|---:|---:|");
    let theirs_hs = v["ecies_handshake_in_memory"]["handshakes_per_sec"]
        .as_f64()
        .unwrap_or(f64::NAN);
    println!(
        "| handshakes/s in memory | {hs:.0} | {theirs_hs:.1} | {:.0}x |",
        hs / theirs_hs
    );
    if let Some(results) = v["throughput_one_direction"]["results"].as_array() {
        for r in results {
            let (size, kind) = (
                r["size"].as_str().unwrap_or(""),
                r["payload"].as_str().unwrap_or(""),
            );
            let theirs = r["mb_per_s"].as_f64().unwrap_or(f64::NAN);
            let label = size.replace("KiB", " KiB").replace("MiB", " MiB");
            let ours = rows
                .iter()
                .find(|row| row.what.starts_with(&format!("end to end {label} {kind}")))
                .map(|row| row.value)
                .unwrap_or(f64::NAN);
            println!(
                "| {size} {kind}, one direction end to end (MB/s) | {ours:.1} | {theirs:.1} | {:.0}x |",
                ours / theirs
            );
        }
    }
}
