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
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}: {text}");
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
        "--metrics",
        "--rpc",
        "--log-level",
        "--log-json",
        "--config",
    ] {
        assert!(text.contains(flag), "node --help lacks {flag}");
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
