//! `devp2p devnet` as a user runs it: the real binary starts a bootnode and three nodes on
//! 127.0.0.1, its table shows every node following node 0's replay, and SIGINT stops it
//! all cleanly and removes its directory.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Blocks node 0 has before it starts (of 600); it replays the rest.
const PRELOAD: u64 = 400;
/// Every node must be seen past this height, so well into the replay.
const TARGET: u64 = PRELOAD + 20;

/// One table row: node index, head, delay column.
fn row(line: &str) -> Option<(usize, Option<u64>, String)> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    let index = cols.first()?.parse().ok()?;
    // node id tcp rpc peers head hash delay…
    Some((
        index,
        cols.get(5).and_then(|h| h.parse().ok()),
        cols.get(7..).map(|d| d.join(" ")).unwrap_or_default(),
    ))
}

#[test]
fn devnet_follows_the_replay_and_stops_on_sigint() {
    let nodes = 3;
    let mut child = Command::new(env!("CARGO_BIN_EXE_devp2p"))
        .args(["devnet", "--nodes", "3", "--interval", "200ms", "--preload"])
        .arg(PRELOAD.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Read tables until one shows every node at TARGET or beyond, each follower with a
    // measured delay (it got a block node 0 was seen replaying).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut dir: Option<PathBuf> = None;
    let mut rows = Vec::new();
    let mut last = Vec::new();
    let mut rpc_addrs = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("no table with every node at {TARGET} within 90 s; last: {last:?}");
            }
        };
        if let Some(d) = line.split("data and logs in ").nth(1) {
            dir = Some(PathBuf::from(d.trim_end_matches(" (removed on exit)")));
        }
        // `node N   enode://…@127.0.0.1:PORT rpc=http://127.0.0.1:PORT`: each node bound
        // port 0 and reported what it got.
        if let Some(rpc) = line.split(" rpc=http://").nth(1) {
            let addr: std::net::SocketAddr = rpc.trim().parse().expect("an RPC address");
            assert!(addr.ip().is_loopback() && addr.port() != 0, "{line}");
            rpc_addrs.push(addr);
        }
        match row(&line) {
            Some(r) => rows.push(r),
            None if !rows.is_empty() => {
                let done = rows.len() == nodes
                    && rows.iter().all(|(i, head, delay)| {
                        head.is_some_and(|h| h >= TARGET)
                            && (*i == 0 && delay == "source" || delay.ends_with("ms"))
                    });
                last = std::mem::take(&mut rows);
                if done {
                    break;
                }
            }
            None => {}
        }
    }
    assert_eq!(rpc_addrs.len(), nodes, "{rpc_addrs:?}");
    let dir = dir.expect("the table names its directory");
    assert!(dir.join("node0.log").exists());

    // Nodes get SIGINT and up to 10 s each; on loopback they stop in well under one.
    let status = support::interrupt_and_wait(&mut child, 15);
    assert!(status.success(), "{status:?}");
    assert!(!dir.exists(), "{} was not removed", dir.display());
}
