//! `devp2p devnet`: a local network on loopback for trying the node out — a bootnode and
//! `--nodes` nodes on 127.0.0.1, one of them replaying the bundled `ethtest` chain, and a
//! status table refreshed every second until Ctrl-C.
//!
//! # How it runs
//!
//! 1. Node 0's data directory is given the first `--preload` blocks (default 400) of
//!    `--chain-file` with the [`import`](super::import) library function, so it has a
//!    chain to serve from the start.
//! 2. A bootnode (`devp2p bootnode`) and the nodes (`devp2p node`) start as **child
//!    processes** of this binary, every socket on 127.0.0.1: RLPx and discovery on port 0,
//!    JSON-RPC on a port picked free just before the child starts (a node that loses that
//!    race fails to bind, and is started again on another port). Every node is given the
//!    bootnode and finds the others through discovery. Node 0 runs with
//!    `--replay FILE --interval DUR`: it imports the rest of the file one block per
//!    interval and propagates each like a newly mined block. The others start empty,
//!    catch up by sync, then follow propagation.
//! 3. Every [`POLL`] the table polls each node's JSON-RPC (`eth_getBlockByNumber latest`
//!    and `net_peerCount` in one batch, on a kept-alive connection) and notes when it
//!    first saw each node at each height. A node's *delay* is when it was first seen at
//!    its head block minus when node 0 was: so it is measured in whole polls (`<100ms`
//!    means both were first seen in the same poll), and `-` until the node's head is a
//!    block node 0 was seen replaying.
//! 4. On Ctrl-C (`shutdown`) every child gets SIGINT and up to [`STOP_WAIT`] to stop
//!    cleanly (then SIGKILL); the devnet directory is removed unless `--dir` or `--keep`
//!    was given.
//!
//! # Why child processes, not tasks in this process
//!
//! - **Logs.** Each node logs to its own file (`DIR/node<i>.log`, level `--node-log`), so
//!   the table is not drowned, and the user can read one node's story. In one process
//!   every node would share the global subscriber, whose filter belongs to the user.
//! - **What it shows is what a user runs**: the real `devp2p node` command line, its
//!   sockets, its RPC, its Ctrl-C — the quick start doubles as an end-to-end check.
//! - **Isolation.** One node failing or hanging does not take the table with it; its row
//!   says it exited and its log says why.
//!
//! The price is a free-port race for the RPC port (handled by a retry) and a small HTTP
//! client (`rpc.rs`); `node::run` hands back no handles, so an in-process table would have
//! needed the RPC (and its port) anyway.

pub(crate) mod proc;
pub(crate) mod rpc;

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::import;
use crate::chain::{Spec, Store};
use proc::{Proc, stop_all};
use rpc::Rpc;

/// How often each node is polled; the resolution of the delay column.
pub const POLL: Duration = Duration::from_millis(100);
/// How long a child has to stop after SIGINT before it is killed: a node flushes its
/// databases on the way out, which takes well under a second.
pub const STOP_WAIT: Duration = Duration::from_secs(10);
/// Most nodes: each is a process with a few threads and databases; 32 already loads a
/// laptop, and the table stops fitting a screen.
pub const MAX_NODES: usize = 32;
/// Heights remembered per node for the delay column; far more than the blocks a slow
/// node can be behind while still being compared.
const SEEN_HEIGHTS: usize = 256;
/// The bundled chain (blocks 1..=600 of the `ethtest` preset), found from the source tree
/// this binary was built from, as `cargo run -- devnet` runs it.
const BUNDLED_CHAIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtest/chain.rlp");

