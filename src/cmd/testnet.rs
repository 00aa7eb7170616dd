//! `devp2p testnet --netns N`: a testnet of real node processes, each in its own network
//! namespace with its own address, in several /24 subnets routed through a bridge
//! ([`netns`]); a bootnode, node 0 replaying the bundled chain as `devp2p devnet` does,
//! and the others syncing and following. Needs root.
//!
//! # What it shows that loopback cannot
//!
//! On 127.0.0.1 every node shares one address, which the IP limits exempt. Here each node
//! has its own, so the discovery table's /24 limits, the server's per-subnet inbound caps,
//! the dial ratio and the external-address vote (each node starts bound to 0.0.0.0 and
//! must learn its address from the pongs of distinct hosts) all act, and are checked.
//!
//! # What it measures
//!
//! Every `--poll` it scrapes each node's Prometheus metrics (peers, head, table size,
//! bytes), every [`CHECK_EVERY`] its `admin_peers` (inbound peers per /24) and
//! `admin_nodeInfo` (its own address), every `--sample` its `/proc` entry (memory,
//! descriptors, threads). Block propagation delays come from the nodes' logs (see
//! [`measure`]). It writes CSV files and SVG plots to `--out` and a summary to stdout.
//!
//! Without `--duration` it stops once every node has the last replayed block (or after
//! `--timeout`) and fails unless the checks hold. With `--duration` it is a soak run:
//! every `--churn` one node leaves (SIGINT) and rejoins half a period later.
//!
//! # Cleanup
//!
//! The nodes are stopped, then the namespaces deleted, on every way out: the end of the
//! run, Ctrl-C or SIGTERM (the `shutdown` future), an error, and a panic (the [`netns::Lab`]
//! and `Proc` guards). A run killed outright is cleaned by the next start's sweep.

mod measure;
pub mod netns;
mod plot;
mod report;

use std::ffi::OsString;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use super::devnet;
use super::devnet::proc::{Proc, stop_all};
use super::devnet::rpc::Rpc;
use super::import;
use crate::chain::{Spec, Store};
use measure::{BlockTimes, ProcStats, Sample};
use netns::Lab;

/// How often `admin_peers` and `admin_nodeInfo` are read: the caps are checked on each.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Nodes started at once: each start opens databases and waits for the node's first
/// lines; a few at a time keep the machine responsive.
const START_BATCH: usize = 8;
/// Most nodes: 1000 processes already need ~10 GB of memory.
pub const MAX_NODES: usize = 1000;
/// The ports every node uses inside its own namespace (no other process is there).
const RLPX_PORT: u16 = 30303;
const RPC_PORT: u16 = 8545;
const METRICS_PORT: u16 = 9100;
const BOOTNODE_PORT: u16 = 30301;

/// Testnet errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Namespaces cannot be made here (not root, no `ip`).
    #[error("devp2p testnet needs root and `ip netns`: {0}")]
    Unavailable(String),
    /// A setting is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Building the network failed (an `ip` command, with its message).
    #[error("network setup: {0}")]
    Net(String),
    /// Starting a node, preloading or reading a file failed.
    #[error(transparent)]
    Devnet(#[from] devnet::Error),
    /// Writing the results failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("{0}")]
    Plot(String),
    /// The run finished but a check failed (listed in the summary).
    #[error("{0} check(s) failed")]
    Failed(usize),
}

impl From<import::Error> for Error {
    fn from(e: import::Error) -> Self {
        Error::Devnet(e.into())
    }
}

