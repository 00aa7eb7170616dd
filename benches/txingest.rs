//! Transaction ingest benchmark (issue #18, target 4): how many transactions per second a
//! node takes in from many peers the way mainnet delivers them. 50 peers (a child process
//! of this bench, so the node's CPU and RSS are its own) each announce distinct valid
//! transactions (eth/68 `NewPooledTransactionHashes`), answer the node's
//! `GetPooledTransactions`, and read (and drop) what the node re-announces and relays to
//! them. The node is `protocols::eth` with its default fetcher, verifier and per-peer
//! budgets; only the pool is sized to hold every transaction.
//!
//! The bound is signature recovery, measured in the same run: the node must recover each
//! transaction's sender once, so it cannot pool faster than its cores recover. The table
//! gives transactions/s into the pool against the bound on the node's 2 worker threads
//! (wall clock: falls when other processes share the cores), transactions per node
//! CPU-second against recoveries per CPU-second of one thread (both on CPU clocks: holds on
//! a shared machine; the peers run in another process), and the node's RSS and CPU time.
//!
//! Transactions are made without private keys: `r` is the secp256k1 generator's x and `s`
//! random, which recovers to a distinct random sender each (see `protocols/tests/eth_dos.rs`),
//! and costs the node exactly what a real signature does.
//!
//! `cargo bench --bench txingest` (50 peers x 2,000 transactions; `-- --peers N --txs M`).
//! Without `--bench` (as the test command runs it): 4 peers x 50, asserting all are pooled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_primitives::{Address, B256, Signature, TxKind, U256};
use alloy_rlp::Decodable;
use protocols::Subprotocol;
use protocols::eth::forkid::Filter;
use protocols::eth::messages::PooledTransaction;
use protocols::eth::messages::{Message, NewPooledTransactionHashes, RequestPair, code};
use protocols::eth::{self, Eth, MemoryChain};
use secp256k1::{PublicKey, SecretKey};

#[allow(dead_code)] // the server benches' idle protocol is not used here
mod common;

use common::{process_cpu, rss_kib, thread_cpu};

/// go-ethereum's hive `ethtest` chain id / network id (`testdata/ethtest`).
const NETWORK_ID: u64 = 3_503_995_874_084_926;
/// The x coordinate of secp256k1's generator: a valid `r` for any `s`.
const GX: [u8; 32] = [
    0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87, 0x0b, 0x07,
    0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16, 0xf8, 0x17, 0x98,
];
/// Hashes per announcement.
const CHUNK: usize = 256;
/// Hashes a peer keeps announced and not yet requested: 50 peers x 512 stay below the
/// fetcher's 32,768 tracked announcements.
const WINDOW: usize = 512;
/// Node runtime threads: the machine's two cores.
const NODE_THREADS: usize = 2;

fn chain() -> MemoryChain {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtest/chain.rlp");
    let data = std::fs::read(path).expect("testdata/ethtest/chain.rlp");
    let first = alloy_consensus::Block::<TxEnvelope>::decode(&mut data.as_slice()).expect("block");
    let genesis = first.header.parent_hash;
    let filter = Filter::new(genesis, 0, [], [0, 60, 120]);
    MemoryChain::from_rlp(NETWORK_ID, genesis, filter, U256::from(0x20000), &data)
        .expect("chain.rlp")
}

/// `n` transfers, each from a distinct random sender (`tag` keeps peers' sets apart).
fn transactions(n: usize, tag: u8) -> Vec<PooledTransaction> {
    (0..n)
        .map(|i| {
            let tx = TxEip1559 {
                chain_id: NETWORK_ID,
                nonce: i as u64,
                gas_limit: 21_000,
                max_fee_per_gas: 2,
                max_priority_fee_per_gas: 1,
                to: TxKind::Call(Address::repeat_byte(tag)),
                value: U256::ZERO,
                ..Default::default()
            };
            let mut s: [u8; 32] = rand::random();
            s[0] &= 0x3f; // below n/2 (EIP-2)
            let sig = Signature::new(U256::from_be_bytes(GX), U256::from_be_bytes(s), false);
            TxEnvelope::Eip1559(tx.into_signed(sig))
                .try_into_pooled()
                .expect("no blobs")
        })
        .collect()
}