/// Devnet errors: each says what failed and, for a child, where its log is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Node 0's preload failed.
    #[error("preloading node 0: {0}")]
    Import(#[from] import::Error),
    /// The chain spec could not be loaded, or node 0's store opened.
    #[error("preloading node 0: {0}")]
    Store(#[from] crate::chain::store::Error),
    /// The chain spec could not be loaded.
    #[error(transparent)]
    Chain(#[from] crate::chain::Error),
    /// A node key could not be made or stored.
    #[error("node key: {0}")]
    Key(#[from] super::key::Error),
    /// A child did not start: it exited or printed no enode URL in time.
    #[error("{what} did not start: {reason} (log: {})", log.display())]
    Start {
        /// Which child.
        what: String,
        /// What went wrong, with the last line of its log when there is one.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
}

/// Arguments of `devp2p devnet`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Number of nodes, besides the bootnode (1 to 32).
    #[arg(long, default_value_t = 4, value_parser = parse_nodes)]
    pub nodes: usize,
    /// Pause between the blocks node 0 replays, e.g. `2s` or `200ms`.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Blocks of the chain file node 0 has before it starts; it replays the rest.
    #[arg(long, value_name = "N", default_value_t = 400)]
    pub preload: u64,
    /// The RLP block file to preload and replay [default: the bundled testdata/ethtest/chain.rlp].
    #[arg(long, value_name = "FILE")]
    pub chain_file: Option<PathBuf>,
    /// The chain the file belongs to: a preset or a genesis.json path.
    #[arg(long, value_name = "NAME|FILE", default_value = crate::chain::presets::DEFAULT)]
    pub chain: String,
    /// Directory for the nodes' data and logs, kept afterwards [default: a temporary
    /// directory, removed on exit].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the temporary directory (data and logs) on exit.
    #[arg(long)]
    pub keep: bool,
    /// Log filter for the nodes' log files, e.g. `debug` or `info,sync=debug`.
    #[arg(long, value_name = "FILTER", default_value = "info")]
    pub node_log: String,
    /// The devp2p binary the nodes run [default: this executable].
    #[arg(long, value_name = "FILE")]
    pub bin: Option<PathBuf>,
}

fn parse_nodes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_NODES).contains(&n) => Ok(n),
        _ => Err(format!("expected a number from 1 to {MAX_NODES}")),
    }
}

pub(crate) fn parse_interval(s: &str) -> Result<Duration, String> {
    super::replay::parse_duration(s)
        .ok_or_else(|| format!("{s:.20}: expected a duration such as 2s or 500ms"))
}

/// Runs the devnet until `shutdown` completes, printing the status table to stdout.
pub async fn run(
    args: Args,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error>> {
    Ok(run_inner(args, shutdown).await?)
}

async fn run_inner(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    parse_nodes(&args.nodes.to_string()).map_err(|e| Error::Invalid(format!("--nodes: {e}")))?;
    let exe = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|source| Error::Io {
            path: "current executable".into(),
            source,
        })?,
    };
    let (chain_file, bytes, blocks) = read_chain(args.chain_file.as_ref())?;
    let total = blocks.len() as u64;
    let preload = args.preload.min(total);

    let (dir, remove_dir) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("devp2p-devnet-{}", std::process::id())),
            !args.keep,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;

    // Node 0's preload, before any child opens the store.
    if preload > 0 {
        let end = blocks[preload as usize - 1];
        let store = Store::open(&dir.join("node0"), Spec::load(&args.chain)?)?;
        import::import(&store, &bytes[..end])?;
    }

    // Every node's key, made now so that each node can be told the others' ids: on a
    // private chain only named peers' blocks move a node's head (docs/fork-choice.md).
    let mut ids = Vec::new();
    for i in 0..args.nodes {
        let node_dir = dir.join(format!("node{i}"));
        std::fs::create_dir_all(&node_dir).map_err(|source| Error::Io {
            path: node_dir.clone(),
            source,
        })?;
        let key = super::key::resolve(None, None, Some(&node_dir))?;
        ids.push(discovery::NodeId::from_secret_key(&key).to_string());
    }

    let mut net = Devnet {
        exe,
        dir: dir.clone(),
        args: args.clone(),
        ids,
        chain_file,
        bootnode: None,
        nodes: Vec::new(),
    };
    tokio::pin!(shutdown);
    let outcome = tokio::select! {
        r = net.start() => r.map(|()| true),
        _ = &mut shutdown => Ok(false),
    };
    let outcome = match outcome {
        Ok(true) => {
            let replay = if preload < total {
                format!(
                    "node 0 replays blocks {}..{total} of {} every {:?}",
                    preload + 1,
                    net.chain_file.display(),
                    args.interval,
                )
            } else {
                format!(
                    "node 0 has all {total} blocks of {}",
                    net.chain_file.display()
                )
            };
            let intro = format!(
                "devnet: bootnode + {} nodes on 127.0.0.1; {replay}; data and logs in {}{}",
                args.nodes,
                dir.display(),
                if remove_dir { " (removed on exit)" } else { "" },
            );
            net.watch(&intro, &mut shutdown).await;
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    net.stop().await;
    if remove_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

/// The block file (`path`, or the bundled chain): its path, bytes, and the end offset of
/// each block.
pub(crate) fn read_chain(path: Option<&PathBuf>) -> Result<(PathBuf, Vec<u8>, Vec<usize>), Error> {
    let chain_file = path
        .cloned()
        .unwrap_or_else(|| PathBuf::from(BUNDLED_CHAIN));
    let bytes = std::fs::read(&chain_file).map_err(|source| Error::Io {
        path: chain_file.clone(),
        source,
    })?;
    let blocks = block_offsets(&bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: not an RLP block file: {e}",
            chain_file.display()
        ))
    })?;
    Ok((chain_file, bytes, blocks))
}