/// Arguments of `devp2p testnet`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Number of node processes, each in its own network namespace (besides the bootnode).
    #[arg(long, default_value_t = 50, value_parser = parse_nodes)]
    pub netns: usize,
    /// Nodes per /24 subnet: nodes fill subnets 1, 2, … of --net in turn (the bootnode
    /// is alone in subnet 0). Over 10 exercises the discovery table's /24 limit.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub per_subnet: usize,
    /// The /16 the testnet uses, as its first two octets; must not be in use.
    #[arg(long, value_name = "A.B", default_value = "10.77", value_parser = parse_net)]
    pub net: Net,
    /// Blocks node 0 replays after the preload; the run ends when every node has them.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub blocks: u64,
    /// Blocks of the chain file node 0 has before it starts (the others sync them).
    #[arg(long, value_name = "N", default_value_t = 400)]
    pub preload: u64,
    /// Pause between replayed blocks.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = devnet::parse_interval)]
    pub interval: Duration,
    /// Peers a node must reach for the "target peers" time.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub target_peers: u64,
    /// How often each node's metrics are scraped.
    #[arg(long, value_name = "DUR", default_value = "500ms", value_parser = devnet::parse_interval)]
    pub poll: Duration,
    /// Soak run: keep going this long (e.g. `1h`), nodes leaving and rejoining.
    #[arg(long, value_name = "DUR", value_parser = devnet::parse_interval)]
    pub duration: Option<Duration>,
    /// In a soak run, one node leaves every DUR and rejoins DUR/2 later.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = devnet::parse_interval)]
    pub churn: Duration,
    /// How often each process's memory, descriptors and threads are sampled.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = devnet::parse_interval)]
    pub sample: Duration,
    /// Without --duration: give up (and fail) if not every node has the last block by then.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = devnet::parse_interval)]
    pub timeout: Duration,
    /// Directory for the CSV files and plots.
    #[arg(long, value_name = "DIR", default_value = "testnet-out")]
    pub out: PathBuf,
    /// Directory for the nodes' data and logs, kept afterwards [default: a temporary
    /// directory, removed on exit].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the temporary directory (data and logs) on exit.
    #[arg(long)]
    pub keep: bool,
    /// Log filter of the nodes; block times are read from `sync=debug` lines.
    #[arg(long, value_name = "FILTER", default_value = "info,sync=debug")]
    pub node_log: String,
    /// The devp2p binary the nodes run [default: this executable].
    #[arg(long, value_name = "FILE")]
    pub bin: Option<PathBuf>,
    /// The RLP block file to preload and replay [default: the bundled testdata/ethtest/chain.rlp].
    #[arg(long, value_name = "FILE")]
    pub chain_file: Option<PathBuf>,
    /// The chain the file belongs to: a preset or a genesis.json path.
    #[arg(long, value_name = "NAME|FILE", default_value = crate::chain::presets::DEFAULT)]
    pub chain: String,
}

/// The testnet's /16: its first two octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net(pub [u8; 2]);

fn parse_net(s: &str) -> Result<Net, String> {
    let bad = || format!("{s:.20}: expected the first two octets of a /16, e.g. 10.77");
    let (a, b) = s.split_once('.').ok_or_else(bad)?;
    Ok(Net([
        a.parse().map_err(|_| bad())?,
        b.parse().map_err(|_| bad())?,
    ]))
}

fn parse_nodes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (2..=MAX_NODES).contains(&n) => Ok(n),
        _ => Err(format!("expected a number from 2 to {MAX_NODES}")),
    }
}

/// Runs the testnet until it is done or `shutdown` completes; prints the summary.
pub async fn run(
    args: Args,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error>> {
    Ok(run_inner(args, shutdown).await?)
}

/// One process of the testnet and what was seen of it.
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) addr: Ipv4Addr,
    pub(crate) dir: PathBuf,
    argv: Vec<OsString>,
    proc: Option<Proc>,
    pub(crate) pid: Option<u32>,
    rpc: Option<Rpc>,
    metrics: Option<Rpc>,
    pub(crate) logs: Vec<PathBuf>,
    started: Instant,
    /// Seconds from its first start to ≥1 peer, ≥ target peers, the preload, the last block.
    pub(crate) first_peer: Option<f64>,
    pub(crate) at_target: Option<f64>,
    pub(crate) synced: Option<f64>,
    pub(crate) at_head: Option<f64>,
    pub(crate) last: Sample,
    pub(crate) max_table: u64,
    pub(crate) max_out: u64,
    pub(crate) max_inbound_subnet: usize,
    pub(crate) learned_ip: Option<String>,
    pub(crate) restarts: usize,
    down_until: Option<Instant>,
}

