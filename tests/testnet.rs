//! `devp2p testnet` as a user runs it, in network namespaces: 12 node processes in three
//! /24s (six per node subnet, the bootnode alone in a third), each bound to 0.0.0.0 in its
//! own namespace. Every node must reach the last replayed block, learn its own address
//! from the pongs of distinct hosts, and never hold more inbound peers from one /24 than
//! the server's per-subnet cap; and a Ctrl-C mid-run must leave no namespace, link or
//! route behind.
//!
//! Needs root and `ip` (iproute2); prints why and passes when either is missing. Names
//! (`dptn<pid>-…`) and addresses (10.76.0.0/16) differ from tests/upnp_gateway.rs's, so
//! the two can run at once.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use devp2p::cmd::testnet::netns;

/// The whole run's bound: start-up, sync and eight blocks take well under half of it.
const LIMIT: Duration = Duration::from_secs(90);
const NODES: usize = 12;
const PER_SUBNET: usize = 6;
const PRELOAD: u64 = 400;
const BLOCKS: u64 = 8;

/// The testnet process; on drop (a failed assertion included) it is killed and whatever
/// it left is swept.
struct Testnet {
    child: Child,
    ip: PathBuf,
    dir: PathBuf,
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        netns::sweep(&self.ip);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Testnet {
    fn start(ip: &Path, tag: &str, net: &str, nodes: usize, extra: &[&str]) -> Testnet {
        let dir =
            std::env::temp_dir().join(format!("devp2p-testnet-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = Command::new(env!("CARGO_BIN_EXE_devp2p"))
            .args(["testnet", "--netns", &nodes.to_string(), "--net", net])
            .args([
                "--per-subnet",
                &PER_SUBNET.to_string(),
                "--preload",
                &PRELOAD.to_string(),
            ])
            .args([
                "--blocks",
                &BLOCKS.to_string(),
                "--interval",
                "300ms",
                "--poll",
                "250ms",
            ])
            .args(["--timeout", "60s", "--node-log", "info,sync=debug"])
            .arg("--out")
            .arg(dir.join("out"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Testnet {
            child,
            ip: ip.to_path_buf(),
            dir,
        }
    }

    /// Names in the root namespace (namespaces, links, routes) this run made.
    fn leftovers(&self) -> Vec<String> {
        let tag = format!("{}{}", netns::PREFIX, self.child.id());
        let mut out = Vec::new();
        for args in [
            &["netns", "list"][..],
            &["-o", "link", "show"],
            &["route", "show"],
        ] {
            let text = netns::run(&self.ip, args).unwrap_or_default();
            out.extend(text.lines().filter(|l| l.contains(&tag)).map(String::from));
        }
        out
    }

    /// Its stdout until it exits (or [`LIMIT`]), and its exit status.
    fn finish(&mut self) -> (String, std::process::ExitStatus) {
        let out = self.child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("{line}");
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "testnet still running after {LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        (reader.join().unwrap(), status)
    }
}

fn available() -> Option<PathBuf> {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipped: {why}");
        return None;
    }
    netns::find_tool("ip")
}

/// The rows of nodes.csv as column name → value maps.
fn rows(csv: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            (header.iter().map(|h| h.to_string()))
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

#[test]
fn namespaced_nodes_reach_the_head_within_the_subnet_limits() {
    let Some(ip) = available() else { return };

    // Ctrl-C once the nodes run: everything goes.
    let mut t = Testnet::start(&ip, "int", "10.75", 4, &[]);
    let out = t.child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let deadline = Instant::now() + LIMIT;
    loop {
        let line = lines.next().expect("testnet exited early").unwrap();
        if line.starts_with("all 4 nodes started") {
            break;
        }
        assert!(Instant::now() < deadline, "nodes not started in {LIMIT:?}");
    }
    assert!(
        !t.leftovers().is_empty(),
        "the namespaces exist while it runs"
    );
    let pid = t.child.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    for _ in lines.by_ref() {}
    let status = t.child.wait().unwrap();
    println!("after SIGINT: {status}");
    assert_eq!(
        t.leftovers(),
        Vec::<String>::new(),
        "left behind after Ctrl-C"
    );
    drop(t);

    // The full run: its checks must pass, and the CSV must show why.
    let mut t = Testnet::start(&ip, "run", "10.76", NODES, &[]);
    let (stdout, status) = t.finish();
    assert!(status.success(), "testnet failed ({status}):\n{stdout}");
    assert_eq!(
        t.leftovers(),
        Vec::<String>::new(),
        "left behind after the run"
    );
    let csv = std::fs::read_to_string(t.dir.join("out/nodes.csv")).unwrap();
    let rows = rows(&csv);
    assert_eq!(rows.len(), NODES);
    let cap = devp2p::server::limits::MAX_INBOUND_PER_SUBNET;
    for r in &rows {
        let n = &r["node"];
        assert_eq!(r["head"], (PRELOAD + BLOCKS).to_string(), "node {n} head");
        assert_eq!(r["learned_ip"], r["ip"], "node {n} learned its address");
        assert!(r["ip"].starts_with("10.76."), "node {n} in the test's /16");
        let most: usize = r["max_inbound_per_subnet"].parse().unwrap();
        assert!(
            most <= cap,
            "node {n}: {most} inbound peers from one /24 (cap {cap})"
        );
        let peers: usize =
            r["peers_in"].parse::<usize>().unwrap() + r["peers_out"].parse::<usize>().unwrap();
        assert!(peers >= 1, "node {n} has peers");
    }
    // Blocks arrived by propagation, with measured delays.
    let delays = std::fs::read_to_string(t.dir.join("out/delays.csv")).unwrap();
    assert!(delays.lines().any(|l| l.ends_with(",gossip")), "{delays}");
    for svg in [
        "peers.svg",
        "propagation_cdf.svg",
        "bytes.svg",
        "soak_rss.svg",
    ] {
        let text = std::fs::read_to_string(t.dir.join("out").join(svg)).unwrap();
        assert!(text.starts_with("<svg"), "{svg}");
    }
}