/// The end offset of each RLP item in a block file, checking only the framing (the nodes
/// validate the blocks).
fn block_offsets(mut bytes: &[u8]) -> Result<Vec<usize>, alloy_rlp::Error> {
    let len = bytes.len();
    let mut ends = Vec::new();
    while !bytes.is_empty() {
        let header = alloy_rlp::Header::decode(&mut bytes)?;
        if !header.list || header.payload_length > bytes.len() {
            return Err(alloy_rlp::Error::InputTooShort);
        }
        bytes = &bytes[header.payload_length..];
        ends.push(len - bytes.len());
    }
    Ok(ends)
}

/// The children and what the table knows of them.
struct Devnet {
    exe: PathBuf,
    dir: PathBuf,
    args: Args,
    /// The nodes' ids (hex), in order.
    ids: Vec<String>,
    chain_file: PathBuf,
    bootnode: Option<Proc>,
    nodes: Vec<NodeView>,
}

impl Devnet {
    /// Starts the bootnode, then the nodes one by one (node 0 first, so the others have
    /// something to sync from as soon as they find it).
    async fn start(&mut self) -> Result<(), Error> {
        let log = self.args.node_log.clone();
        let (boot, enode, _) = Proc::start(
            &self.exe,
            "bootnode".into(),
            self.dir.join("bootnode.log"),
            [
                "--log-level",
                log.as_str(),
                "bootnode",
                "--addr",
                "127.0.0.1:0",
                "--netrestrict",
                "127.0.0.0/8",
            ]
            .iter()
            .map(Into::into)
            .chain(["--datadir".into(), self.dir.join("bootnode").into()])
            .collect(),
            false,
        )
        .await?;
        self.bootnode = Some(boot);
        println!("bootnode {enode}");
        let mut listing = format!("bootnode {enode}\n");
        for i in 0..self.args.nodes {
            // Every port is 0: the node binds and reports its RPC address itself.
            let mut argv: Vec<std::ffi::OsString> = [
                "--log-level",
                log.as_str(),
                "node",
                "--addr",
                "127.0.0.1",
                "--port",
                "0",
                "--netrestrict",
                "127.0.0.0/8",
                "--chain",
                self.args.chain.as_str(),
                "--bootnodes",
                enode.as_str(),
                "--rpc",
                "127.0.0.1:0",
            ]
            .iter()
            .map(Into::into)
            .collect();
            argv.extend(["--datadir".into(), self.dir.join(format!("node{i}")).into()]);
            // The other devnet nodes are this node's block sources: node 0 produces, the
            // rest relay.
            let others: Vec<&str> = (self.ids.iter().enumerate())
                .filter(|(j, _)| *j != i)
                .map(|(_, id)| id.as_str())
                .collect();
            if !others.is_empty() {
                argv.extend(["--block-sources".into(), others.join(",").into()]);
            }
            if i == 0 {
                argv.extend([
                    "--replay".into(),
                    self.chain_file.clone().into(),
                    "--interval".into(),
                    format!("{}ms", self.args.interval.as_millis()).into(),
                ]);
            }
            let log_file = self.dir.join(format!("node{i}.log"));
            let started = Proc::start(&self.exe, format!("node {i}"), log_file.clone(), argv, true);
            let (proc, enode, Some(rpc)) = started.await? else {
                return Err(Error::Start {
                    what: format!("node {i}"),
                    reason: "reported no JSON-RPC address".into(),
                    log: log_file,
                });
            };
            println!("node {i}   {enode} rpc=http://{rpc}");
            listing.push_str(&format!("node{i} {enode} rpc=http://{rpc}\n"));
            self.nodes.push(NodeView::new(proc, &enode, rpc));
        }
        let path = self.dir.join("nodes.txt");
        std::fs::write(&path, listing).map_err(|source| Error::Io { path, source })
    }

