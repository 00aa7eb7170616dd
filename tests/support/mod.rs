//! Shared helpers for the integration tests: spawning the JS interop peers of
//! `tests/interop/` (built on `@ethereumjs/devp2p`) and reading their JSON events.

#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// The interop harness directory.
pub(crate) fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Installs the pinned npm packages once per machine if the test command did not already.
pub(crate) fn ensure_npm() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = interop_dir();
        if dir.join("node_modules/@ethereumjs/devp2p").exists()
            && dir.join("node_modules/@chainsafe/discv5").exists()
        {
            return;
        }
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm must be installed to run the interop tests");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    });
}

/// A running JS peer.
pub(crate) struct JsPeer {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
    /// Every event seen so far, for assertions after the fact.
    pub seen: Vec<Value>,
}

impl JsPeer {
    /// Starts `node <script> <args>` in the harness directory.
    pub(crate) fn spawn(script: &str, args: &[String]) -> Self {
        ensure_npm();
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(interop_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed to run the interop tests");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Self {
            child,
            stdin,
            events,
            seen: Vec::new(),
        }
    }

    /// Names of the events seen so far, for failure messages (payloads can be huge).
    fn seen_names(&self) -> Vec<String> {
        self.seen.iter().map(|v| v["event"].to_string()).collect()
    }

    /// The first event, already seen or arriving within `secs`, for which `pred` holds.
    pub(crate) async fn wait(
        &mut self,
        secs: u64,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let ev = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => ev,
                Ok(None) => panic!(
                    "JS peer exited waiting for {what}; seen {:?}",
                    self.seen_names()
                ),
                Err(_) => panic!("timed out waiting for {what}; seen {:?}", self.seen_names()),
            };
            self.seen.push(ev.clone());
            if pred(&ev) {
                return ev;
            }
        }
    }

    /// Waits for an event named `name`.
    pub(crate) async fn event(&mut self, name: &str) -> Value {
        self.wait(20, name, |v| v["event"] == name).await
    }

    /// Sends one stdin command.
    pub(crate) async fn cmd(&mut self, v: Value) {
        let mut line = v.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("JS peer stdin");
        self.stdin.flush().await.expect("JS peer stdin");
    }

    /// Asks the process to exit and checks it did, with status 0 (a JS peer that hit its
    /// own timeout exits 2, one that failed exits 1: the test then proved nothing).
    pub(crate) async fn stop(mut self) {
        // It may have exited already (`--exit-on-done`): then stdin is closed.
        let _ = self.stdin.write_all(b"{\"cmd\":\"exit\"}\n").await;
        let _ = self.stdin.flush().await;
        let status = match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => status.expect("wait for the JS peer"),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!(
                    "JS peer did not exit within 10 s of the exit command; seen {:?}",
                    self.seen_names()
                );
            }
        };
        assert!(
            status.success(),
            "JS peer exited with {status}; seen {:?}",
            self.seen_names()
        );
    }
}

/// Hex of a secret key, for `--key`.
pub(crate) fn key_hex(key: &secp256k1::SecretKey) -> String {
    hex::encode(key.secret_bytes())
}

/// Our node id as 128 hex chars.
pub(crate) fn id_hex(key: &secp256k1::PublicKey) -> String {
    hex::encode(rlpx::handshake::id_bytes(key))
}

/// A node on 127.0.0.1 running `eth` over some chain, without discovery: the shared
/// harness of the eth, sync, propagation and RPC tests.
pub(crate) struct EthNode {
    /// The p2p server.
    pub server: devp2p::server::Handle,
    /// The eth protocol's handle.
    pub eth: protocols::eth::Handle,
    /// The eth events, until a test takes them (e.g. for a propagator).
    pub events: tokio::sync::mpsc::Receiver<protocols::eth::Event>,
    /// The node key.
    pub key: secp256k1::SecretKey,
}