/// What the report is made of.
pub(crate) struct Run {
    pub(crate) args: Args,
    pub(crate) hosts: Vec<Host>,
    pub(crate) subnets: usize,
    pub(crate) preload: u64,
    pub(crate) last_block: u64,
    /// Seconds since start: nodes with ≥1 peer, ≥ target peers, synced, at the last block.
    pub(crate) timeline: Vec<(f64, [usize; 4])>,
    /// Seconds since start, node, pid, stats.
    pub(crate) soak: Vec<(f64, usize, u32, ProcStats)>,
    pub(crate) blocks: Vec<BlockTimes>,
    pub(crate) elapsed: f64,
    pub(crate) timed_out: bool,
    /// Stopped by Ctrl-C or SIGTERM: reported, but the checks do not fail the run.
    pub(crate) interrupted: bool,
}

async fn run_inner(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    if let Some(why) = netns::unavailable() {
        return Err(Error::Unavailable(why));
    }
    let per = args.per_subnet;
    if !(1..=netns::MAX_PER_SUBNET).contains(&per) {
        return Err(Error::Invalid(format!(
            "--per-subnet: expected 1 to {}",
            netns::MAX_PER_SUBNET
        )));
    }
    let subnets = args.netns.div_ceil(per);
    if subnets >= usize::from(netns::UPLINK_NET) {
        return Err(Error::Invalid(format!(
            "{} nodes at {per} per /24 need {subnets} subnets, over the {} available",
            args.netns,
            netns::UPLINK_NET - 1
        )));
    }
    let ip = netns::find_tool("ip").ok_or_else(|| Error::Unavailable("no `ip`".into()))?;
    let swept = netns::sweep(&ip);
    if swept > 0 {
        println!("removed {swept} namespaces/links left by an earlier testnet");
    }
    let exe = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|source| io("current executable", source))?,
    };
    let (dir, remove_dir) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("devp2p-testnet-{}", std::process::id())),
            !args.keep,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let result = testnet(&args, &ip, &exe, &dir, subnets + 1, shutdown).await;
    if remove_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let run = result?;
    let failed = report::write(&run)?;
    if failed > 0 && !run.interrupted {
        return Err(Error::Failed(failed));
    }
    Ok(())
}

fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
    Error::Io {
        path: path.into(),
        source,
    }
}