/// The node's bound, from `threads` threads recovering at once for `window`: recoveries per
/// wall-clock second on all of them (what the node's worker threads could do on an otherwise
/// idle machine), and recoveries per CPU-second of one thread (timed on
/// `CLOCK_THREAD_CPUTIME_ID`, so it holds when other processes share the cores).
fn recovery_bound(threads: usize, window: Duration) -> (f64, f64) {
    let txs = Arc::new(transactions(2000, 0xee));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let txs = txs.clone();
            std::thread::spawn(move || {
                let (started, cpu0) = (Instant::now(), thread_cpu());
                let mut n = 0u64;
                while started.elapsed() < window {
                    for tx in txs.iter() {
                        let PooledTransaction::Eip1559(s) = tx else {
                            unreachable!()
                        };
                        let sender = eth::pool::recover(s.signature(), s.signature_hash());
                        assert!(sender.is_some());
                        n += 1;
                    }
                }
                let cpu = (thread_cpu() - cpu0).as_secs_f64();
                (
                    n as f64 / started.elapsed().as_secs_f64(),
                    n as f64 / cpu.max(1e-9),
                )
            })
        })
        .collect();
    let rates: Vec<(f64, f64)> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let wall = rates.iter().map(|r| r.0).sum();
    let per_cpu = rates.iter().map(|r| r.1).sum::<f64>() / rates.len().max(1) as f64;
    (wall, per_cpu)
}

