//! The real `devp2p bootnode` binary against `kill -9` and Ctrl-C.
//!
//! - `node_db_survives_kill_9`: one data directory, the bootnode started and SIGKILLed six
//!   times at different moments. After every kill the node database must open, all its nodes
//!   must read back, its stored record sequence number must be the one the next start
//!   continues from, and the restarted node must keep its key (same enode id).
//! - `ctrl_c_flushes_node_db`: SIGINT after bonding (well before the first periodic flush)
//!   must exit 0 within seconds and leave the bonded nodes in the database.
//! - `kill_9_during_first_start_leaves_usable_datadir`: kills the
//!   very first start while it creates the data directory.
//!
//! The service buffers bonds in memory and hands them to its database writer every 10 s
//! (`discovery::Config::db_flush_interval`) and at shutdown; everything else (database
//! creation/recovery on open, our record's sequence number) is written at start, before
//! the enode URL is printed. The service logs (at debug level) each bond and the start
//! and end of each write, which the test reads as ordering barriers rather than guessing
//! from the clock. The periodic and the shutdown flush are one write path (a batch of
//! updates committed by the writer thread), so the flush killed in rounds 4 and 5 is the
//! one Ctrl-C starts at once, not the periodic one ten seconds in: the test does not wait
//! for a timer in another process. The kill moments are therefore:
//!
//! | round | moment                                          | window covered                     |
//! |-------|-------------------------------------------------|------------------------------------|
//! | 0     | first start, right after the ENR line           | just after creation + seq write    |
//! | 1     | 0–10 ms after spawn (random)                    | exec, open + crash recovery        |
//! | 2     | right after it bonded with this round's nodes   | bonds pending in memory            |
//! | 3     | 5–20 ms after spawn (random)                    | open/recovery, seq write, start    |
//! | 4     | Ctrl-C, then as soon as it logs the write start | the flush of the bonds (commit)    |
//! | 5     | Ctrl-C, then once it logs the write done        | after the flush: bonds must be kept|
//!
//! Every round uses fresh in-process discovery nodes (a bootstrap node "A" with raised
//! per-IP limits, since everything shares 127.0.0.1, plus two nodes that know only A), so
//! "bonded" means "A's table holds the bootnode at this run's UDP port".

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use discovery::{Config, Enr, Handle, Node, NodeDb, NodeId, Service, parse_node};
use rand::Rng;
use secp256k1::SecretKey;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Bound on any single wait (startup line, bonding, exit).
const WAIT: Duration = Duration::from_secs(15);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A scratch directory under the system temp dir, removed when the test passes.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "devp2p-kill-{name}-{}-{}",
            std::process::id(),
            rand::rng().random::<u32>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// In-process discovery nodes on 127.0.0.1: `nodes[0]` is the one the bootnode is told
/// about, the others know only it.
struct Cluster {
    nodes: Vec<Handle>,
}

fn config() -> Config {
    Config {
        rate_limit: 2_000,
        rate_burst: 2_000,
        ..Config::default()
    }
}

async fn spawn_node(config: Config) -> Handle {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    Service::spawn(socket, SecretKey::new(&mut rand::rng()), config, None).unwrap()
}

impl Cluster {
    async fn start(n: usize) -> Self {
        let a = spawn_node(config()).await;
        let mut nodes = vec![a.clone()];
        for _ in 1..n {
            nodes.push(
                spawn_node(Config {
                    bootnodes: vec![a.local_node()],
                    ..config()
                })
                .await,
            );
        }
        Cluster { nodes }
    }