/// Builds the network, runs the nodes, and gathers what the report needs; everything is
/// stopped and deleted before it returns.
async fn testnet(
    args: &Args,
    ip: &std::path::Path,
    exe: &std::path::Path,
    dir: &std::path::Path,
    subnets: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<Run, Error> {
    let (_, bytes, ends) = devnet::read_chain(args.chain_file.as_ref())?;
    let total = ends.len() as u64;
    let preload = args.preload.min(total);
    let last_block = (preload + args.blocks).min(total);
    // Node 0 replays the file up to the last block (it skips what it has).
    let replay = dir.join("replay.rlp");
    let end = last_block.checked_sub(1).map_or(0, |i| ends[i as usize]);
    std::fs::write(&replay, &bytes[..end]).map_err(|e| io(&replay, e))?;
    if preload > 0 {
        let store = Store::open(
            &dir.join("node0"),
            Spec::load(&args.chain).map_err(devnet::Error::from)?,
        )
        .map_err(devnet::Error::from)?;
        import::import(&store, &bytes[..ends[preload as usize - 1]])?;
    }
    let mut ids = Vec::new();
    for i in 0..args.netns {
        let d = dir.join(format!("node{i}"));
        std::fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
        let key = super::key::resolve(None, None, Some(&d)).map_err(devnet::Error::from)?;
        ids.push(discovery::NodeId::from_secret_key(&key).to_string());
    }

    let base = args.net.0;
    let mut lab = Lab::new(ip.to_path_buf(), base).map_err(Error::Net)?;
    let boot_addr = netns::bootnode_addr(base);
    let boot_ns = lab.add_host("boot", boot_addr).map_err(Error::Net)?;
    let mut hosts = Vec::new();
    for i in 0..args.netns {
        let (_, addr) = netns::node_addr(base, args.per_subnet, i);
        let name = format!("node{i}");
        let ns = lab.add_host(&name, addr).map_err(Error::Net)?;
        hosts.push((name, ns, addr));
    }
    println!(
        "testnet: bootnode + {} nodes in {} /24s of {}.{}.0.0/16 ({} per subnet), each in its own network namespace",
        args.netns, subnets, base[0], base[1], args.per_subnet
    );

    let log = args.node_log.as_str();
    let (ipx, pre) = lab.exec_prefix(&boot_ns);
    let mut argv = pre;
    argv.push(exe.into());
    argv.extend(
        ["--log-level", "info", "bootnode", "--addr"]
            .map(OsString::from)
            .into_iter()
            .chain([
                format!("{boot_addr}:{BOOTNODE_PORT}").into(),
                "--datadir".into(),
                dir.join("bootnode").into(),
            ]),
    );
    let started = Instant::now();
    let mut boot = None;
    let mut net = Nodes {
        hosts: Vec::new(),
        ipx: ipx.clone(),
    };
    let mut run = Run {
        args: args.clone(),
        hosts: Vec::new(),
        subnets,
        preload,
        last_block,
        timeline: Vec::new(),
        soak: Vec::new(),
        blocks: Vec::new(),
        elapsed: 0.0,
        timed_out: false,
        interrupted: false,
    };
    tokio::pin!(shutdown);
    let setup = async {
        let (b, enode, _) = Proc::start(
            &ipx,
            "bootnode".into(),
            dir.join("bootnode.log"),
            argv,
            false,
        )
        .await?;
        boot = Some(b);
        for (i, (name, ns, addr)) in hosts.into_iter().enumerate() {
            let (_, pre) = lab.exec_prefix(&ns);
            let mut argv = pre;
            argv.push(exe.into());
            let d = dir.join(&name);
            let a = |s: &str| OsString::from(s);
            argv.extend([
                a("--log-level"),
                a(log),
                a("node"),
                // Bound to any address: the node learns its own from pongs.
                a("--addr"),
                a("0.0.0.0"),
                a("--port"),
                a(&RLPX_PORT.to_string()),
                a("--chain"),
                a(&args.chain),
                a("--bootnodes"),
                a(&enode),
                a("--rpc"),
                a(&format!("0.0.0.0:{RPC_PORT}")),
                a("--rpc-allow-remote"),
                a("--metrics"),
                a(&format!("0.0.0.0:{METRICS_PORT}")),
                a("--datadir"),
                d.clone().into(),
            ]);
            // On a private chain only named peers' blocks move a node's head.
            let others: Vec<&str> = (ids.iter().enumerate())
                .filter(|(j, _)| *j != i)
                .map(|(_, id)| id.as_str())
                .collect();
            argv.extend([a("--block-sources"), a(&others.join(","))]);
            if i == 0 {
                argv.extend([
                    a("--replay"),
                    replay.clone().into(),
                    a("--interval"),
                    a(&format!("{}ms", args.interval.as_millis())),
                ]);
            }
            net.hosts.push(Host {
                name,
                addr,
                dir: d,
                argv,
                proc: None,
                pid: None,
                rpc: None,
                metrics: None,
                logs: Vec::new(),
                started,
                first_peer: None,
                at_target: None,
                synced: (i == 0).then_some(0.0),
                at_head: None,
                last: Sample::default(),
                max_table: 0,
                max_out: 0,
                max_inbound_subnet: 0,
                learned_ip: None,
                restarts: 0,
                down_until: None,
            });
        }
        // Node 0 first, so the others have a chain to sync from when they find it.
        net.start(&[0]).await?;
        let rest: Vec<usize> = (1..net.hosts.len()).collect();
        for batch in rest.chunks(START_BATCH) {
            net.start(batch).await?;
            // The nodes already up find peers meanwhile: the milestones during start-up
            // have the resolution of one batch's start.
            net.poll(&run, Instant::now()).await;
        }
        Ok::<_, Error>(())
    };
    let outcome = tokio::select! {
        r = setup => r.map(|()| true),
        _ = &mut shutdown => Ok(false),
    };
    if let Ok(true) = outcome {
        println!(
            "all {} nodes started in {:.1}s; node 0 replays blocks {}..={last_block} every {:?}",
            net.hosts.len(),
            started.elapsed().as_secs_f64(),
            preload + 1,
            args.interval
        );
        net.watch(&mut run, started, &mut shutdown).await;
    }
    // Stop every process before the namespaces go.
    net.stop().await;
    if let Some(mut b) = boot {
        stop_all(&mut [&mut b]).await;
    }
    drop(lab);
    outcome?;
    run.elapsed = started.elapsed().as_secs_f64();
    for h in &net.hosts {
        let mut times = BlockTimes::default();
        for l in &h.logs {
            if let Ok(text) = std::fs::read_to_string(l) {
                times.add_log(&text);
            }
        }
        run.blocks.push(times);
    }
    run.hosts = net.hosts;
    Ok(run)
}

/// The node processes.
struct Nodes {
    hosts: Vec<Host>,
    /// The `ip` binary every node is started through.
    ipx: PathBuf,
}

impl Nodes {
    /// Starts (or restarts) the nodes `which` concurrently.
    async fn start(&mut self, which: &[usize]) -> Result<(), Error> {
        let ipx = self.ipx.clone();
        let starts = self
            .hosts
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| which.contains(i))
            .map(|(_, h)| {
                let log = h.dir.with_extension(format!("{}.log", h.logs.len()));
                h.logs.push(log.clone());
                if h.logs.len() == 1 {
                    // Milestones count from the node's own first start.
                    h.started = Instant::now();
                }
                let ipx = ipx.clone();
                async move {
                    let (proc, _, rpc) =
                        Proc::start(&ipx, h.name.clone(), log, h.argv.clone(), true).await?;
                    h.pid = Some(proc.child.id());
                    h.proc = Some(proc);
                    let port = rpc.map_or(RPC_PORT, |a| a.port());
                    // The admin token is written before the RPC address is printed.
                    let token = std::fs::read_to_string(h.dir.join("rpc.cookie"))
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    h.rpc = Some(Rpc::new(SocketAddr::new(h.addr.into(), port)).with_token(token));
                    h.metrics = Some(Rpc::new(SocketAddr::new(h.addr.into(), METRICS_PORT)));
                    Ok::<_, Error>(())
                }
            });
        for r in futures::future::join_all(starts).await {
            r?;
        }
        Ok(())
    }

    /// Polls, checks, samples and churns until done, timed out, or `shutdown`.
    async fn watch(
        &mut self,
        run: &mut Run,
        started: Instant,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) {
        let args = run.args.clone();
        let soak_end = args.duration.map(|d| Instant::now() + d);
        let deadline = Instant::now() + args.timeout;
        let mut poll = tokio::time::interval(args.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut next_check, mut next_sample) = (Instant::now(), Instant::now());
        let mut next_churn = Instant::now() + args.churn;
        let mut next_line = Instant::now();
        let mut done_at = None;
        let mut rng = rand::rng();
        loop {
            tokio::select! {
                _ = &mut *shutdown => {
                    run.interrupted = true;
                    return;
                }
                _ = poll.tick() => {}
            }
            let now = Instant::now();
            let t = now.duration_since(started).as_secs_f64();
            self.poll(run, now).await;
            let counts = self.counts(args.target_peers);
            run.timeline.push((t, counts));
            if now >= next_check {
                next_check = now + CHECK_EVERY;
                self.check().await;
            }
            if now >= next_sample {
                next_sample = now + args.sample;
                for (i, h) in self.hosts.iter().enumerate() {
                    let stats = h
                        .pid
                        .filter(|_| h.proc.is_some())
                        .and_then(|p| Some((p, ProcStats::of(p)?)));
                    if let Some((pid, s)) = stats {
                        run.soak.push((t, i, pid, s));
                    }
                }
            }
            if now >= next_line {
                next_line = now + Duration::from_secs(5);
                let n = self.hosts.len();
                println!(
                    "{t:>6.1}s  peers≥1 {}/{n}  peers≥{} {}/{n}  synced {}/{n}  at block {} {}/{n}",
                    counts[0], args.target_peers, counts[1], counts[2], run.last_block, counts[3]
                );
            }
            match soak_end {
                Some(end) => {
                    if now >= end {
                        return;
                    }
                    self.churn(&mut rng, now, &mut next_churn, args.churn).await;
                }
                None => {
                    if counts[3] == self.hosts.len() {
                        // A little longer, so the last log lines are written.
                        let at = *done_at.get_or_insert(now + Duration::from_secs(2));
                        if now >= at {
                            self.check().await;
                            return;
                        }
                    }
                    if now >= deadline {
                        run.timed_out = true;
                        self.check().await;
                        return;
                    }
                }
            }
        }
    }

    /// Scrapes every running node's metrics and notes the milestones.
    async fn poll(&mut self, run: &Run, now: Instant) {
        let target = run.args.target_peers;
        let (preload, last) = (run.preload, run.last_block);
        let polls = self
            .hosts
            .iter_mut()
            .filter(|h| h.proc.is_some())
            .map(|h| async move {
                let Some(m) = h.metrics.as_mut() else { return };
                let Ok(text) = m.get("/metrics").await else {
                    return;
                };
                let s = Sample::parse(&text);
                let t = now.duration_since(h.started).as_secs_f64();
                let peers = s.peers_in + s.peers_out;
                if peers >= 1 {
                    h.first_peer.get_or_insert(t);
                }
                if peers >= target {
                    h.at_target.get_or_insert(t);
                }
                if s.head >= preload {
                    h.synced.get_or_insert(t);
                }
                if s.head >= last {
                    h.at_head.get_or_insert(t);
                }
                h.max_table = h.max_table.max(s.table);
                h.max_out = h.max_out.max(s.peers_out);
                h.last = s;
            });
        futures::future::join_all(polls).await;
    }

    /// Reads `admin_peers` and `admin_nodeInfo` of every running node.
    async fn check(&mut self) {
        let calls = self
            .hosts
            .iter_mut()
            .filter(|h| h.proc.is_some())
            .map(|h| async move {
                let Some(rpc) = h.rpc.as_mut() else { return };
                let batch = json!([
                    {"jsonrpc": "2.0", "id": 1, "method": "admin_peers", "params": []},
                    {"jsonrpc": "2.0", "id": 2, "method": "admin_nodeInfo", "params": []},
                ]);
                let Ok(serde_json::Value::Array(answers)) = rpc.call(&batch).await else {
                    return;
                };
                for a in answers {
                    match (a["id"].as_u64(), &a["result"]) {
                        (Some(1), peers) => {
                            let (most, _) = measure::inbound_per_subnet(peers);
                            h.max_inbound_subnet = h.max_inbound_subnet.max(most);
                        }
                        (Some(2), info) => {
                            if let Some(ip) = info["ip"].as_str() {
                                h.learned_ip = Some(ip.chars().take(45).collect());
                            }
                        }
                        _ => {}
                    }
                }
            });
        futures::future::join_all(calls).await;
    }

    /// Nodes with ≥1 peer, ≥ target peers, synced, at the last block (running ones).
    fn counts(&self, target: u64) -> [usize; 4] {
        let mut c = [0; 4];
        for h in self.hosts.iter().filter(|h| h.proc.is_some()) {
            let peers = h.last.peers_in + h.last.peers_out;
            c[0] += usize::from(peers >= 1);
            c[1] += usize::from(peers >= target);
            c[2] += usize::from(h.synced.is_some());
            c[3] += usize::from(h.at_head.is_some());
        }
        c
    }

    /// Soak churn: restarts nodes whose time is up; every `every`, stops one other
    /// (never node 0, the chain's source) until `every / 2` from now.
    async fn churn(
        &mut self,
        rng: &mut impl rand::Rng,
        now: Instant,
        next: &mut Instant,
        every: Duration,
    ) {
        let due: Vec<usize> = (self.hosts.iter().enumerate())
            .filter(|(_, h)| h.down_until.is_some_and(|t| t <= now))
            .map(|(i, _)| i)
            .collect();
        if !due.is_empty() {
            for &i in &due {
                self.hosts[i].down_until = None;
                self.hosts[i].restarts += 1;
            }
            if let Err(e) = self.start(&due).await {
                println!("churn: restart failed: {e}");
            }
        }
        if now < *next || self.hosts.len() < 2 {
            return;
        }
        *next = now + every;
        let i = rng.random_range(1..self.hosts.len());
        let h = &mut self.hosts[i];
        if let Some(mut p) = h.proc.take() {
            stop_all(&mut [&mut p]).await;
            h.down_until = Some(Instant::now() + every / 2);
            h.rpc = None;
            h.metrics = None;
            println!("churn: {} left; rejoins in {:?}", h.name, every / 2);
        }
    }

    /// Stops every node: SIGINT, then SIGKILL after the devnet's wait.
    async fn stop(&mut self) {
        let mut procs: Vec<&mut Proc> = self
            .hosts
            .iter_mut()
            .filter_map(|h| h.proc.as_mut())
            .collect();
        stop_all(&mut procs).await;
    }
}
