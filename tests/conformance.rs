//! `devp2p test` against our own binaries: the discv4 suite against `devp2p bootnode` and
//! `devp2p node`, the rlpx and eth suites against a `devp2p node` that imported
//! testdata/ethtest; and a run against nothing, which must fail with a non-zero status.
//! Everything on 127.0.0.1 with port 0; each suite run is bounded by the suite's timeouts
//! (a few seconds here).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_devp2p");

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/ethtest")
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("devp2p-conf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A spawned `devp2p` daemon, killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `devp2p <args>` and returns it with the first `enode://` line it prints.
fn spawn(args: &[&str]) -> (Daemon, String) {
    let mut child = Command::new(BIN)
        .args(["--log-level", "warn"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn devp2p");
    let stdout = child.stdout.take().unwrap();
    let daemon = Daemon(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("enode://") {
                let _ = tx.send(line);
            }
        }
    });
    let enode = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the daemon prints its enode");
    (daemon, enode)
}

/// `devp2p node` on 127.0.0.1, port 0, with `datadir` and one more flag.
fn spawn_node(datadir: &Path, flag: &str) -> (Daemon, String) {
    let datadir = datadir.to_str().unwrap();
    spawn(&[
        "node",
        "--port",
        "0",
        "--addr",
        "127.0.0.1",
        flag,
        "--datadir",
        datadir,
    ])
}

fn test_cmd(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--log-level", "warn", "test"])
        .args(args)
        .output()
        .expect("run devp2p test")
}

/// Asserts the run passed every case it ran and ran `cases` of them; returns its stdout.
fn assert_passed(out: &Output, what: &str, cases: usize) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let results = lines
        .iter()
        .filter(|l| l.starts_with("PASS ") || l.starts_with("SKIP ") || l.starts_with("FAIL "))
        .count();
    assert_eq!(results, cases, "{what}: one line per case\n{text}");
    assert!(!text.contains("FAIL "), "{what}:\n{text}");
    let last = lines.last().copied().unwrap_or_default();
    assert!(last.ends_with("passed, 0 failed"), "{what}: {last}");
    text
}

fn import_chain(datadir: &Path) {
    let out = Command::new(BIN)
        .arg("import")
        .arg(testdata().join("chain.rlp"))
        .arg("--receipts")
        .arg(testdata().join("receipts.rlp"))
        .args(["--chain", "ethtest", "--datadir"])
        .arg(datadir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn discv4_suite_passes_against_bootnode_and_node() {
    let (_boot, enode) = spawn(&["bootnode", "--addr", "127.0.0.1:0"]);
    let out = test_cmd(&["discv4", &enode]);
    let text = assert_passed(&out, "discv4 vs bootnode", 15);
    assert!(text.contains("PASS Amplification/WrongIP"), "{text}");

    let dir = tempdir("discv4-node");
    let (_node, enode) = spawn_node(&dir, "--no-dns-discovery");
    let out = test_cmd(&["discv4", &enode]);
    assert_passed(&out, "discv4 vs node", 15);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rlpx_and_eth_suites_pass_against_a_node_with_the_test_chain() {
    let dir = tempdir("eth");
    import_chain(&dir);
    let (_node, enode) = spawn_node(&dir, "--no-discovery");
    let out = test_cmd(&["rlpx", &enode]);
    assert_passed(&out, "rlpx", 2);

    let json = dir.join("eth.json");
    let chain = testdata();
    let chain = chain.to_str().unwrap();
    let out = test_cmd(&[
        "eth",
        &enode,
        "--chain",
        chain,
        "--json",
        json.to_str().unwrap(),
    ]);
    let text = assert_passed(&out, "eth", 20);
    for case in [
        "Status",
        "GetBlockHeaders",
        "SimultaneousRequests",
        "SameRequestID",
        "ZeroRequestID",
        "Transaction",
        "GetBlockBodies",
        "BlockRangeUpdateInvalid",
        "NewPooledTxs",
        "LargeTxRequest",
        "GetReceipts",
    ] {
        assert!(text.contains(&format!("PASS {case}\n")), "{case}:\n{text}");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["suite"], "eth");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["cases"].as_array().unwrap().len(), 20);

    let _ = std::fs::remove_dir_all(&dir);
}

/// A node without the test chain is told apart: its Status names another head.
#[test]
fn eth_status_fails_against_a_node_without_the_chain() {
    let dir = tempdir("empty");
    let (_node, enode) = spawn_node(&dir, "--no-discovery");
    let out = test_cmd(&[
        "eth",
        &enode,
        "--chain",
        testdata().to_str().unwrap(),
        "--run",
        "^Status$",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.starts_with("FAIL Status (peering failed: status exchange failed: wrong head block"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("0 passed, 1 failed"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Against a port nobody answers on, the selected case fails, the summary says so, the
/// JSON records it and the exit status is non-zero.
#[test]
fn a_failing_case_fails_the_run() {
    let dir = tempdir("fail");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let id =
        devp2p::discovery::NodeId::from_secret_key(&secp256k1::SecretKey::new(&mut rand::rng()));
    let json = dir.join("r.json");
    let out = test_cmd(&[
        "discv4",
        &format!("enode://{id}@127.0.0.1:{port}"),
        "--run",
        "^Ping/(Basic|PastExpiration)$",
        "--json",
        json.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.starts_with("FAIL Ping/Basic ("), "{text}");
    assert!(text.contains("PASS Ping/PastExpiration\n"), "{text}");
    assert!(text.trim_end().ends_with("1 passed, 1 failed"), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["failed"], 1);
    assert_eq!(report["cases"][0]["result"], "FAIL");
    drop(socket);
    let _ = std::fs::remove_dir_all(&dir);
}