    fn enode(&self) -> String {
        self.nodes[0].local_node().to_string()
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.local_node().id).collect()
    }

    /// Waits until the first `count` nodes hold `boot` (at its current port) in their
    /// tables, i.e. they bonded with this run of the bootnode.
    async fn wait_bonded(&self, boot: Node, count: usize) {
        let start = Instant::now();
        loop {
            let mut all = true;
            for n in self.nodes.iter().take(count) {
                let has = n
                    .table_nodes(1000)
                    .await
                    .unwrap()
                    .iter()
                    .any(|x| x.id == boot.id && x.udp == boot.udp);
                if !has {
                    all = false;
                }
            }
            if all {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "in-process nodes did not bond with the bootnode {boot} within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shutdown(self) {
        for n in &self.nodes {
            n.shutdown().await;
        }
    }
}

/// A running `devp2p bootnode` (killed if dropped).
struct Bootnode {
    child: Child,
    log: PathBuf,
}

/// What a bootnode printed at start.
struct Started {
    node: Node,
    enr: Enr,
}

impl Bootnode {
    fn spawn(datadir: &Path, log: PathBuf, bootnode: Option<&str>) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_devp2p"))
            .arg("bootnode")
            .arg("--datadir")
            .arg(datadir)
            .args(["--addr", "127.0.0.1:0"])
            .args(bootnode.map(|b| ["--bootnodes", b]).into_iter().flatten())
            .arg("--log-level")
            .arg("debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn devp2p bootnode");
        Bootnode { child, log }
    }

    /// Waits until a complete line of the log holds all of `needles`. Polls every 2 ms, so
    /// a kill that follows lands within a few ms of the line.
    async fn wait_log(&self, needles: &[&str]) {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
            if complete
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n)))
            {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "bootnode logged no line with {needles:?} within {WAIT:?}; log tail:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until the log shows a bond with every one of `ids`.
    async fn wait_log_bonds(&self, ids: &[NodeId]) {
        for id in ids {
            self.wait_log(&["bonded", &id.to_string()]).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Reads the enode URL and the ENR it prints at start.
    async fn started(&mut self) -> Started {
        let stdout = self.child.stdout.take().expect("stdout already taken");
        let mut lines = BufReader::new(stdout).lines();
        let mut next = async || match tokio::time::timeout(WAIT, lines.next_line()).await {
            Ok(Ok(Some(l))) => l,
            other => panic!(
                "bootnode printed no start line ({other:?}); log tail:\n{}",
                self.log_tail()
            ),
        };
        let enode = next().await;
        let enr = next().await;
        let node = parse_node(&enode).unwrap_or_else(|e| panic!("bad enode {enode:?}: {e}"));
        let enr: Enr = enr
            .parse()
            .unwrap_or_else(|e| panic!("bad ENR {enr:?}: {e}"));
        assert_eq!(enr.node_id(), node.id, "enode and ENR disagree");
        assert_eq!(enr.udp(), Some(node.udp), "ENR has another UDP port");
        Started { node, enr }
    }

    /// SIGKILL, and wait until the process is gone (its file lock released).
    async fn kill9(self) {
        let status = self.kill9_status().await;
        assert!(!status.success(), "SIGKILLed bootnode reported success");
    }

    /// SIGKILL (unless it already exited), and how it ended.
    async fn kill9_status(mut self) -> std::process::ExitStatus {
        self.child.start_kill().expect("SIGKILL");
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("killed bootnode did not exit")
            .unwrap()
    }

    /// SIGKILL, and return what it had printed on stdout (if `started` did not read it).
    async fn kill9_printed(mut self) -> String {
        let stdout = self.child.stdout.take();
        self.kill9().await;
        let mut printed = String::new();
        if let Some(mut out) = stdout {
            let _ = tokio::time::timeout(
                WAIT,
                tokio::io::AsyncReadExt::read_to_string(&mut out, &mut printed),
            )
            .await;
        }
        printed
    }

    /// Sends SIGINT (what Ctrl-C sends): the bootnode flushes its node database and exits.
    fn interrupt(&self) {
        let pid = self.child.id().expect("bootnode already reaped");
        let ok = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("run kill -INT");
        assert!(ok.success(), "kill -INT {pid} failed");
    }

    /// Asserts that the node database has not been written since the start (so the next
    /// write is the shutdown's).
    fn assert_not_written(&self) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            !log.contains("writing node database"),
            "a periodic write came first: cannot tell it from the shutdown one"
        );
    }

    /// SIGINT; returns how it exited.
    async fn ctrl_c(mut self, within: Duration) -> std::process::ExitStatus {
        self.interrupt();
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "bootnode did not exit within {within:?} of SIGINT; log tail:\n{}",
                self.log_tail()
            ),
        }
    }
}

/// Opens the database of a dead bootnode and reads everything in it.
fn read_db(path: &Path) -> (u64, Vec<discovery::db::Record>) {
    let db = NodeDb::open(path).unwrap_or_else(|e| {
        panic!(
            "node database {} unusable after the kill: {e}",
            path.display()
        )
    });
    let seq = db.local_seq().expect("read stored seq");
    let all = db
        .seeds(unix_now(), Duration::from_secs(u64::MAX), usize::MAX)
        .expect("iterate all stored nodes");
    let records = all
        .iter()
        .map(|n| {
            db.get(&n.id)
                .expect("read stored node")
                .expect("listed node has a record")
        })
        .collect();
    (seq, records)
}