impl EthNode {
    /// Starts a node serving `chain` with `config`.
    pub(crate) async fn start(
        chain: std::sync::Arc<dyn protocols::eth::Chain>,
        config: protocols::eth::Config,
    ) -> Self {
        let (proto, eth, events) = protocols::eth::Eth::new(chain, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let key = secp256k1::SecretKey::new(&mut rand::rng());
        let server = devp2p::server::start(
            devp2p::server::Config::new(key),
            listener,
            None,
            vec![std::sync::Arc::new(proto)],
        )
        .unwrap();
        Self {
            server,
            eth,
            events,
            key,
        }
    }

    /// The node's public key.
    pub(crate) fn id(&self) -> secp256k1::PublicKey {
        secp256k1::PublicKey::from_secret_key_global(&self.key)
    }

    /// The node record other nodes dial.
    pub(crate) fn node(&self) -> discovery::Node {
        discovery::Node {
            id: discovery::NodeId::from_secret_key(&self.key),
            ip: [127, 0, 0, 1].into(),
            udp: 0,
            tcp: self.server.listen_addr().port(),
        }
    }
}

/// A fresh, empty directory for one test's data.
pub(crate) fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("devp2p-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The bundled ethtest chain file.
pub(crate) fn chain_rlp() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/ethtest/chain.rlp")
}

/// A block store for the ethtest chain in `dir`.
pub(crate) fn ethtest_store(dir: &std::path::Path) -> std::sync::Arc<devp2p::chain::Store> {
    let spec = devp2p::chain::presets::ethtest().unwrap();
    std::sync::Arc::new(devp2p::chain::Store::open(dir, spec).unwrap())
}

/// Blocks 1..=n of the bundled ethtest chain (all 600 with `u64::MAX`).
pub(crate) fn chain_blocks(n: u64) -> Vec<devp2p::chain::Block> {
    let file = std::fs::File::open(chain_rlp()).unwrap();
    let mut reader = devp2p::chain::reader::BlockReader::new(std::io::BufReader::new(file));
    let mut blocks = Vec::new();
    while let Some(b) = reader.next_block().unwrap() {
        if b.header.number > n {
            break;
        }
        blocks.push(b);
    }
    blocks
}

/// A node of ours over a block store in its own directory (holding `blocks` of the
/// ethtest chain) whose eth events feed a block propagator.
pub(crate) struct Propagating {
    /// The p2p node.
    pub net: EthNode,
    /// Its server (a clone of `net.server`).
    pub server: devp2p::server::Handle,
    /// Its eth handle (a clone of `net.eth`).
    pub eth: protocols::eth::Handle,
    /// Its block store.
    pub store: std::sync::Arc<devp2p::chain::Store>,
    /// The propagator fed its events.
    pub propagator: devp2p::propagate::Propagator,
    /// Where its blocks are imported (as sync would).
    pub importer: devp2p::chain::Importer,
    task: tokio::task::JoinHandle<()>,
    dir: PathBuf,
}

impl Propagating {
    /// Starts node `name` with `blocks` imported and eth `config` (its pool's chain id
    /// set to the ethtest chain's).
    pub(crate) async fn start(
        name: &str,
        blocks: &[devp2p::chain::Block],
        config: protocols::eth::Config,
    ) -> Self {
        // No block sources yet: a test names them ([`Propagating::allow`], [`allow_all`]).
        let gossip = devp2p::propagate::Gossip::From(Default::default());
        Self::start_with(name, blocks, config, gossip).await
    }

    /// [`Propagating::start`] under another block-gossip policy.
    pub(crate) async fn start_with(
        name: &str,
        blocks: &[devp2p::chain::Block],
        mut config: protocols::eth::Config,
        gossip: devp2p::propagate::Gossip,
    ) -> Self {
        let dir = tempdir(&format!("prop-{name}"));
        let store = ethtest_store(&dir);
        if !blocks.is_empty() {
            store.insert_blocks(blocks).unwrap();
        }
        config.pool.chain_id = Some(store.spec().config.chain_id);
        let chain = std::sync::Arc::new(devp2p::chain::eth::EthChain::new(store.clone()));
        let mut net = EthNode::start(chain, config).await;
        let (_, idle) = tokio::sync::mpsc::channel(1);
        let events = std::mem::replace(&mut net.events, idle);
        let importer = devp2p::chain::Importer::new(store.clone(), Some(net.eth.pool().clone()));
        let (propagator, task) =
            devp2p::propagate::Propagator::spawn(net.eth.clone(), importer.clone(), gossip, events);
        Self {
            importer,
            server: net.server.clone(),
            eth: net.eth.clone(),
            net,
            store,
            propagator,
            task,
            dir,
        }
    }

    /// The node record other nodes dial.
    pub(crate) fn node(&self) -> discovery::Node {
        self.net.node()
    }

    /// Makes `peer` one of this node's block sources.
    pub(crate) fn allow(&self, peer: secp256k1::PublicKey) {
        self.propagator.allow(peer);
    }

    /// Head number and hash.
    pub(crate) fn head(&self) -> (u64, alloy_primitives::B256) {
        let h = self.store.head().unwrap();
        (h.number, h.hash_slow())
    }

    /// Stops the node and removes its directory.
    pub(crate) async fn stop(self) {
        self.task.abort();
        self.server.shutdown().await;
        drop(self.propagator);
        drop(self.store);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes every node a block source of every other (a private network whose operator
/// names all its nodes, as `devnet` does).
pub(crate) fn allow_all(nodes: &[&Propagating]) {
    for a in nodes {
        for b in nodes {
            if a.net.id() != b.net.id() {
                a.allow(b.net.id());
            }
        }
    }
}

/// Sends SIGINT to `child` and waits up to `secs` for it to exit (killing it and
/// panicking if it does not); returns its exit status.
pub(crate) fn interrupt_and_wait(
    child: &mut std::process::Child,
    secs: u64,
) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not stop within {secs} s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends raw bytes to an HTTP server, reads until it closes (bounded), returns (status,
/// body).
pub(crate) async fn http_raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("server answered and closed in time");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}
