//! A `devp2p node` process syncing from an in-process serving node is killed with SIGKILL
//! mid-way; restarted on the same data directory it resumes from its stored head and
//! completes the chain.

use alloy_primitives::B256;
use devp2p::chain::eth::EthChain;
use devp2p::chain::{Store, presets};
use devp2p::protocols::eth::messages::Raw;
use devp2p::protocols::eth::{self, Chain, Head, forkid::Filter};
use devp2p::server;
use secp256k1::{PublicKey, SecretKey};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

const HEAD: &str = "0x44e3809c9a3cda717f00aea3a9da336d149612c8d5657fbc0028176ef8d94d2a";

/// Serves bodies slowly while `slow` is set, so the sync can be killed half-way.
struct Throttled {
    inner: EthChain,
    slow: Arc<AtomicBool>,
}

impl Chain for Throttled {
    fn network_id(&self) -> u64 {
        self.inner.network_id()
    }
    fn genesis_hash(&self) -> B256 {
        self.inner.genesis_hash()
    }
    fn fork_filter(&self) -> &Filter {
        self.inner.fork_filter()
    }
    fn head(&self) -> Head {
        self.inner.head()
    }
    fn earliest(&self) -> u64 {
        self.inner.earliest()
    }
    fn header_by_number(&self, number: u64) -> Option<Raw> {
        self.inner.header_by_number(number)
    }
    fn canonical_number(&self, hash: &B256) -> Option<u64> {
        self.inner.canonical_number(hash)
    }
    fn body_by_hash(&self, hash: &B256) -> Option<Raw> {
        if self.slow.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(4));
        }
        self.inner.body_by_hash(hash)
    }
}

/// Starts `devp2p node` on `datadir` with `peers` as its static nodes; its JSON log lines
/// come through the receiver.
fn spawn_node(datadir: &Path, peers: &Path) -> (Child, mpsc::UnboundedReceiver<Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devp2p"))
        .args(["--log-level", "sync=info,warn", "--log-json", "node"])
        .args(["--port", "0", "--addr", "127.0.0.1", "--no-discovery"])
        .arg("--static-nodes")
        .arg(peers)
        .arg("--datadir")
        .arg(datadir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn devp2p");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    (child, rx)
}

/// The next `Imported new chain segment` line: (last block number, blocks).
async fn next_import(rx: &mut mpsc::UnboundedReceiver<Value>) -> (u64, u64) {
    loop {
        let v = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("an import within 20 s")
            .expect("node still logging");
        let f = &v["fields"];
        if f["message"] == "Imported new chain segment" {
            return (
                f["number"].as_u64().expect("number"),
                f["blocks"].as_u64().expect("blocks"),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_killed_midway_resumes_from_the_stored_head() {
    let dir = std::env::temp_dir().join(format!("devp2p-sync-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The serving node, in process.
    let store = Arc::new(Store::open(&dir.join("a"), presets::ethtest().unwrap()).unwrap());
    let rlp = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/ethtest/chain.rlp");
    devp2p::cmd::import::import_file(&store, &rlp).unwrap();
    let slow = Arc::new(AtomicBool::new(true));
    let chain = Arc::new(Throttled {
        inner: EthChain::new(store.clone()),
        slow: slow.clone(),
    });
    let (proto, _eth, _events) = eth::Eth::new(chain, eth::Config::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let key = SecretKey::new(&mut rand::rng());
    let a = server::start(
        server::Config::new(key),
        listener,
        None,
        vec![Arc::new(proto)],
    )
    .unwrap();
    let id = PublicKey::from_secret_key_global(&key).serialize_uncompressed();
    let peers = dir.join("static-nodes.txt");
    std::fs::write(
        &peers,
        format!("enode://{}@{}\n", hex::encode(&id[1..]), a.listen_addr()),
    )
    .unwrap();

    // First run: killed after its first import, well before the head.
    let datadir = dir.join("b");
    let (mut child, mut logs) = spawn_node(&datadir, &peers);
    let (killed_at, _) = next_import(&mut logs).await;
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    // What the killed process left on disk (it may have committed more after the line).
    let stored = {
        let b = Store::open(&datadir, presets::ethtest().unwrap()).unwrap();
        let head = b.head().unwrap();
        let hash = b.canonical_hash(head.number).unwrap();
        assert_eq!(hash, Some(head.hash_slow()), "stored head is canonical");
        head.number
    };
    assert!(stored >= killed_at, "imported {killed_at}, stored {stored}");
    assert!(stored < 600, "sync finished before the kill");

    // Second run: resumes right above the stored head and reaches 600.
    slow.store(false, Ordering::Relaxed);
    let (mut child, mut logs) = spawn_node(&datadir, &peers);
    let (number, blocks) = next_import(&mut logs).await;
    let first = number + 1 - blocks;
    eprintln!(
        "killed after block {killed_at} ({stored} stored); second run imported {first}..={number} first"
    );
    assert_eq!(
        first,
        stored + 1,
        "second run's first import does not start right above the stored head"
    );
    let mut last = number;
    while last < 600 {
        last = next_import(&mut logs).await.0;
    }
    child.kill().unwrap();
    let _ = child.wait();

    let b = Store::open(&datadir, presets::ethtest().unwrap()).unwrap();
    let head = b.head().unwrap();
    assert_eq!(head.number, 600);
    assert_eq!(head.hash_slow().to_string(), HEAD);
    drop(b);
    a.shutdown().await;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