#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// As soon as the ENR line is read.
    AfterEnr,
    /// This long after spawning, whatever it is doing.
    AfterSpawn(Duration),
    /// As soon as this round's in-process nodes bonded with it.
    Bonded,
    /// Ctrl-C, then as soon as the log shows its write of the node database starting.
    Flushing,
    /// Ctrl-C, then as soon as the log shows its write of the node database done.
    Flushed,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_db_survives_kill_9() {
    let scratch = Scratch::new("kill9");
    let datadir = scratch.0.join("data");
    let db_path = datadir.join("nodes.redb");
    let mut rng = rand::rng();
    let schedule = [
        KillAt::AfterEnr,
        KillAt::AfterSpawn(Duration::from_micros(rng.random_range(0..10_000))),
        KillAt::Bonded,
        KillAt::AfterSpawn(Duration::from_micros(rng.random_range(5_000..20_000))),
        KillAt::Flushing,
        KillAt::Flushed,
    ];
    let test_start = Instant::now();
    let mut id: Option<NodeId> = None;
    let mut key_file: Option<Vec<u8>> = None;
    // The seq stored in the database after the last kill, if it had been read.
    let mut stored_seq: Option<u64> = None;
    let mut kept: HashSet<NodeId> = HashSet::new();
    for (round, &at) in schedule.iter().enumerate() {
        let cluster = Cluster::start(3).await;
        let round_unix = unix_now();
        let log = scratch.0.join(format!("bootnode-{round}.log"));
        let mut boot = Bootnode::spawn(&datadir, log, Some(&cluster.enode()));
        let started = match at {
            KillAt::AfterSpawn(d) => {
                tokio::time::sleep(d).await;
                None
            }
            _ => Some(boot.started().await),
        };
        if let Some(s) = &started {
            // Same key from the data directory: same id on every start.
            assert_eq!(
                *id.get_or_insert(s.node.id),
                s.node.id,
                "round {round}: new id"
            );
            // The seq stored before the kill is where this start continues.
            if let Some(stored) = stored_seq {
                assert_eq!(s.enr.seq(), stored + 1, "round {round}: record seq");
            }
            match at {
                KillAt::AfterEnr => {}
                KillAt::Bonded => cluster.wait_bonded(s.node, 1).await,
                KillAt::Flushing | KillAt::Flushed => {
                    cluster.wait_bonded(s.node, 3).await;
                    // The bonds are pending in the bootnode; Ctrl-C writes them.
                    boot.wait_log_bonds(&cluster.ids()).await;
                    boot.assert_not_written();
                    boot.interrupt();
                    let line = if matches!(at, KillAt::Flushing) {
                        "writing node database"
                    } else {
                        "node database written"
                    };
                    boot.wait_log(&[line]).await;
                }
                KillAt::AfterSpawn(_) => unreachable!(),
            }
        }
        let killed_after = test_start.elapsed();
        if matches!(at, KillAt::Flushing | KillAt::Flushed) {
            // After Ctrl-C the kill may come after its clean exit (the write takes
            // milliseconds): what is stored must hold either way.
            let status = boot.kill9_status().await;
            eprintln!(
                "round {round}: {}",
                if status.success() {
                    "exited before the kill"
                } else {
                    "killed"
                }
            );
        } else {
            boot.kill9().await;
        }

        let (seq, records) = read_db(&db_path);
        let key = std::fs::read(datadir.join("nodekey")).expect("nodekey kept");
        assert_eq!(
            key.len(),
            64,
            "round {round}: nodekey is {} bytes",
            key.len()
        );
        assert_eq!(
            *key_file.get_or_insert_with(|| key.clone()),
            key,
            "round {round}: nodekey changed"
        );
        if let Some(s) = &started {
            assert_eq!(seq, s.enr.seq(), "round {round}: stored seq");
        }
        let ids: HashSet<NodeId> = records.iter().map(|r| r.node.id).collect();
        // Nothing is ever lost once written.
        assert!(
            ids.is_superset(&kept),
            "round {round}: stored nodes disappeared"
        );
        let round_ids = cluster.ids();
        let fresh = round_ids.iter().filter(|i| ids.contains(i)).count();
        for r in records.iter().filter(|r| round_ids.contains(&r.node.id)) {
            assert!(r.last_pong >= round_unix, "round {round}: stale pong time");
            assert_eq!(r.node.ip, std::net::Ipv4Addr::LOCALHOST);
        }
        if let KillAt::Flushed = at {
            assert_eq!(
                fresh, 3,
                "round {round}: bonds written before the kill were lost"
            );
        }
        eprintln!(
            "round {round}: killed {at:?} at {killed_after:.2?}; db opened: seq {seq}, {} nodes \
             ({} from this round)",
            records.len(),
            fresh
        );
        kept = ids;
        stored_seq = Some(seq);
        cluster.shutdown().await;
    }
    // A last start on the data directory works and keeps the id.
    let cluster = Cluster::start(1).await;
    let mut boot = Bootnode::spawn(
        &datadir,
        scratch.0.join("final.log"),
        Some(&cluster.enode()),
    );
    let s = boot.started().await;
    assert_eq!(Some(s.node.id), id);
    assert_eq!(Some(s.enr.seq()), stored_seq.map(|q| q + 1));
    boot.kill9().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_flushes_node_db() {
    let scratch = Scratch::new("ctrlc");
    let datadir = scratch.0.join("data");
    let cluster = Cluster::start(3).await;
    let start_unix = unix_now();
    let mut boot = Bootnode::spawn(
        &datadir,
        scratch.0.join("bootnode.log"),
        Some(&cluster.enode()),
    );
    let s = boot.started().await;
    cluster.wait_bonded(s.node, 3).await;
    // The bootnode took in the last Pongs of the bonds its peers completed.
    let ids = cluster.ids();
    boot.wait_log_bonds(&ids).await;
    // Nothing written yet, so only the shutdown flush can store them.
    boot.assert_not_written();
    let status = boot.ctrl_c(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "exit after Ctrl-C: {status}");
    cluster.shutdown().await;

    let (seq, records) = read_db(&datadir.join("nodes.redb"));
    assert_eq!(seq, s.enr.seq(), "stored record seq");
    for id in &ids {
        let r = records
            .iter()
            .find(|r| r.node.id == *id)
            .unwrap_or_else(|| {
                panic!(
                    "bonded node {id} missing after Ctrl-C ({} stored)",
                    records.len()
                )
            });
        assert!(r.last_pong >= start_unix, "stale pong time");
        assert_eq!(r.fails, 0);
        assert_eq!(r.node.ip, std::net::Ipv4Addr::LOCALHOST);
    }
    assert_eq!(records.len(), ids.len(), "unexpected nodes stored");
}

/// Kills the very first start in a fresh data directory at 60 moments spread over its first
/// 6 ms, then starts it again on what is left (which must start and print its enode).
///
/// This used to brick the data directory: `redb::Database::create` grows a new file and
/// writes its magic number only after an fsync, so a kill in between left a file no later
/// start could open, and `nodekey` could be left empty the same way. Both files are now
/// created under a temporary name and renamed into place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_first_start_leaves_usable_datadir() {
    let scratch = Scratch::new("first");
    let mut failures = Vec::new();
    // Kills that landed while the first start was creating the data directory: after it
    // made the directory, before it printed its enode URL (all of it was written by then).
    let mut in_window = 0;
    for i in 0..60u64 {
        let datadir = scratch.0.join(format!("data-{i}"));
        let boot = Bootnode::spawn(&datadir, scratch.0.join(format!("{i}.log")), None);
        tokio::time::sleep(Duration::from_micros(i * 100)).await;
        let printed = boot.kill9_printed().await;
        if datadir.exists() && !printed.contains("enode://") {
            in_window += 1;
        }
        let db_path = datadir.join("nodes.redb");
        if db_path.exists()
            && let Err(e) = NodeDb::open(&db_path)
        {
            let len = std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0);
            failures.push(format!(
                "kill at {} us: {len}-byte nodes.redb: {e}",
                i * 100
            ));
            continue;
        }
        let mut again = Bootnode::spawn(&datadir, scratch.0.join(format!("{i}b.log")), None);
        let _ = again.started().await;
        again.kill9().await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{in_window} of 60 kills landed while the first start created the data directory");
    assert!(
        in_window > 0,
        "no kill landed while the data directory was being created: the test proved nothing"
    );
}