    /// Polls the nodes and redraws the table until `shutdown`.
    async fn watch(&mut self, intro: &str, shutdown: &mut (impl Future<Output = ()> + Unpin)) {
        let tty = std::io::stdout().is_terminal();
        let started = Instant::now();
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_draw = Instant::now();
        loop {
            tokio::select! {
                _ = &mut *shutdown => return,
                _ = poll.tick() => {}
            }
            let now = Instant::now();
            // All polls of one tick count as seen at the tick, so delays are whole polls
            // whatever order the answers come in.
            futures::future::join_all(self.nodes.iter_mut().map(|n| n.poll(now))).await;
            if now >= next_draw {
                next_draw = now + Duration::from_secs(1);
                let boot = self.bootnode.as_mut().and_then(Proc::exited);
                let table = render(intro, started.elapsed(), boot, &self.nodes);
                let mut out = std::io::stdout().lock();
                // Clear and home on a terminal; appended tables elsewhere (a pipe, a file).
                let _ = if tty {
                    write!(out, "\x1b[H\x1b[2J{table}")
                } else {
                    writeln!(out, "{table}")
                };
                let _ = out.flush();
            }
        }
    }

    /// Stops the nodes, then the bootnode: SIGINT, then SIGKILL after [`STOP_WAIT`].
    async fn stop(&mut self) {
        let mut procs: Vec<&mut Proc> = self.nodes.iter_mut().map(|n| &mut n.proc).collect();
        stop_all(&mut procs).await;
        if let Some(b) = &mut self.bootnode {
            stop_all(&mut [b]).await;
        }
    }
}

/// One node's row: its process, RPC connection and what was last seen of it.
struct NodeView {
    proc: Proc,
    id: String,
    tcp: u16,
    rpc: Rpc,
    peers: Option<u64>,
    head: Option<(u64, String)>,
    /// When this node was first seen at each recent height.
    seen: std::collections::BTreeMap<u64, Instant>,
    /// How the process exited, once it has.
    exit: Option<String>,
}

impl NodeView {
    fn new(proc: Proc, enode: &str, rpc: SocketAddr) -> Self {
        let (id, tcp) = enode_parts(enode);
        NodeView {
            proc,
            id,
            tcp,
            rpc: Rpc::new(rpc),
            peers: None,
            head: None,
            seen: Default::default(),
            exit: None,
        }
    }

    async fn poll(&mut self, now: Instant) {
        if self.exit.is_some() {
            return;
        }
        if let Some(e) = self.proc.exited() {
            self.exit = Some(e);
            return;
        }
        let batch = json!([
            {"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["latest", false]},
            {"jsonrpc": "2.0", "id": 2, "method": "net_peerCount", "params": []},
        ]);
        // A failed poll keeps the last values; the next one reconnects.
        let Ok(Value::Array(answers)) = self.rpc.call(&batch).await else {
            return;
        };
        for a in answers {
            match (a["id"].as_u64(), &a["result"]) {
                (Some(1), block) => {
                    let number = block["number"].as_str().and_then(parse_quantity);
                    let hash = block["hash"].as_str().unwrap_or("?");
                    if let Some(number) = number {
                        self.saw(number, now);
                        self.head = Some((number, short_hash(hash)));
                    }
                }
                (Some(2), peers) => self.peers = peers.as_str().and_then(parse_quantity),
                _ => {}
            }
        }
    }

    /// Notes `now` for every height up to `number` not seen before (a node that gained
    /// several blocks between polls reached each of them by now), keeping the latest
    /// [`SEEN_HEIGHTS`].
    fn saw(&mut self, number: u64, now: Instant) {
        let from = match self.seen.last_key_value() {
            Some((&top, _)) => top + 1,
            None => number,
        };
        let from = from.max(number.saturating_sub(SEEN_HEIGHTS as u64 - 1));
        for h in from..=number {
            self.seen.insert(h, now);
        }
        while self.seen.len() > SEEN_HEIGHTS {
            self.seen.pop_first();
        }
    }
}

/// The id's first 8 hex digits and the TCP port of an enode URL.
fn enode_parts(enode: &str) -> (String, u16) {
    let rest = enode.trim_start_matches("enode://");
    let id = rest.get(..8).unwrap_or(rest).to_string();
    let port = rest
        .split_once('@')
        .and_then(|(_, addr)| addr.split('?').next())
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0);
    (id, port)
}