/// An eth/68 announcement of `txs`.
fn announcement(txs: &[PooledTransaction]) -> bytes::Bytes {
    use alloy_eips::eip2718::Encodable2718;
    Message::NewPooledTransactionHashes(NewPooledTransactionHashes {
        types: txs.iter().map(|_| 2u8).collect::<Vec<_>>().into(),
        sizes: txs.iter().map(|t| t.encode_2718_len() as u32).collect(),
        hashes: txs.iter().map(|t| *t.hash()).collect(),
    })
    .encode()
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rlpx_config(eth: &Eth) -> rlpx::Config {
    rlpx::Config {
        protocols: eth.protocols(),
        ..rlpx::Config::default()
    }
}

/// The peers' side (run in the child process): `peers` connections to the node at
/// `addr`, each announcing `txs` transactions and serving them.
async fn drive(addr: SocketAddr, node: PublicKey, peers: usize, txs: usize) {
    let chain = Arc::new(chain());
    let cfg = rlpx::Config {
        protocols: vec![rlpx::Protocol::new("eth", eth::ETH68, 17)],
        ..rlpx::Config::default()
    };
    let mut tasks = Vec::new();
    for p in 0..peers {
        let (chain, cfg) = (chain.clone(), cfg.clone());
        let list = transactions(txs, p as u8);
        tasks.push(tokio::spawn(async move {
            let key = SecretKey::new(&mut rand::rng());
            let hs = rlpx::conn::connect_tcp(addr, &key, node, &cfg)
                .await
                .expect("dial");
            let mut peer = hs.hello(&key, &cfg).await.expect("hello").start(&cfg);
            let mut raw = peer.take_protocol("eth").expect("eth");
            let status = Message::Status(eth::status::local(&*chain, eth::ETH68));
            raw.send(status.code(), status.encode())
                .await
                .expect("status");
            let by_hash: std::collections::HashMap<B256, PooledTransaction> =
                list.iter().map(|t| (*t.hash(), t.clone())).collect();
            // Announce in chunks, keeping at most `WINDOW` announced and not yet asked
            // for: the node tracks a bounded number of announcements (the fetcher's
            // `max_tracked`) and drops the rest, as it should; peers that announce
            // everything at once would measure that bound, not ingest.
            let mut announced = 0;
            let mut asked = 0;
            loop {
                while announced < list.len() && announced - asked < WINDOW {
                    let chunk = &list[announced..(announced + CHUNK).min(list.len())];
                    raw.send(code::NEW_POOLED_TRANSACTION_HASHES, announcement(chunk))
                        .await
                        .expect("announce");
                    announced += chunk.len();
                }
                // Serve requests; drop everything else (the node's Status, relays).
                let Some((code, data)) = raw.recv().await else {
                    break;
                };
                let Ok(Message::GetPooledTransactions(req)) =
                    Message::decode(eth::ETH68, code, &data)
                else {
                    continue;
                };
                let found: Vec<PooledTransaction> = req
                    .message
                    .iter()
                    .filter_map(|h| by_hash.get(h).cloned())
                    .collect();
                asked += found.len();
                let answer = Message::PooledTransactions(RequestPair {
                    request_id: req.request_id,
                    message: found,
                });
                if raw.send(answer.code(), answer.encode()).await.is_err() {
                    break;
                }
            }
            drop(peer);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--drive") {
        let addr: SocketAddr = args[i + 1].parse().expect("addr");
        let node = PublicKey::from_slice(&hex::decode(&args[i + 2]).expect("hex")).expect("key");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(drive(
            addr,
            node,
            arg(&args, "--peers", 50),
            arg(&args, "--txs", 2000),
        ));
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    let (peers, txs) = if bench {
        (arg(&args, "--peers", 50), arg(&args, "--txs", 2000))
    } else {
        (4, 50)
    };
    // Measured before and after the run and averaged: on a shared machine what else runs
    // changes from one second to the next.
    // 1.5 s each in the bench; the test command's smoke pass only checks it runs.
    let window = Duration::from_millis(if bench { 1500 } else { 200 });
    let before = recovery_bound(NODE_THREADS, window);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(NODE_THREADS)
        .enable_all()
        .build()
        .expect("runtime");
    let (rate, elapsed, cpu, rss) = rt.block_on(node(peers, txs));
    let after = recovery_bound(NODE_THREADS, window);
    let (bound, bound_cpu) = ((before.0 + after.0) / 2.0, (before.1 + after.1) / 2.0);
    let per_cpu = rate * elapsed.as_secs_f64() / cpu.max(1e-9);
    println!(
        "| peers | txs | time | tx/s into pool | recovery bound ({NODE_THREADS} threads, wall) | ratio | tx per node CPU-s | recoveries per thread CPU-s | ratio | node CPU | node RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {peers} | {} | {:.2} s | {rate:.0} | {bound:.0} /s | {:.0}% | {per_cpu:.0} | {bound_cpu:.0} | {:.0}% | {cpu:.2} s ({:.2} cores) | {} MiB |",
        peers * txs,
        elapsed.as_secs_f64(),
        100.0 * rate / bound,
        100.0 * per_cpu / bound_cpu,
        cpu / elapsed.as_secs_f64().max(1e-9),
        rss / 1024
    );
}

/// Runs the node, starts the peers' process, and waits until every transaction is
/// pooled: (tx/s, time, CPU seconds used meanwhile, RSS KiB at the end).
async fn node(peers: usize, txs: usize) -> (f64, Duration, f64, u64) {
    let total = peers * txs;
    let mut config = eth::Config::default();
    config.pool.chain_id = Some(NETWORK_ID);
    config.pool.max_count = total + 1024;
    config.pool.max_bytes = 1 << 30;
    let (eth, handle, _events) = Eth::new(Arc::new(chain()), config);
    let eth = Arc::new(eth);
    let key = SecretKey::new(&mut rand::rng());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = rlpx_config(&eth);
    let (e, k) = (eth.clone(), key);
    tokio::spawn(async move {
        while let Ok((stream, from)) = listener.accept().await {
            let (eth, cfg) = (e.clone(), cfg.clone());
            tokio::spawn(async move {
                let Ok(hs) = rlpx::conn::accept(stream, Some(from), &k, &cfg).await else {
                    return;
                };
                let Ok(est) = hs.hello(&k, &cfg).await else {
                    return;
                };
                let mut peer = est.start(&cfg);
                if let Some(p) = peer.take_protocol("eth") {
                    eth.handle(p).await;
                }
                drop(peer);
            });
        }
    });
    let id = PublicKey::from_secret_key_global(&key);
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--drive", &addr.to_string(), &hex::encode(id.serialize())])
        .args(["--peers", &peers.to_string(), "--txs", &txs.to_string()])
        .kill_on_drop(true)
        .spawn()
        .expect("peers' process");
    let limit = Duration::from_secs(120);
    // Timed from the first pooled transaction (the peers' process start, handshakes and
    // the first fetch round-trip excluded), counting what was pooled after it.
    let (mut started, mut cpu0, mut first) = (None, Duration::ZERO, 0);
    let deadline = Instant::now() + limit;
    loop {
        let n = handle.pool().stats().count;
        if started.is_none() && n > 0 {
            started = Some(Instant::now());
            cpu0 = process_cpu();
            first = n;
        }
        if n >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {total} pooled after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    let cpu = (process_cpu() - cpu0).as_secs_f64();
    let rss = rss_kib();
    let _ = child.start_kill();
    let _ = child.wait().await;
    let rate = (total - first) as f64 / elapsed.as_secs_f64().max(1e-9);
    (rate, elapsed, cpu, rss)
}
