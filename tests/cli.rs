//! The `devp2p` binary as a user runs it: help, `node` with a TOML config file, key tools,
//! a clean exit on SIGINT, and `devnet`'s checks of its settings (its run is in
//! `tests/devnet.rs`).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_devp2p"))
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("devp2p-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn help_lists_every_command() {
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "node",
        "bootnode",
        "key",
        "import",
        "export",
        "gen-chain",
        "devnet",
        "testnet",
        "dns",
        "test",
        "crawl",
        "census",
        "sim",
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}: {text}");
    }
    for (cmd, flags) in [
        (
            "crawl",
            &[
                "--chain",
                "--bootnodes",
                "--v4",
                "--dns",
                "--out",
                "--timeout",
                "--rate",
                "--dials",
            ][..],
        ),
        ("census", &["--out", "--format", "--chain", "--at"][..]),
    ] {
        let out = bin().args([cmd, "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for flag in flags {
            assert!(text.contains(flag), "{cmd} --help lacks {flag}");
        }
    }
    let out = bin()
        .args(["sim", "propagation", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--nodes",
        "--peers",
        "--strategy",
        "--seed",
        "--hostile-mode",
        "--out",
    ] {
        assert!(text.contains(flag), "sim propagation --help lacks {flag}");
    }
    let out = bin().args(["sim", "discovery", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--nodes",
        "--seed",
        "--duration",
        "--churn",
        "--garbage",
        "--per-subnet",
        "--fast-crypto",
        "--out",
    ] {
        assert!(text.contains(flag), "sim discovery --help lacks {flag}");
    }
    let out = bin().args(["node", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--datadir",
        "--port",
        "--discport",
        "--bootnodes",
        "--nodekey",
        "--nodekeyhex",
        "--maxpeers",
        "--static-nodes",
        "--trusted-nodes",
        "--netrestrict",
        "--nat",
        "--no-discovery",
        "--dns-discovery",
        "--no-dns-discovery",
        "--dns-resolver",
        "--discovery.v5",
        "--no-discovery.v5",
        "--discovery.v5.port",
        "--bootnodes.v5",
        "--metrics",
        "--rpc",
        "--log-level",
        "--log-json",
        "--config",
    ] {
        assert!(text.contains(flag), "node --help lacks {flag}");
    }
    let out = bin().args(["bootnode", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--v5", "--v5.addr", "--bootnodes", "--nat"] {
        assert!(text.contains(flag), "bootnode --help lacks {flag}");
    }
    let out = bin().args(["devnet", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--nodes",
        "--interval",
        "--preload",
        "--chain-file",
        "--dir",
        "--keep",
        "--node-log",
    ] {
        assert!(text.contains(flag), "devnet --help lacks {flag}");
    }
    let out = bin().args(["testnet", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--netns",
        "--per-subnet",
        "--net",
        "--blocks",
        "--duration",
        "--churn",
        "--out",
        "needs root",
    ] {
        assert!(text.contains(flag), "testnet --help lacks {flag}");
    }
}

#[test]
fn testnet_refuses_bad_settings_before_starting_anything() {
    for args in [
        &["--netns", "1"][..],
        &["--netns", "1001"],
        &["--net", "10"],
        &["--duration", "forever"],
    ] {
        let out = bin().arg("testnet").args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args[0]), "{args:?}: {err}");
    }
}

#[test]
fn devnet_refuses_bad_settings_before_starting_anything() {
    for args in [
        &["--nodes", "0"][..],
        &["--nodes", "33"],
        &["--interval", "fast"],
    ] {
        let out = bin().arg("devnet").args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args[0]), "{args:?}: {err}");
    }
    let dir = tempdir("devnet");
    let out = bin()
        .args(["devnet", "--chain-file"])
        .arg(dir.join("missing.rlp"))
        .arg("--dir")
        .arg(dir.join("net"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.rlp"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn key_generate_and_show_agree() {
    let dir = tempdir("key");
    let file = dir.join("k");
    let out = bin()
        .args(["key", "generate", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = bin().args(["key", "show"]).arg(&file).output().unwrap();
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // The id is the 64-byte public key of the key in the file, in hex.
    assert_eq!(generated.len(), 128, "{generated}");
    assert!(
        generated.bytes().all(|b| b.is_ascii_hexdigit()),
        "{generated}"
    );
    assert_eq!(shown, generated);
    // ... and is the id of the key written to the file, derived here independently.
    let text = std::fs::read_to_string(&file).unwrap();
    let bytes: [u8; 32] = hex::decode(text.trim()).unwrap().try_into().unwrap();
    let key = secp256k1::SecretKey::from_byte_array(bytes).unwrap();
    let public = secp256k1::PublicKey::from_secret_key_global(&key).serialize_uncompressed();
    assert_eq!(generated, hex::encode(&public[1..]));
    // Another key has another id.
    let other = dir.join("k2");
    let out = bin()
        .args(["key", "generate", "--out"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_ne!(String::from_utf8_lossy(&out.stdout).trim(), generated);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn node_reads_a_toml_config_prints_its_enode_and_stops_on_sigint() {
    let dir = tempdir("node");
    let key = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291";
    // The node id of that key (EIP-8 test key B).
    let id = "ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd31387574077f301b421bc84df7266c44e9e6d569fc56be00812904767bf5ccd1fc7f";
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "datadir = {:?}\nport = 0\naddr = \"127.0.0.1\"\nnodekeyhex = \"{key}\"\nno-discovery = true\nmaxpeers = 7\n",
            dir.join("data")
        ),
    )
    .unwrap();
    let mut child = bin()
        .args(["node", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with(&format!("enode://{id}@127.0.0.1:")),
        "{line}"
    );
    let status = support::interrupt_and_wait(&mut child, 10);
    assert!(status.success(), "{status:?}");
    // A bad config file is a clear error, not a panic.
    std::fs::write(&config, "maxpeers = \"many\"\n").unwrap();
    let out = bin()
        .args(["node", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config file") && err.contains("maxpeers"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `devp2p node` on a free loopback port without discovery.
fn local_node() -> Command {
    let mut c = bin();
    c.args([
        "node",
        "--port",
        "0",
        "--addr",
        "127.0.0.1",
        "--no-discovery",
    ]);
    c
}

/// Two nodes started at once on a fresh data directory: one runs, with the key stored
/// there; the other stops with a clear error instead of running with a key of its own.
#[test]
fn two_nodes_on_one_fresh_datadir_do_not_run_with_different_keys() {
    let dir = tempdir("twonodes");
    let data = dir.join("data");
    let start = || {
        local_node()
            .arg("--datadir")
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut children = [start(), start()];
    let mut enodes = Vec::new();
    let mut errors = Vec::new();
    for child in &mut children {
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.starts_with("enode://") {
            enodes.push(line);
        } else {
            errors.push(stderr_of(child));
        }
    }
    assert_eq!(enodes.len(), 1, "exactly one node runs: {errors:?}");
    assert!(
        errors[0].contains("in use by another process"),
        "{errors:?}"
    );
    let key = std::fs::read_to_string(data.join("nodekey")).unwrap();
    let key = secp256k1::SecretKey::from_byte_array(
        <[u8; 32]>::try_from(hex::decode(key.trim()).unwrap()).unwrap(),
    )
    .unwrap();
    let id = discovery::NodeId::from_secret_key(&key);
    assert!(
        enodes[0].starts_with(&format!("enode://{id}@")),
        "{}",
        enodes[0]
    );
    for child in &mut children {
        if child.try_wait().unwrap().is_none() {
            let status = support::interrupt_and_wait(child, 10);
            assert!(status.success(), "{status:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for `child` and returns what it wrote to stderr.
fn stderr_of(child: &mut std::process::Child) -> String {
    use std::io::Read;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = child.wait();
    err
}

/// `--rpc` on a non-loopback address is refused unless explicitly allowed.
#[test]
fn node_refuses_a_remote_rpc_address_without_the_flag() {
    let dir = tempdir("rpcremote");
    let mut child = local_node()
        .args(["--rpc", "0.0.0.0:0", "--datadir"])
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node started with a remote --rpc");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let err = stderr_of(&mut child);
    assert!(err.contains("--rpc-allow-remote"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// POSTs a JSON-RPC body with extra `headers` and returns the response text.
fn post_json(addr: &str, headers: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// `devp2p node --rpc` writes a private admin token to DATADIR/rpc.cookie; admin calls
/// work with it and fail without it.
#[test]
fn node_admin_rpc_needs_the_cookie() {
    let dir = tempdir("cookie");
    let data = dir.join("data");
    let mut child = local_node()
        .args(["--rpc", "127.0.0.1:0", "--datadir"])
        .arg(&data)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    while url.is_none() && err.read_line(&mut line).unwrap() > 0 {
        if let Some(at) = line.find("http://127.0.0.1:") {
            let rest = &line[at + "http://".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .unwrap_or(rest.len());
            url = Some(rest[..end].to_string());
        }
        line.clear();
    }
    let addr = url.expect("the node logs its JSON-RPC address");
    let token = std::fs::read_to_string(data.join("rpc.cookie")).unwrap();
    assert_eq!(token.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("rpc.cookie"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"admin_nodeInfo"}"#;
    let without = post_json(&addr, "", body);
    assert!(without.contains("-32001"), "{without}");
    let with = post_json(&addr, &format!("Authorization: Bearer {token}\r\n"), body);
    assert!(with.contains("\"enode\""), "{with}");
    let status = support::interrupt_and_wait(&mut child, 10);
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `crawl --v5` says it is not there yet; `census` reads a go-ethereum nodes.json (no
/// hello or status) and writes its CSV report and the plots.
#[test]
fn crawl_v5_is_not_yet_and_census_reads_a_geth_nodes_file() {
    let dir = tempdir("census");
    let out = bin()
        .args(["crawl", "--v5", "--out"])
        .arg(dir.join("nodes.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not available yet"), "{err}");

    let key = secp256k1::SecretKey::new(&mut rand::rng());
    let enr = discovery::enr::Builder::new()
        .ip([10, 1, 2, 3].into())
        .udp(30303)
        .tcp(30303)
        .build(7, &key)
        .unwrap();
    let id = hex::encode(enr.node_id().hash());
    let geth = format!(
        "{{\"{id}\": {{\"seq\": 7, \"record\": \"{enr}\", \"score\": 2, \
         \"firstResponse\": \"2024-01-02T03:04:05Z\", \"lastResponse\": \"2024-01-02T04:04:05Z\", \
         \"lastCheck\": \"2024-01-02T04:04:05Z\"}}}}"
    );
    std::fs::write(dir.join("nodes.json"), geth).unwrap();
    let out = bin()
        .arg("census")
        .arg(dir.join("nodes.json"))
        .args(["--format", "csv", "--out"])
        .arg(dir.join("report"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(dir.join("report/census.csv")).unwrap();
    assert!(csv.contains("ports,30303,1"), "{csv}");
    assert!(csv.contains("fork-readiness,no fork id,1"), "{csv}");
    assert!(dir.join("report/clients.svg").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}