fn parse_quantity(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// `0x1234…abcd`.
fn short_hash(h: &str) -> String {
    match (h.get(..6), h.len().checked_sub(4).and_then(|i| h.get(i..))) {
        (Some(a), Some(b)) if h.len() > 10 => format!("{a}…{b}"),
        _ => h.to_string(),
    }
}

/// The table: a header line, then one row per node.
fn render(intro: &str, up: Duration, boot: Option<String>, nodes: &[NodeView]) -> String {
    use std::fmt::Write as _;
    let mut s = format!("{intro}\nup {}s", up.as_secs());
    if let Some(e) = boot {
        let _ = write!(s, "; bootnode exited ({e})");
    }
    let _ = writeln!(s, "; Ctrl-C stops it\n");
    // The widths of the rows below.
    s.push_str("node  id          tcp    rpc  peers    head  hash            delay\n");
    let source = nodes.first().map(|n| &n.seen);
    for (i, n) in nodes.iter().enumerate() {
        let peers = n.peers.map_or("-".into(), |p| p.to_string());
        let (head, hash) = match &n.head {
            Some((num, hash)) => (num.to_string(), hash.clone()),
            None => ("-".into(), "-".into()),
        };
        let delay = match (&n.exit, i) {
            (Some(e), _) => format!("exited ({e})"),
            (None, 0) => "source".into(),
            (None, _) => delay(n, source).unwrap_or_else(|| "-".into()),
        };
        let _ = writeln!(
            s,
            "{i:>4}  {:<8}  {:>5}  {:>5}  {peers:>5}  {head:>6}  {hash:<14}  {delay}",
            n.id,
            n.tcp,
            n.rpc.addr.port(),
        );
    }
    s
}

/// How long after node 0 this node was first seen at its head block, in whole polls.
fn delay(
    n: &NodeView,
    source: Option<&std::collections::BTreeMap<u64, Instant>>,
) -> Option<String> {
    let (head, _) = n.head.as_ref()?;
    let at = n.seen.get(head)?;
    let from = source?.get(head)?;
    let d = at.saturating_duration_since(*from);
    Some(if d < POLL {
        format!("<{}ms", POLL.as_millis())
    } else {
        format!("~{}ms", d.as_millis())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_chain_is_600_blocks() {
        let bytes = std::fs::read(BUNDLED_CHAIN).unwrap();
        let ends = block_offsets(&bytes).unwrap();
        assert_eq!(ends.len(), 600);
        assert_eq!(*ends.last().unwrap(), bytes.len());
        assert!(block_offsets(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn enode_urls_and_quantities() {
        let (id, port) = enode_parts("enode://faedfe3643744e3d@127.0.0.1:37307?discport=1");
        assert_eq!((id.as_str(), port), ("faedfe36", 37307));
        assert_eq!(parse_quantity("0x258"), Some(600));
        assert_eq!(parse_quantity("258"), None);
        assert_eq!(
            short_hash("0x44e3809c9a3cda717f00aea3a9da336d149612c8d5657fbc0028176ef8d94d2a"),
            "0x44e3…4d2a"
        );
        assert!(parse_nodes("0").is_err() && parse_nodes("33").is_err());
        assert_eq!(parse_nodes("32"), Ok(32));
    }

    /// A view of a node that never ran: `true` exits at once.
    fn view(port: u16) -> NodeView {
        let child = std::process::Command::new("true").spawn().unwrap();
        let proc = Proc { child, exit: None };
        NodeView::new(
            proc,
            "enode://00@127.0.0.1:1",
            ([127, 0, 0, 1], port).into(),
        )
    }

    #[test]
    fn delay_is_the_gap_between_first_sightings_of_the_head() {
        let t0 = Instant::now();
        let (mut source, mut follower) = (view(1), view(2));
        source.saw(400, t0);
        source.saw(401, t0 + POLL);
        source.saw(403, t0 + 2 * POLL);
        // Jumped past 402 between two polls: both heights reached by the second.
        assert_eq!(source.seen[&402], t0 + 2 * POLL);
        follower.saw(399, t0);
        follower.head = Some((399, "0x".into()));
        // Node 0 was never seen at 399 (it had it before the first poll).
        assert_eq!(delay(&follower, Some(&source.seen)), None);
        follower.saw(401, t0 + POLL);
        follower.head = Some((401, "0x".into()));
        assert_eq!(
            delay(&follower, Some(&source.seen)).as_deref(),
            Some("<100ms")
        );
        follower.saw(403, t0 + 5 * POLL);
        follower.head = Some((403, "0x".into()));
        assert_eq!(
            delay(&follower, Some(&source.seen)).as_deref(),
            Some("~300ms")
        );
        // A sync jump keeps only the latest heights.
        follower.saw(100_000, t0);
        assert_eq!(follower.seen.len(), SEEN_HEIGHTS);
        assert_eq!(
            *follower.seen.first_key_value().unwrap().0,
            100_000 + 1 - SEEN_HEIGHTS as u64
        );
    }
}
